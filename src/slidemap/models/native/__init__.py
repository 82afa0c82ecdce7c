"""Native kernels: C++ sources shipped with slidemap, compiled on first use, always optional.

A kernel here is one ``<name>.cpp`` beside this file with a plain C interface, loaded
through :mod:`ctypes` (no Python headers, no torch C++ ABI). :func:`load_library` builds it
once per machine with the C++ compiler it finds (``$CXX``, else ``c++``, ``g++``,
``clang++``), ``-O3 -march=native -fopenmp``, into a cache folder
(``$SLIDEMAP_CACHE_DIR``, else ``$XDG_CACHE_HOME/slidemap``, else ``~/.cache/slidemap``),
under a name that hashes the source, the compiler, the flags and the CPU's feature flags,
so a cache shared by different machines never hands one a binary built for another. The
file is written under a temporary name and renamed, so concurrent processes (Dask workers)
never load half a library.

Nothing requires it: without a compiler, on a build or load failure, or with
``SLIDEMAP_NATIVE=0``, :func:`load_library` returns ``None`` (logged once, at INFO) and the
callers run the same maths as framework ops. :func:`status` says which happened.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent
#: environment switch: "0" keeps every native kernel off.
ENV_SWITCH = "SLIDEMAP_NATIVE"
ENV_CACHE = "SLIDEMAP_CACHE_DIR"
COMPILERS = ("c++", "g++", "clang++")
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC")
OPENMP_FLAG = "-fopenmp"
BUILD_TIMEOUT_S = 300


@dataclass(frozen=True)
class KernelStatus:
    """How a kernel was obtained: ``state`` is ``"loaded"``, ``"disabled"`` or ``"unavailable"``;
    ``detail`` the library path or the reason."""

    name: str
    state: str
    detail: str


_STATUS: dict[str, KernelStatus] = {}


def enabled() -> bool:
    """False when ``SLIDEMAP_NATIVE=0``."""
    return os.environ.get(ENV_SWITCH, "1").strip() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """Where built libraries are kept (see the module docstring)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]) / "native"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slidemap" / "native"


def _compiler() -> str | None:
    wanted = os.environ.get("CXX")
    candidates = (wanted,) if wanted else COMPILERS
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


def _cpu_flags() -> str:
    """The CPU's feature flags (``-march=native`` depends on them)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler_version(compiler: str) -> str:
    try:
        done = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.splitlines()[0] if done.stdout else ""


def _build(source: Path, compiler: str, flags: tuple[str, ...], target: Path) -> str | None:
    """Compile ``source`` into ``target`` atomically; the compiler's complaint on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".so", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        done = subprocess.run([compiler, *flags, str(source), "-o", str(tmp)], capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT_S)
        if done.returncode != 0:
            complaint = (done.stderr or done.stdout).strip().splitlines()
            return f"{Path(compiler).name} failed: {complaint[-1] if complaint else f'exit {done.returncode}'}"
        os.replace(tmp, target)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        tmp.unlink(missing_ok=True)


def _unavailable(name: str, state: str, detail: str) -> None:
    _STATUS[name] = KernelStatus(name, state, detail)
    log.info("native kernel %s not used (%s): running framework ops instead", name, detail)


@functools.cache
def load_library(name: str) -> ctypes.CDLL | None:
    """The compiled ``<name>.cpp`` (built on first use, then from the cache), or ``None``."""
    if not enabled():
        _unavailable(name, "disabled", f"{ENV_SWITCH}=0")
        return None
    source = SOURCE_DIR / f"{name}.cpp"
    compiler = _compiler()
    if compiler is None:
        _unavailable(name, "unavailable", "no C++ compiler found ($CXX, c++, g++, clang++)")
        return None
    text = source.read_bytes()
    errors = []
    for flags in ((*FLAGS, OPENMP_FLAG), FLAGS):  # without OpenMP: single-threaded kernels
        key = hashlib.sha256(b"\0".join([text, compiler.encode(), _compiler_version(compiler).encode(),
                                         " ".join(flags).encode(), _cpu_flags().encode(),
                                         platform.machine().encode()])).hexdigest()[:16]
        target = cache_dir() / f"{name}-{key}.so"
        if not target.exists():
            problem = _build(source, compiler, flags, target)
            if problem is not None:
                errors.append(problem)
                continue
        try:
            library = ctypes.CDLL(str(target))
        except OSError as exc:
            errors.append(f"cannot load {target}: {exc}")
            continue
        _STATUS[name] = KernelStatus(name, "loaded", str(target))
        log.debug("native kernel %s: %s", name, target)
        return library
    _unavailable(name, "unavailable", "; ".join(errors)[:300])
    return None


def status(name: str) -> KernelStatus:
    """Load (or fail to load) kernel ``name`` and say how it went."""
    load_library(name)
    return _STATUS[name]
