"""The workflow tests run on the tiny fake rgbd areas of ``tests/realdata/rgbd_fakes``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realdata"))

from rgbd_fakes import rgbd_areas  # noqa: E402,F401 - fixture
