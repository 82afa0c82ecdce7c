"""Shared fixtures: tiny synthetic data, made once per test session."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    # Two xdist workers on two cores: one intra-op thread each avoids oversubscription.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:  # pragma: no cover
            pass


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repo; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def saved_figures(monkeypatch: pytest.MonkeyPatch) -> Callable[[str | Path], object]:
    """``saved_figures(path) -> Figure``: the matplotlib Figure whose rendering is the file
    at ``path``, for every figure saved during the test (matched by the file's bytes, so it
    works through atomic renames), so tests check what a figure shows, not its file size."""
    from matplotlib.figure import Figure

    by_digest: dict[str, Figure] = {}
    original = Figure.savefig

    def savefig(self: Figure, fname: object, *args: object, **kwargs: object) -> None:
        original(self, fname, *args, **kwargs)
        if isinstance(fname, str | os.PathLike):
            by_digest[hashlib.sha256(Path(fname).read_bytes()).hexdigest()] = self

    monkeypatch.setattr(Figure, "savefig", savefig)

    def figure_of(path: str | Path) -> Figure:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert digest in by_digest, f"{path} is not a figure saved during this test"
        return by_digest[digest]

    return figure_of


class _TableParser:
    """Cells of the first ``<table>`` of an HTML page, by the standard library's parser."""

    def __init__(self, page: str) -> None:
        from html.parser import HTMLParser

        self.rows: list[list[tuple[str, bool]]] = []
        rows = self.rows
        state = {"in_table": False, "cell": None, "bold": False, "done": False}

        class Parser(HTMLParser):
            def handle_starttag(self, tag: str, attrs: object) -> None:
                if tag == "table" and not state["done"]:
                    state["in_table"] = True
                elif state["in_table"] and tag == "tr":
                    rows.append([])
                elif state["in_table"] and tag in ("td", "th"):
                    state["cell"], state["bold"] = "", False
                elif state["in_table"] and tag == "strong":
                    state["bold"] = True

            def handle_endtag(self, tag: str) -> None:
                if tag == "table":
                    state["in_table"], state["done"] = False, True
                elif state["in_table"] and tag in ("td", "th"):
                    rows[-1].append((state["cell"], state["bold"]))
                    state["cell"] = None

            def handle_data(self, data: str) -> None:
                if state["cell"] is not None:
                    state["cell"] += data

        Parser().feed(page)


@pytest.fixture(scope="session")
def html_table() -> Callable[[str], dict[str, dict[str, tuple[str, bool]]]]:
    """``html_table(page) -> {row header: {column header: (text, bold)}}`` of the page's
    first table, parsed with :mod:`html.parser` (not with the code under test)."""

    def parse(page: str) -> dict[str, dict[str, tuple[str, bool]]]:
        header, *body = _TableParser(page).rows
        columns = [text for text, _ in header[1:]]
        return {row[0][0]: dict(zip(columns, row[1:], strict=True)) for row in body}

    return parse


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic Landslide4Sense root (TrainData/ValidData/TestData), 48 patches."""
    from slidemap.data.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("synthetic") / "l4s"
    generate_dataset(out, n_patches=48, seed=7)
    return out


# ------------------------------------------------ training fixtures (tests/training, tests/cli)
def _tiny_config(root: Path, **trainer: object):
    """A width-8 UNet on all seven features, a few CPU epochs, on the dataset at ``root``."""
    from slidemap.config import experiment_from_dict

    return experiment_from_dict({
        "name": "tiny",
        "data": {"root": str(root), "batch_size": 4},
        "model": {"name": "unet", "options": {"base_channels": 8, "depth": 2}},
        "optim": {"lr": 0.005},
        "trainer": {"max_epochs": 6, "patience": 0, "seed": 3, "accelerator": "cpu",
                    "devices": 1, "progress": False, **trainer},
    })


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(root, **trainer_overrides) -> ExperimentConfig`` (see ``_tiny_config``)."""
    return _tiny_config


@pytest.fixture(scope="session")
def tiny_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """``RunResult`` of one tiny training run on ``synthetic_root`` (trained once per session)."""
    from slidemap.workflows.train import train_and_report

    return train_and_report(_tiny_config(synthetic_root), tmp_path_factory.mktemp("tiny") / "run")
