"""User-facing errors.

Every problem a user can cause (bad file, bad config, wrong checkpoint) is raised as a
:class:`SlidemapError` subclass whose message is one line: ``<file>: <problem>``. The CLI
prints that line on stderr and exits non-zero; a traceback is shown only with ``--debug``.
Code deep in numpy/torch must never be the first to notice bad input.
"""

from __future__ import annotations

from pathlib import Path


class SlidemapError(Exception):
    """Base class of every error meant for the user.

    Args:
        problem: what is wrong and, where possible, how to fix it (one sentence).
        path: the file or folder at fault, if any; it is named first in the message (a URL
            or a text naming a part of a file stays as given).
    """

    exit_code = 2

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = " ".join(str(problem).split())  # always one line
        self.path = None if path is None else path if isinstance(path, str) and "://" in path else Path(path)
        super().__init__(self.problem if self.path is None else f"{self.path}: {self.problem}")


class InputError(SlidemapError):
    """Input data (image, mask, raster, DEM, folder layout) is missing or malformed."""


class ConfigError(SlidemapError):
    """A configuration file or option is invalid (unknown key, wrong type, unknown name)."""


class BandSetError(SlidemapError):
    """A band set lacks a band that a feature or a model needs, or is malformed."""


class CheckpointError(SlidemapError):
    """A checkpoint is unreadable, unsafe, or does not match the data it is used with."""


class OutputError(SlidemapError):
    """An output cannot be written safely: it would replace an input or a file slidemap did
    not write, the folder is in use by another run, or the disk refused the write."""


class ResourceError(SlidemapError):
    """A file declares more than this machine can hold (an array beyond the memory budget),
    or a service it needs (a Dask scheduler) cannot be reached."""


class Interrupted(KeyboardInterrupt):  # noqa: N818 - it is what the user did, not a bug
    """The command was stopped by SIGINT or SIGTERM (raised by the CLI's signal handlers).

    A :class:`KeyboardInterrupt`, so that every ``finally`` and ``except BaseException``
    clean-up runs and nothing half-written is left under a final name.

    Args:
        signum: the signal received.
        note: what was kept, e.g. how to resume (one line; may be empty).
    """

    def __init__(self, signum: int, note: str = "") -> None:
        self.signum = int(signum)
        self.note = " ".join(str(note).split())
        super().__init__(self.describe())

    @property
    def exit_code(self) -> int:
        """``128 + signum``, as a shell reports a process ended by that signal."""
        return 128 + self.signum

    def describe(self) -> str:
        import signal

        try:
            name = signal.Signals(self.signum).name
        except ValueError:
            name = f"signal {self.signum}"
        return f"interrupted by {name}" + (f"; {self.note}" if self.note else "")
