"""Train one experiment and draw its curves: what ``slidemap train`` does.

Training itself (:func:`slidemap.training.run.train`) writes the checkpoints, the resolved
``config.yaml`` and ``metrics.csv``; this workflow adds ``curves.png`` (the paper's Fig. 4,
7, 8 for one model) from ``metrics.csv``, on the global-zero process only.
"""

from __future__ import annotations

from pathlib import Path

from lightning.fabric.utilities.rank_zero import rank_zero_only

from slidemap.config import ExperimentConfig
from slidemap.io.outputs import holding
from slidemap.training.run import RunResult, train
from slidemap.workflows.figures import write_training_curves

#: the figure of a run folder.
CURVES_FILE = "curves.png"


def train_and_report(
    config: ExperimentConfig, out_dir: str | Path, *, resume: bool = False,
    overwrite: bool = False, source: str | Path | None = None,
) -> RunResult:
    """:func:`~slidemap.training.run.train` ``config`` into ``out_dir``, then draw
    ``curves.png`` there (arguments and errors as :func:`~slidemap.training.run.train`),
    both in one hold of the run folder (:mod:`slidemap.io.outputs`)."""
    with holding(out_dir, "train", overwrite=resume or overwrite) as folder:
        if not resume:  # a resumed run's earlier curves are its own (adopted by train)
            folder.claim([CURVES_FILE])
        result = train(config, out_dir, resume=resume, overwrite=overwrite, source=source)
        if resume:  # the run folder proved to be a slidemap run (train checked last.ckpt)
            folder.adopt([CURVES_FILE])
        if rank_zero_only.rank == 0 and result.history:
            write_training_curves({config.name: result.history}, result.out_dir / CURVES_FILE)
    return result
