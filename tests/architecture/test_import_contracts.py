"""The layer contract of docs/ARCHITECTURE.md bites: ``lint-imports`` (run by ``make lint``
and CI) passes on the package as it is and fails when a lower layer imports a higher one,
even inside a function, or when two independent layers import each other.

Each case copies the package and the project's contract (``pyproject.toml``) to a temporary
folder, adds one import to one module and runs ``lint-imports`` on the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_project(tmp: Path) -> Path:
    shutil.copytree(ROOT / "src" / "slidemap", tmp / "src" / "slidemap",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "configs"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    # the copy comes first on the path, before the installed (editable) package
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _inject(project: Path, module: str, code: str) -> None:
    path = project / "src" / Path(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text(encoding="utf-8") + "\n\n" + code + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def clean_result(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    return _lint(_copy_project(tmp_path_factory.mktemp("clean")))


def test_the_package_keeps_every_contract(clean_result: subprocess.CompletedProcess[str]) -> None:
    assert clean_result.returncode == 0, clean_result.stdout + clean_result.stderr
    assert "0 broken" in clean_result.stdout and "KEPT" in clean_result.stdout


CASES = {
    # (module that gets the import, code, the import the report must name)
    "io rebuilds a network (inside a function)": (
        "slidemap.io.checkpoint",
        "def _rebuild():\n    from slidemap.models import build_model\n    return build_model",
        "slidemap.io.checkpoint -> slidemap.models"),
    "data imports the features": (
        "slidemap.data.datamodule", "from slidemap.features import InputPipeline",
        "slidemap.data.datamodule -> slidemap.features"),
    "config imports a registry": (
        "slidemap.config.schema", "def _models():\n    import slidemap.models.registry",
        "slidemap.config.schema -> slidemap.models.registry"),
    "evaluation draws a figure": (
        "slidemap.evaluation.metrics", "def _draw():\n    from slidemap.plots.io import save_figure",
        "slidemap.evaluation.metrics -> slidemap.plots.io"),
    "training imports inference (independent layers)": (
        "slidemap.training.task", "from slidemap.inference.predictor import Predictor",
        "slidemap.training.task -> slidemap.inference.predictor"),
    "inference imports training (independent layers)": (
        "slidemap.inference.patches", "from slidemap.training.losses import build_loss",
        "slidemap.inference.patches -> slidemap.training.losses"),
    "a workflow imports the command line": (
        "slidemap.workflows.demo", "from slidemap.cli import main",
        "slidemap.workflows.demo -> slidemap.cli"),
    "evaluate runs an engine itself (a second inference path)": (
        "slidemap.workflows.evaluate", "from slidemap.inference.engine import load_engine",
        "slidemap.workflows.evaluate -> slidemap.inference.engine"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_upward_or_sideways_import_breaks_the_contract(case: str, tmp_path: Path) -> None:
    module, code, reported = CASES[case]
    project = _copy_project(tmp_path)
    _inject(project, module, code)
    result = _lint(project)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout and reported in result.stdout, result.stdout
