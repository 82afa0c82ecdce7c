"""Fixtures of the mapping tests live in ``mapping_helpers`` (shared with ``tests/io``) and,
for Sentinel-2 products, ``sentinel2_helpers``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mapping_helpers import make_scene, tiny_checkpoint, tiny_engine  # noqa: E402,F401 - fixtures
from sentinel2_helpers import l2a_engine, s2_scene, tiny_l2a_checkpoint  # noqa: E402,F401 - fixtures
