"""Fixtures of the real-imagery tests live in ``rgbd_fakes`` (tiny fake rgbd patches)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rgbd_fakes import rgbd_areas  # noqa: E402,F401 - fixture
