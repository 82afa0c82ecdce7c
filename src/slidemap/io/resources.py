"""The memory budget: what a file declares is checked before anything is allocated.

A file states the size of what reading it will allocate (an ``.h5`` dataset's shape, a
GeoTIFF's width and block size, an ONNX model's initializers, a checkpoint's model
options). A hand-made or corrupted file can declare a 200 000 × 200 000 array in a few
bytes; reading it would exhaust the machine's memory (or be killed by the OOM killer)
instead of failing with one line. :func:`check_allocation` compares a declared size with
the budget and raises :class:`~slidemap.errors.ResourceError` naming the file.

The budget is ``SLIDEMAP_MEMORY_BUDGET`` (``"8GB"``, ``"512MiB"``, a number of bytes) or else
half the memory available when the process starts.
"""

from __future__ import annotations

import functools
import math
import os
import re
from pathlib import Path

from slidemap.errors import ConfigError, ResourceError

#: environment variable that sets the budget.
BUDGET_ENV = "SLIDEMAP_MEMORY_BUDGET"
#: share of the available memory used when the variable is not set.
AVAILABLE_SHARE = 0.5
#: budget when the available memory cannot be read.
FALLBACK_BYTES = 4 * 2**30

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str) -> int:
    """``"8GB"`` → 8e9, ``"512MiB"`` → 536870912, ``"1e9"`` → 1e9.

    Raises:
        ConfigError: not a positive size.
    """
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ConfigError(f"{BUDGET_ENV}={text!r} is not a size such as 8GB, 512MiB or 1000000000")
    value = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(value) or value < 1:
        raise ConfigError(f"{BUDGET_ENV}={text!r} must be a positive size")
    return int(value)


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@functools.lru_cache(maxsize=8)
def _budget(setting: str | None) -> int:
    if setting:
        return parse_bytes(setting)
    available = _available_bytes()
    return int(available * AVAILABLE_SHARE) if available else FALLBACK_BYTES


def memory_budget_bytes() -> int:
    """Bytes one array (or one model) read from a file may take."""
    return _budget(os.environ.get(BUDGET_ENV) or None)


def format_bytes(n: float) -> str:
    """``1.5 GB``, ``320 TB``: decimal units, three significant digits."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def check_allocation(n_bytes: float, what: str, path: str | Path | None = None) -> None:
    """Refuse to allocate ``n_bytes`` for ``what`` (declared by ``path``) beyond the budget.

    Raises:
        ResourceError: one line naming the file, the size and the budget.
    """
    budget = memory_budget_bytes()
    if not n_bytes <= budget:  # also refuses NaN
        raise ResourceError(
            f"{what} needs {format_bytes(n_bytes)}, more than the memory budget of "
            f"{format_bytes(budget)} (set {BUDGET_ENV} to change it)", path)


def array_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    """Bytes of an array of ``shape`` (Python integers: no overflow for absurd shapes)."""
    return math.prod(int(n) for n in shape) * int(itemsize)
