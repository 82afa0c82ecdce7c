"""Shared helpers of the trust tests: bad files, tiny checkpoints, and CLI assertions.

Every catalogue test runs the real ``slidemap`` command (in process through
:func:`slidemap.cli.main`, or as a subprocess) and checks the user-facing contract of
SPEC "Errors": a non-zero exit, exactly one stderr line naming the file and the problem, no
traceback (unless ``--debug``), and no file under a final name in the output folder.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from slidemap.bands import get_band_set
from slidemap.cli import main
from slidemap.data.normalization import ChannelStats
from slidemap.features import InputPipeline
from slidemap.io.atomic import TMP_PREFIX
from slidemap.io.outputs import RESERVED
from slidemap.models import build_model

REPO = Path(__file__).resolve().parents[2]
UTM = "EPSG:32633"
ORIGIN = (500_000.0, 4_200_000.0)
#: a tiny network: every checkpoint of these tests loads and runs in milliseconds.
TINY_MODEL: dict[str, Any] = {"name": "unet", "options": {"base_channels": 4, "depth": 2}}
#: scene band set of the raster tests: red and NIR from the image, slope and DEM from a DEM.
SCENE_BANDS: dict[str, Any] = {
    "name": "scene4",
    "pixel_size_m": 10.0,
    "bands": [
        {"name": "B4", "role": "red", "physical_per_unit": 1.0, "unit": "reflectance"},
        {"name": "B8", "role": "nir", "physical_per_unit": 1.0, "unit": "reflectance"},
        {"name": "slope", "role": "slope", "physical_per_unit": 1.0, "unit": "deg"},
        {"name": "DEM", "role": "dem", "physical_per_unit": 1.0, "unit": "m"},
    ],
}


# ------------------------------------------------------------------------------- the CLI
@dataclass(frozen=True)
class CliResult:
    """Exit status and captured streams of one ``slidemap`` invocation."""

    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], argv: Sequence[str | Path]) -> CliResult:
    """Run ``slidemap argv...`` in this process and capture what it printed."""
    capsys.readouterr()  # drop anything printed before
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def run_cli_subprocess(argv: Sequence[str | Path], timeout: float = 120.0) -> CliResult:
    """Run ``python -m slidemap argv...`` in a child process (no progress bars)."""
    proc = subprocess.run(
        [sys.executable, "-m", "slidemap", *map(str, argv)], capture_output=True, text=True,
        timeout=timeout, env=child_env(), check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def child_env() -> dict[str, str]:
    """Environment of a child ``slidemap``: one thread, no progress bar, no warnings."""
    return {**os.environ, "SLIDEMAP_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1",
            "PYTHONWARNINGS": "ignore"}


def assert_one_line_error(result: CliResult, culprit: str | Path, *problem_words: str) -> None:
    """A non-zero exit and ONE error line on stderr, naming ``culprit`` (a file name) and
    containing each of ``problem_words`` (case-insensitive), with no traceback.

    Progress lines a command logged before it met the bad input (``train: 2 patches``) may
    precede the error line; the error line must be the last line and the only one that
    reports an error.
    """
    assert result.code != 0, f"exit status 0 for a bad input; stdout: {result.out!r}"
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    errors = [line for line in lines if "error" in line.lower() or "exception" in line.lower()]
    assert len(errors) == 1 and lines and errors[0] == lines[-1], (
        f"expected one error line, last on stderr; got:\n{result.err}")
    line = lines[-1]
    assert line.startswith("slidemap ") and ": error: " in line, line
    name = Path(culprit).name
    assert name in line, f"{name!r} not named in: {line}"
    for word in problem_words:
        assert word.lower() in line.lower(), f"{word!r} not in: {line}"


def final_files(folder: Path) -> list[str]:
    """Files under ``folder`` a user would take for output (temporaries and slidemap's
    lock and manifest excluded)."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith(TMP_PREFIX) and p.name not in RESERVED)


def assert_no_output(folder: Path) -> None:
    """Nothing at all under ``folder``: neither final files nor temporaries left behind."""
    if folder.exists():
        left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        assert left == [], f"a failed command left files in {folder}: {left}"


# ------------------------------------------------------------------------------ .h5 files
def write_h5(path: Path, datasets: dict[str, Any]) -> Path:
    """An HDF5 file holding ``datasets`` (``{key: array}``; a ``dict`` value makes a group)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        for key, value in datasets.items():
            if isinstance(value, dict):
                group = h5.create_group(key)
                for sub, array in value.items():
                    group.create_dataset(sub, data=array)
            else:
                h5.create_dataset(key, data=value)
    return path


def patch_image(n_bands: int = 14, size: int = 16, seed: int = 0) -> np.ndarray:
    """A valid Landslide4Sense image ``(size, size, n_bands)`` float64, as files store it."""
    return np.random.default_rng(seed).uniform(0.1, 2.0, (size, size, n_bands))


def patch_mask(size: int = 16, seed: int = 0) -> np.ndarray:
    """A valid mask ``(size, size)`` uint8 with both classes."""
    mask = np.zeros((size, size), np.uint8)
    mask[: size // 2, : size // 3] = 1
    return mask


def make_split_folder(folder: Path, n: int = 3, n_bands: int = 14, size: int = 16) -> Path:
    """``folder/img/image_<i>.h5`` and ``folder/mask/mask_<i>.h5``, all valid."""
    for i in range(n):
        write_h5(folder / "img" / f"image_{i}.h5", {"img": patch_image(n_bands, size, seed=i)})
        write_h5(folder / "mask" / f"mask_{i}.h5", {"mask": patch_mask(size, seed=i)})
    return folder


# ---------------------------------------------------------------------------- checkpoints
def write_checkpoint(path: Path, band_set: str | dict[str, Any] = "l4s14",
                     features: Sequence[str] = (), **section: Any) -> Path:
    """A slidemap checkpoint of a tiny UNet for ``band_set`` + ``features``, as
    ``slidemap train`` writes it; ``section`` overrides keys of the ``slidemap`` section."""
    pipeline = InputPipeline(band_set, features=tuple(features))
    torch.manual_seed(0)
    model = build_model(TINY_MODEL["name"], pipeline.in_channels, **TINY_MODEL["options"])
    n = pipeline.in_channels
    meta = {
        "format_version": 1,
        "model": TINY_MODEL,
        "in_channels": n,
        "pipeline": pipeline.to_dict(),
        "normalization": ChannelStats(pipeline.channel_names, np.full(n, 0.5), np.full(n, 2.0)).to_dict(),
        "threshold": 0.5,
        "config": {},
        "band_set": pipeline.band_set.name,
        **section,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "slidemap": meta}, path)
    return path


@pytest.fixture(scope="session")
def l4s_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid checkpoint for 14-band Landslide4Sense patches."""
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "l4s14.ckpt")


@pytest.fixture(scope="session")
def scene_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid checkpoint for GeoTIFF scenes of :data:`SCENE_BANDS` (red, NIR + DEM)."""
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "scene4.ckpt", SCENE_BANDS)


# -------------------------------------------------------------------------------- rasters
def write_raster(path: Path, array: np.ndarray, *, crs: str | None = UTM, res: float = 10.0,
                 origin: tuple[float, float] = ORIGIN, nodata: float | None = None,
                 descriptions: Sequence[str] = (), georeferenced: bool = True) -> Path:
    """Write ``(C, H, W)`` or ``(H, W)`` as a GeoTIFF (uncompressed, striped)."""
    data = array[None] if array.ndim == 2 else array
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
        "count": data.shape[0], "dtype": data.dtype, "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    if georeferenced:
        profile["transform"] = from_origin(*origin, res, res)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, text in enumerate(descriptions, start=1):
            dst.set_band_description(i, text)
    return path


def scene_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """``(2, size, size)`` uint16 red and NIR, reflectance × 10000."""
    rng = np.random.default_rng(seed)
    return rng.integers(300, 4000, (2, size, size)).astype(np.uint16)


def scene_dem(size: int = 64) -> np.ndarray:
    """``(size, size)`` float32 elevation in metres: an inclined plane."""
    rows = np.arange(size, dtype=np.float32)[:, None]
    return np.broadcast_to(100.0 + 3.0 * rows, (size, size)).astype(np.float32).copy()


#: ``predict`` on the torch engine: no ONNX export of the tiny checkpoint first (faster).
TORCH_ENGINE = ("--engine", "torch")


def write_scene(folder: Path, size: int = 64, seed: int = 0) -> tuple[Path, Path]:
    """A valid scene (``image.tif`` with B4, B8 described) and ``dem.tif`` on its grid."""
    image = write_raster(folder / "image.tif", scene_image(size, seed), descriptions=("B4", "B8"))
    dem = write_raster(folder / "dem.tif", scene_dem(size))
    return image, dem


def set_tiff_tag(path: Path, tag: int, value: int) -> Path:
    """Overwrite a SHORT/LONG tag of the first IFD of a little-endian classic TIFF in place."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"II*\x00", "expected a little-endian classic TIFF"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        entry_tag, entry_type = struct.unpack_from("<HH", data, entry)
        if entry_tag == tag:
            fmt = "<H" if entry_type == 3 else "<I"
            struct.pack_into(fmt, data, entry + 8, value)
            path.write_bytes(bytes(data))
            return path
    raise AssertionError(f"tag {tag} not in {path}")


# -------------------------------------------------------------------- killing a child run
def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float,
             what: str) -> None:
    """Poll ``predicate`` every 5 ms until it holds; fail if ``proc`` ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"the command ended (status {proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def start_cli(argv: Sequence[str | Path]) -> subprocess.Popen[bytes]:
    """Start ``python -m slidemap argv...`` in a child process."""
    return subprocess.Popen([sys.executable, "-m", "slidemap", *map(str, argv)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env())


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` (no cleanup handlers run) and reap it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def temporaries(folder: Path) -> list[Path]:
    """Temporary files of atomic writes in ``folder`` (a write in progress, or a killed one)."""
    return sorted(folder.glob(f"{TMP_PREFIX}*")) if folder.is_dir() else []


def band_count(band_set: str) -> int:
    return len(get_band_set(band_set))


# ------------------------------------------------------------ small disks, read-only folders
def _mount(point: Path, options: str) -> None:
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_disk(kib) -> folder`` on a tmpfs of that size (a disk that fills up);
    skipped when not root; unmounted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted: list[Path] = []

    def make(kib: int) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        _mount(point, f"size={kib}k")
        mounted.append(point)
        return point

    yield make
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """An existing, empty folder nobody can write into: a read-only tmpfs as root (root
    ignores permissions), mode 0555 otherwise."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        _mount(folder, "size=64k")
        proc = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)
            pytest.skip(f"cannot remount read-only: {proc.stderr.strip()}")
        yield folder
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


# ------------------------------------------------------------------ exact resume
RESUME_EPOCHS = 3
#: a tiny run whose resume, after any interruption, must end bit-identical.
RESUME_CONFIG: dict[str, Any] = {
    "name": "resume",
    "data": {"band_set": "l4s14", "features": ["ndvi", "slope"], "batch_size": 2, "augment": True},
    "model": {"name": "unet", "options": {"base_channels": 8, "depth": 2}},
    "optim": {"name": "adam", "lr": 0.01},
    "schedule": {"name": "cosine", "min_lr": 0.001},
    "trainer": {"max_epochs": RESUME_EPOCHS, "accelerator": "cpu", "devices": 1, "patience": 0,
                "deterministic": True, "seed": 3, "progress": False},
}


def train_reference(root: Path, raw_config: dict[str, Any]) -> tuple[Path, Path, Path]:
    """``(config, data, reference run)``: ``raw_config`` written to ``root`` and trained once,
    uninterrupted, in a child process (one thread), on a 12-patch split folder."""
    import yaml

    data = make_split_folder(root / "data", n=12, size=32)
    config = root / "cfg.yaml"
    config.write_text(yaml.safe_dump(raw_config))
    reference = root / "reference"
    done = run_cli_subprocess(["train", "--config", config, "--data", data, "--out", reference])
    assert done.code == 0, done.err
    return config, data, reference


@pytest.fixture(scope="session")
def resume_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """:data:`RESUME_CONFIG` trained once (:func:`train_reference`), shared by every resume
    test of the session."""
    return train_reference(tmp_path_factory.mktemp("resume"), RESUME_CONFIG)


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def assert_same_run(reference: Path, resumed: Path) -> None:
    """Same ``metrics.csv`` and bit-identical weights in ``last.ckpt``."""
    assert (resumed / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    expected, got = last_weights(reference), last_weights(resumed)
    assert expected.keys() == got.keys()
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert different == [], f"weights differ after resume: {different[:5]}"
