"""Atomic file output: write to a temporary name in the same folder, fsync, then rename.

A reader (or a user after a crash, a full disk or SIGKILL) never sees a half-written file
under its final name: either the old file, the complete new one, or nothing.

Temporaries are named ``.slidemap-tmp-<pid>-<token>-<final name>``: the process id says
whose they are, so :func:`clean_stale_temporaries` removes only those of processes that
are gone (never a live run's), and the final name's suffix is kept for libraries that pick
a format by extension.

Every write of every command goes through :func:`atomic_path`. While a command holds an
output folder (:class:`slidemap.io.outputs.OutputFolder`, registered here as an
:class:`OutputSink`), the sink first checks that the final name may be written (it is no
input and no file slidemap did not write) and may *stage* the finished temporary, to rename
a whole set of outputs at once (all five files of a scene, or none).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from slidemap.errors import OutputError

TMP_PREFIX = ".slidemap-tmp-"
_TMP_NAME = re.compile(rf"^{re.escape(TMP_PREFIX)}(\d+)-")
#: bytes of a file name on common filesystems (ext4, xfs, tmpfs, NTFS in UTF-16 units).
_NAME_MAX = 255


class OutputSink(Protocol):
    """What an output folder does with the files written into it (see :mod:`slidemap.io.outputs`)."""

    def covers(self, final: Path) -> bool:
        """Whether ``final`` lies in this sink's folder."""
        ...

    def check(self, final: Path) -> None:
        """Raise :class:`OutputError` if ``final`` must not be written (before writing)."""
        ...

    def stage(self, tmp: Path, final: Path) -> bool:
        """Keep the finished ``tmp`` to rename onto ``final`` later; ``False``: rename now."""
        ...

    def will_rename(self, tmp: Path, final: Path) -> None:
        """``tmp`` (finished) is about to be renamed onto ``final``: record it first, so a
        failure to record leaves nothing under the final name."""
        ...

    def current(self, final: Path) -> Path:
        """Where the file written for ``final`` is now (its staged temporary, or ``final``)."""
        ...


_SINKS: list[OutputSink] = []
_SINKS_LOCK = threading.Lock()


def register_sink(sink: OutputSink) -> None:
    """Route writes under ``sink``'s folder through it (innermost registration wins)."""
    with _SINKS_LOCK:
        _SINKS.append(sink)


def unregister_sink(sink: OutputSink) -> None:
    with _SINKS_LOCK, contextlib.suppress(ValueError):
        _SINKS.remove(sink)


def sink_for(final: Path) -> OutputSink | None:
    """The innermost registered sink whose folder holds ``final``."""
    with _SINKS_LOCK:
        sinks = list(_SINKS)
    return next((s for s in reversed(sinks) if s.covers(final)), None)


def current_path(final: str | Path) -> Path:
    """Where the output written for ``final`` can be read back now: inside an output set
    it still has its temporary name (see :meth:`slidemap.io.outputs.OutputFolder.output_set`)."""
    final = Path(final)
    sink = sink_for(final)
    return final if sink is None else sink.current(final)


def temporary_path(final: str | Path) -> Path:
    """A fresh temporary name for ``final`` in its folder, carrying this process's id."""
    final = Path(final)
    head = f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"
    name = final.name
    budget = _NAME_MAX - len(head.encode())
    if len(name.encode()) > budget:  # keep the suffix, shorten the stem
        suffix = final.suffix[-16:]
        name = name.encode()[: budget - len(suffix.encode())].decode(errors="ignore") + suffix
    return final.parent / f"{head}{name}"


def temporary_owner(path: str | Path) -> int | None:
    """Process id of a temporary's writer (``None`` for a name without one)."""
    match = _TMP_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def fsync_file(path: str | Path) -> None:
    """Flush ``path``'s data to the disk (what a writer library may not do before closing)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | Path) -> None:
    """Make renames in ``folder`` durable (a no-op where the filesystem cannot)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # e.g. EINVAL on filesystems without directory fsync
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


#: free bytes below which a failed write is reported as a full disk.
FULL_DISK_BYTES = 1 << 20


def describe_os_error(exc: BaseException, folder: str | Path | None = None) -> str:
    """A short reason for an OS-level failure: ``No space left on device`` rather than a
    library's vaguer "write failed" (``folder`` is checked for a full disk) or its repr."""
    if isinstance(exc, OSError) and exc.strerror:
        reason = " ".join(str(exc.strerror).split())
    else:
        reason = " ".join(str(exc).split()) or type(exc).__name__
    quoted = re.search(r"error message = '([^']+)'", reason)  # HDF5's long reports
    if quoted:
        reason = quoted.group(1)
    if folder is not None and "space" not in reason.lower():
        try:
            st = os.statvfs(folder)
        except (OSError, AttributeError):
            return reason
        if st.f_bavail * st.f_frsize < FULL_DISK_BYTES:
            return f"No space left on device ({st.f_bavail * st.f_frsize} bytes free)"
    return reason if len(reason) <= 200 else reason[:197] + "..."


def commit_file(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` onto ``final``, recorded first by the output folder."""
    sink = sink_for(final)
    if sink is not None:
        sink.will_rename(tmp, final)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def make_parent(final: Path) -> None:
    """Create ``final``'s folder, or one :class:`OutputError` naming it."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = _existing_file_above(final.parent)
        raise OutputError(f"is a file, so the output folder {final.parent} cannot be created",
                          blocker) from None
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({describe_os_error(exc)})",
                          final.parent) from None


def _existing_file_above(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return folder


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` on success.

    The temporary file lives in the same directory (so ``os.replace`` is atomic on POSIX)
    and keeps the final suffix (so libraries that pick a format by extension still work).
    The finished file is fsync'd before the rename and the folder after it. On any
    exception the temporary file is removed and ``final`` is left untouched; an OS error
    of the writer (disk full, read-only folder, I/O error) becomes one
    :class:`~slidemap.errors.OutputError` naming ``final``.

    Example::

        with atomic_path(out / "mask.tif") as tmp:
            with rasterio.open(tmp, "w", **profile) as dst: ...
    """
    final = Path(final)
    sink = sink_for(final)
    if sink is not None:
        sink.check(final)
    make_parent(final)
    tmp = temporary_path(final)
    try:
        try:
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"{tmp}: the writer produced no file for {final}")
            fsync_file(tmp)
        except OSError as exc:
            raise OutputError(f"cannot write ({describe_os_error(exc, final.parent)})", final) from None
        if sink is None or not sink.stage(tmp, final):
            try:
                commit_file(tmp, final)
            except OSError as exc:
                raise OutputError(f"cannot write ({describe_os_error(exc, final.parent)})", final) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(final: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically (fsync'd before the rename)."""
    final = Path(final)
    with atomic_path(final) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
    return final


def write_text_atomic(final: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``final`` atomically."""
    return write_bytes_atomic(final, text.encode("utf-8"))


def write_json_atomic(final: str | Path, data: object) -> Path:
    """Write ``data`` as strict JSON (RFC 8259: no NaN or Infinity), indented, atomically.

    The one writer of slidemap's JSON outputs (``summary.json``, ``metrics.json``, ...).
    Callers turn values that may legitimately be undefined (a ROC-AUC without landslides)
    into ``None`` themselves; any other NaN is a bug and raises ``ValueError`` here, before
    anything is written.
    """
    import json

    return write_text_atomic(final, json.dumps(data, indent=2, allow_nan=False) + "\n")


def clean_stale_temporaries(folder: str | Path) -> int:
    """Remove temporaries of processes that are gone from ``folder``; return how many.

    A temporary whose writer is alive (another run, or this one) is kept. A temporary
    without a process id (written by an older slidemap) is removed: callers hold the
    folder's lock (:class:`slidemap.io.outputs.OutputFolder`), so no live run of this
    version writes there.
    """
    count = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for stale in folder.glob(f"{TMP_PREFIX}*"):
        owner = temporary_owner(stale)
        if owner is not None and process_alive(owner):
            continue
        with contextlib.suppress(OSError):
            stale.unlink()
            count += 1
    return count
