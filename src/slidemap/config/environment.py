"""Settings read from the environment (as opposed to a config file).

``SLIDEMAP_NO_PROGRESS=1`` switches every progress bar off (training, scene mapping), e.g.
in CI logs; bars are also off whenever stderr is not a terminal.
"""

from __future__ import annotations

import os
import sys

#: environment variable that switches progress bars off when set to anything but 0.
NO_PROGRESS_VARIABLE = "SLIDEMAP_NO_PROGRESS"


def progress_enabled() -> bool:
    """Whether to draw a progress bar: stderr is a terminal and ``SLIDEMAP_NO_PROGRESS`` is
    unset, empty or 0."""
    return sys.stderr.isatty() and os.environ.get(NO_PROGRESS_VARIABLE, "0") in ("", "0")
