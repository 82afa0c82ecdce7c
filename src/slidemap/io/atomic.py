"""Atomic file output: write to a temporary name in the same folder, then rename.

A reader (or a user after a crash or SIGKILL) never sees a half-written file under its
final name: either the old file, the complete new one, or nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".slidemap-tmp-"


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` on success.

    The temporary file lives in the same directory (so ``os.replace`` is atomic on POSIX)
    and keeps the final suffix (so libraries that pick a format by extension still work).
    On any exception the temporary file is removed and ``final`` is left untouched.

    Example::

        with atomic_path(out / "mask.tif") as tmp:
            with rasterio.open(tmp, "w", **profile) as dst: ...
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # let the writer create it; some libraries refuse to overwrite
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: the writer produced no file for {final}")
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes_atomic(final: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically (fsync'd before the rename)."""
    final = Path(final)
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return final


def write_text_atomic(final: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``final`` atomically."""
    return write_bytes_atomic(final, text.encode("utf-8"))


def clean_stale_temporaries(folder: str | Path) -> int:
    """Remove temporaries left by a killed run in ``folder``; return how many."""
    count = 0
    for stale in Path(folder).glob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            stale.unlink()
            count += 1
    return count
