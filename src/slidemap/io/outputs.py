"""Output folders: outputs never harm inputs, sets appear whole, one run per folder.

Every command that writes (``predict``, ``evaluate``, ``export``, ``train``, ``compare``,
``demo``, ``features``) holds its output folder through one :class:`OutputFolder`:

- **a lock** (``.slidemap-lock``, an ``flock`` on a file holding the process id, host and
  command): a second run into a folder in use is refused with one line naming the holder;
  a lock left by a process that is gone is taken over (the kernel releases ``flock`` when
  its holder dies, whatever killed it);
- **a manifest** (``.slidemap-outputs.json`` in each folder written into): which files
  slidemap wrote there, with the inode, size and modification time it left them with. A
  file under an output's name that the manifest does not list (or that changed since) was
  not written by slidemap and is never replaced; slidemap's own earlier outputs are
  replaced only with ``--overwrite`` (or ``train --resume``, which continues them);
- **no input is ever replaced**: every output name is resolved (``lstat``; inode and
  device compared with those of every input file, so symbolic links, hard links and
  case-insensitive file systems are seen through) and refused when it is an input of the
  command; a symbolic link or a folder under an output's name is refused too;
- **sets** (:meth:`OutputFolder.output_set`): the files written inside are kept under
  their temporary names and renamed together at the end, with SIGINT and SIGTERM deferred
  during the renames: all of a scene's outputs appear, or none;
- **temporaries** of processes that are gone are removed from every folder written into;
  those of a live process never are.

The checks run before anything is written (:meth:`OutputFolder.claim` with the names a
command will write) and again for every file as it is written (through
:mod:`slidemap.io.atomic`, which routes every write of the package here).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from slidemap.errors import OutputError
from slidemap.io.atomic import (
    TMP_PREFIX,
    clean_stale_temporaries,
    describe_os_error,
    fsync_dir,
    make_parent,
    process_alive,
    register_sink,
    temporary_path,
    unregister_sink,
)

log = logging.getLogger(__name__)

#: per-folder list of the files slidemap wrote there.
MANIFEST = ".slidemap-outputs.json"
#: lock file of a folder in use by a run.
LOCK = ".slidemap-lock"
MANIFEST_FORMAT = 1
#: file names slidemap keeps for itself in an output folder.
RESERVED = (MANIFEST, LOCK)
#: GDAL's sidecar of a raster's extra metadata (``mask.tif.aux.xml``).
PAM_SIDECAR = ".aux.xml"


def is_secondary_rank() -> bool:
    """Whether this process is a non-zero rank of a distributed run (its rank 0 writes)."""
    return any(os.environ.get(name, "0") not in ("", "0") for name in ("LOCAL_RANK", "NODE_RANK"))


# ------------------------------------------------------------------------- manifests
def _identity(st: os.stat_result) -> dict[str, int]:
    return {"ino": int(st.st_ino), "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """``{file name: entry}`` of ``folder``'s manifest; empty when absent or unreadable
    (then every existing file counts as not written by slidemap: the safe side)."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        log.warning("%s: unreadable manifest; its files count as not written by slidemap", path)
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(k): v for k, v in files.items() if isinstance(v, dict)}


def _write_manifest(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    """Replace ``folder``'s manifest atomically (directly: the manifest is no output)."""
    final = folder / MANIFEST
    tmp = temporary_path(final)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"format": MANIFEST_FORMAT, "files": files}, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def written_by_slidemap(path: Path) -> bool:
    """Whether ``path`` is a file slidemap wrote and nobody changed since (manifest entry,
    same inode, size and modification time)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    entry = read_manifest(path.parent).get(path.name)
    if entry is None:
        return False
    identity = _identity(st)
    return any(isinstance(known, dict) and all(known.get(k) == v for k, v in identity.items())
               for known in (entry, entry.get("previous")))


# ----------------------------------------------------------------------------- locks
def _lock_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (f"process {info.get('pid')} on {info.get('host')}, 'slidemap {info.get('command')}' "
                f"since {info.get('started')}")
    except (OSError, ValueError, AttributeError):
        return "another process"


@dataclass
class _Lock:
    """An ``flock`` on ``folder/.slidemap-lock`` (a pid check where ``flock`` is missing)."""

    folder: Path
    command: str
    fd: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK

    def acquire(self) -> None:
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot write into the output folder ({describe_os_error(exc)})",
                                  self.folder) from None
            try:
                if not self._flock(fd):
                    raise OutputError(
                        f"output folder is in use by another slidemap run ({_lock_holder(self.path)}); "
                        "wait for it to finish or choose another --out", self.folder)
                if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                    os.close(fd)  # its holder removed it between our open and flock: again
                    continue
                self._write_holder(fd)
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            self.fd = fd
            return
        raise OutputError("cannot take the folder's lock (it keeps changing)", self.path)

    def _flock(self, fd: int) -> bool:
        """Take the lock; ``False`` when a live process holds it."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self._pid_check()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:  # no flock on this file system (some network mounts)
            return self._pid_check()
        return True

    def _pid_check(self) -> bool:
        try:
            pid = int(json.loads(self.path.read_text(encoding="utf-8")).get("pid", 0))
        except (OSError, ValueError, AttributeError):
            return True
        return pid == os.getpid() or not process_alive(pid)

    def _write_holder(self, fd: int) -> None:
        try:
            previous = os.read(fd, 4096)
            if previous.strip():
                log.debug("%s: taking over the lock of a run that is gone (%s)", self.path,
                          previous.decode(errors="replace").strip())
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                      "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            os.write(fd, json.dumps(holder).encode())
        except OSError as exc:
            raise OutputError(f"cannot write into the output folder ({describe_os_error(exc)})",
                              self.folder) from None

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)  # closing releases the flock
        self.fd = None


# -------------------------------------------------------------------------- signals
@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """SIGINT and SIGTERM received inside the block are delivered when it ends.

    Python runs signal handlers in the main thread whichever thread the kernel picks, so
    the handlers themselves are swapped (a mask alone would not do); off the main thread,
    where handlers cannot be set, the signals are masked for the calling thread instead.
    """
    signals = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return
    received: list[int] = []
    previous = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


# ---------------------------------------------------------------------- the folder
@dataclass
class OutputFolder:
    """The output folder of one command (see the module docstring).

    Args:
        folder: the output folder (created if missing; removed again if the command fails
            and leaves it empty).
        command: the command's name, recorded in the lock and the manifest.
        inputs: every input file of the command (images, masks, DEM, checkpoints,
            configs...): none of them is ever replaced.
        overwrite: slidemap's own earlier outputs may be replaced (``--overwrite``, or a
            resumed training run continuing its folder).

    Use as a context manager; writes through :mod:`slidemap.io.atomic` under ``folder``
    are checked (and, inside :meth:`output_set`, staged) while it is open.
    """

    folder: Path
    command: str
    inputs: Iterable[str | Path] = ()
    overwrite: bool = False
    _lock: _Lock | None = None
    _input_ids: dict[tuple[int, int], Path] = field(default_factory=dict)
    _written: set[Path] = field(default_factory=set)
    _cleaned: set[Path] = field(default_factory=set)
    _staged: list[tuple[Path, Path]] | None = None
    _created: list[Path] = field(default_factory=list)
    _passive: bool = False

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self._passive = is_secondary_rank()
        self.add_inputs(self.inputs)

    def is_input(self, path: str | Path) -> bool:
        """Whether ``path`` (followed through links) is one of the command's input files."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self._input_ids

    def add_inputs(self, inputs: Iterable[str | Path | None]) -> None:
        """More input files that no output may replace."""
        for path in inputs:
            if path is None:
                continue
            with contextlib.suppress(OSError):
                st = os.stat(path)
                self._input_ids[(st.st_dev, st.st_ino)] = Path(path)

    # -- context management ------------------------------------------------------------
    def __enter__(self) -> OutputFolder:
        if self._passive:
            return self
        self._check_folder(self.folder)
        self._created = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        make_parent(self.folder / LOCK)
        self._lock = _Lock(self.folder, self.command)
        try:
            self._lock.acquire()
        except BaseException:
            self._remove_created()
            raise
        self._prepare(self.folder)
        register_sink(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._passive:
            return
        unregister_sink(self)
        if self._staged:
            self._discard(self._staged)
        self._staged = None
        assert self._lock is not None
        self._lock.release()
        if exc_type is not None:
            self._remove_created()

    def _remove_created(self) -> None:
        """Folders this command created, removed again when they hold nothing."""
        for folder in self._created:
            with contextlib.suppress(OSError):
                folder.rmdir()

    def _check_folder(self, folder: Path) -> None:
        if folder.exists() and not folder.is_dir():
            raise OutputError("is a file, not a folder; choose a folder for --out", folder)

    def _prepare(self, folder: Path) -> None:
        """First write into ``folder``: remove temporaries of runs that are gone."""
        if folder not in self._cleaned:
            self._cleaned.add(folder)
            removed = clean_stale_temporaries(folder)
            if removed:
                log.info("%s: removed %d temporary file(s) of an interrupted run", folder, removed)

    # -- the sink protocol (slidemap.io.atomic) -----------------------------------------
    def covers(self, final: Path) -> bool:
        if self._passive:
            return False
        try:
            Path(os.path.abspath(final)).relative_to(os.path.abspath(self.folder))
        except ValueError:
            return False
        return True

    def check(self, final: Path) -> None:
        """Refuse (:class:`OutputError`) an output name that must not be written now."""
        final = Path(final)
        if final.name in RESERVED:
            raise OutputError("is a file slidemap keeps for itself; choose another name", final)
        for parent in reversed(final.parents):
            if parent.is_symlink() and self.covers(parent) and parent != self.folder:
                raise OutputError("is a symbolic link; slidemap does not write through links", parent)
        self._check_folder(final.parent)
        self._prepare(final.parent)
        try:
            st = os.lstat(final)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputError(f"cannot inspect ({describe_os_error(exc)})", final) from None
        import stat

        if stat.S_ISLNK(st.st_mode):
            raise OutputError(
                f"is a symbolic link (to {os.readlink(final)}); slidemap replaces no link: "
                "move it away or choose another --out", final)
        if stat.S_ISDIR(st.st_mode):
            raise OutputError("is a folder where an output file goes; move it away", final)
        source = self._input_ids.get((st.st_dev, st.st_ino))
        if source is not None:
            alias = "" if os.path.abspath(source) == os.path.abspath(final) else f" ({source})"
            raise OutputError(
                f"is an input of this command{alias}; an output must not replace it: "
                "choose another --out", final)
        if final in self._written:
            return
        if not written_by_slidemap(final) and not self._sidecar_of_ours(final):
            raise OutputError(
                "exists and was not written by slidemap (or was changed since); it is never "
                "replaced: move it away or choose another --out", final)
        if not self.overwrite:
            raise OutputError(
                "holds an output of an earlier run; pass --overwrite to replace it or choose "
                "another --out", final)

    def adopt(self, names: Iterable[str]) -> list[str]:
        """Enter the existing regular files ``names`` of the folder in its manifest as
        slidemap's, where it does not list them yet: a run folder written by an older
        slidemap (no manifest) or copied from elsewhere (new inodes), which ``train
        --resume`` continues once its ``last.ckpt`` proved to be a slidemap checkpoint.
        Inputs, links and folders are never adopted. Returns the names adopted."""
        import stat

        if self._passive:
            return []
        pairs = []
        for name in names:
            path = self.folder / name
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in self._input_ids
                    and not written_by_slidemap(path)):
                pairs.append((path, path))
        if pairs:
            log.info("%s: continuing a run folder slidemap has no record of (written by an older "
                     "version, or copied): %s", self.folder, ", ".join(p.name for p, _ in pairs))
            self._record(pairs)
        return [p.name for p, _ in pairs]

    def _sidecar_of_ours(self, final: Path) -> bool:
        """Whether ``final`` is GDAL's ``<raster>.aux.xml`` beside a raster slidemap wrote:
        GIS software rewrites that sidecar (statistics, histograms) whenever it shows the
        raster, so an edit of it does not make it a user's file."""
        if not final.name.endswith(PAM_SIDECAR):
            return False
        raster = final.with_name(final.name[: -len(PAM_SIDECAR)])
        return raster in self._written or written_by_slidemap(raster)

    def claim(self, names: Iterable[str | Path]) -> None:
        """Check every output this command will write (names relative to the folder, or
        paths in it) before anything is written."""
        for name in names:
            path = Path(name)
            self.check(path if path.is_absolute() else self.folder / path)

    def stage(self, tmp: Path, final: Path) -> bool:
        if self._staged is None:
            return False
        self._staged.append((tmp, final))
        return True

    def will_rename(self, tmp: Path, final: Path) -> None:
        self._record([(Path(tmp), Path(final))])

    # -- sets ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def output_set(self) -> Iterator[OutputFolder]:
        """Stage every file written in the block; rename them all when it ends without error.

        Readers of a staged output inside the block use :meth:`current` to find it.
        """
        if self._passive or self._staged is not None:  # an enclosing set commits
            yield self
            return
        self._staged = []
        try:
            yield self
            staged, self._staged = self._staged, None
            self._commit(staged)
        except BaseException:
            if self._staged:
                self._discard(self._staged)
            self._staged = None
            raise

    def current(self, final: str | Path) -> Path:
        """Where the file written for ``final`` is now: its staged temporary inside a set,
        else ``final`` itself."""
        final = Path(final)
        for tmp, staged_final in reversed(self._staged or []):
            if staged_final == final:
                return tmp
        return final

    def _commit(self, staged: list[tuple[Path, Path]]) -> None:
        with deferred_signals():
            renamed: list[Path] = []
            try:
                for _, final in staged:
                    self.check(final)
                self._record(staged)  # before the renames: nothing appears unrecorded
                for tmp, final in staged:
                    os.replace(tmp, final)
                    renamed.append(final)
                for folder in dict.fromkeys(final.parent for final in renamed):
                    fsync_dir(folder)
            except BaseException as exc:
                for final in renamed:  # all or nothing
                    with contextlib.suppress(OSError):
                        final.unlink()
                self._discard(staged)
                if isinstance(exc, OSError):
                    raise OutputError(f"cannot write ({describe_os_error(exc)})",
                                      renamed[-1] if renamed else staged[0][1]) from None
                raise

    @staticmethod
    def _discard(staged: list[tuple[Path, Path]]) -> None:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _record(self, pairs: list[tuple[Path, Path]]) -> None:
        """Enter each finished temporary in the manifest of its final name's folder, under
        the final name (a rename keeps inode, size and modification time). The identity of
        the file it replaces is kept as ``previous``, so a run killed between this and the
        rename still recognises the old file as slidemap's."""
        by_folder: dict[Path, list[tuple[Path, Path]]] = {}
        for tmp, final in pairs:
            by_folder.setdefault(final.parent, []).append((tmp, final))
        for folder, files in by_folder.items():
            entries = read_manifest(folder)
            for tmp, final in files:
                self._written.add(final)
                try:
                    st = os.lstat(tmp)
                except OSError:
                    continue
                entry: dict[str, Any] = {**_identity(st), "command": self.command,
                                         "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
                old = entries.get(final.name)
                if old is not None:
                    entry["previous"] = {k: old.get(k) for k in ("ino", "size", "mtime_ns")}
                entries[final.name] = entry
            try:
                _write_manifest(folder, entries)
            except OSError as exc:
                raise OutputError(f"cannot record the outputs ({describe_os_error(exc, folder)})",
                                  folder / MANIFEST) from None

def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary of an atomic write."""
    return path.name.startswith(TMP_PREFIX)


@contextlib.contextmanager
def holding(folder: str | Path, command: str, inputs: Iterable[str | Path] = (),
            overwrite: bool = False) -> Iterator[OutputFolder]:
    """The :class:`OutputFolder` of ``folder`` for the block: the one a calling command
    already holds (when it covers ``folder``), else a new one, held for the block only.

    Library functions that write (``predict_scene``, ``train``...) use this, so called
    from a command they join its folder, and called from Python they hold their own.
    """
    from slidemap.io.atomic import sink_for

    enclosing = sink_for(Path(folder))
    if isinstance(enclosing, OutputFolder):
        enclosing.add_inputs(inputs)
        yield enclosing
        return
    with OutputFolder(Path(folder), command, inputs, overwrite) as held:
        yield held
