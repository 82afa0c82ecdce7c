"""The synthetic data rewards terrain and context: single features lose to a model using both."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from slidemap.data.synthetic import generate_dataset  # noqa: E402

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "synthetic_baselines.py"


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("synthetic_baselines", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_with_spectra_terrain_and_context_beats_every_single_feature(tmp_path: Path) -> None:
    bench = _benchmark_module()
    root = generate_dataset(
        tmp_path / "l4s", n_patches=50, seed=21, split_fractions=(0.6, 0.1, 0.3)
    )
    train, y_train = bench.load_split(root, "train")
    test, y_test = bench.load_split(root, "test")
    singles = {
        n: bench.threshold_baseline(train[n], y_train, test[n], y_test)["test_f1"]
        for n in bench.SINGLE
    }
    full = bench.model_baseline(
        bench.SPECTRAL + bench.TERRAIN + bench.CONTEXT,
        train,
        y_train,
        test,
        y_test,
        max_pixels=40_000,
    )
    spectral = bench.model_baseline(bench.SPECTRAL, train, y_train, test, y_test, max_pixels=40_000)
    for name, f1 in singles.items():
        assert full["test_f1"] >= f1 + 0.15, (name, f1, full["test_f1"])
    assert full["test_f1"] >= spectral["test_f1"] + 0.1  # terrain is needed, not only colour
    assert singles["slope"] < 0.3  # steep forest everywhere: slope alone is useless
