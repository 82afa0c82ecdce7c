"""Shared steps of the training-side commands (train, evaluate, compare, demo).

Not a subcommand itself (the dispatcher only imports the names in ``COMMANDS``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

#: libraries whose INFO chatter (tips, "GPU available") is hidden unless --verbose.
_QUIET_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")


def setup_logging(verbose: bool = False) -> None:
    """slidemap's progress lines on stderr; Lightning only from WARNING (all with --verbose).

    Lightning sets its own logger levels when imported, so it is imported first (every
    command that calls this trains or evaluates with it anyway).
    """
    import lightning.pytorch  # noqa: F401

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("slidemap")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        warnings.filterwarnings("ignore", module=r"lightning\..*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
        os.environ.setdefault("PYTHONWARNINGS", "ignore")  # DDP child processes too


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str) -> None:
    """``--config``, ``--data``, ``--set`` and ``--verbose``, as train and compare take them."""
    parser.add_argument("--config", required=True, metavar="CFG.yaml", help=config_help)
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="dataset root (TrainData/ValidData/TestData); replaces data.root")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config value, e.g. trainer.max_epochs=5 (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="also show Lightning's messages")
