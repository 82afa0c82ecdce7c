"""Where the files a config names are found: configs shipped in the package, and data
paths relative to a source checkout.

Both helpers take a path as the user wrote it and return a path that exists when one of
the documented places has it; otherwise they return it unchanged, so the reader that opens
it names it in its error.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: the folder of the configs shipped inside the package (``slidemap/configs``).
PACKAGED_CONFIGS = "configs"


def resolve_config_path(path: str | Path) -> Path:
    """``path`` if it exists; otherwise a config shipped in the package under that name.

    So ``slidemap train --config paper/unet.yaml`` and ``configs/paper/unet.yaml`` both
    work from an installed package (``configs/`` prefix optional).
    """
    candidate = Path(path)
    if candidate.exists():
        return candidate
    relative = candidate.as_posix().removeprefix(f"{PACKAGED_CONFIGS}/")
    packaged = resources.files("slidemap") / PACKAGED_CONFIGS / relative
    if packaged.is_file():
        return Path(str(packaged))
    return candidate


def source_checkout() -> Path | None:
    """The root of the source checkout slidemap runs from (``src/slidemap`` beside a
    ``pyproject.toml``), or ``None`` for an installed package."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "slidemap").is_dir() else None


def resolve_data_path(path: str | Path) -> Path:
    """A data path as given if it exists, or else relative to the source checkout.

    Relative paths in shipped configs (``../shared/data/rgbd-landslides/area_A``) are first
    taken from the working directory; when nothing is there and slidemap runs from a source
    checkout (:func:`source_checkout`), from the checkout's root, so a shipped config works
    from any directory. Otherwise ``path`` is returned unchanged and the reader names it in
    its error. Absolute paths are never changed.
    """
    candidate = Path(path).expanduser()
    if candidate.exists() or candidate.is_absolute():
        return candidate
    checkout = source_checkout()
    if checkout is not None and (checkout / candidate).exists():
        return (checkout / candidate).resolve()
    return candidate
