"""Compare several models on the same data: the paper's Table 1, its figures and a report.

:func:`run_comparison` trains every model of a :class:`~slidemap.config.CompareConfig`
(each into ``<out>/runs/<slug>/``), evaluates each best checkpoint on the same split at
its own validation-chosen threshold, and writes into ``<out>``:

==================  ========================================================================
file                content
==================  ========================================================================
table1.md/.csv/…    Table 1 (every model, every metric; best per column in bold)
roc.png, pr.png     ROC and PR curves of all models on one plot each (Fig. 5, 11)
confusion.png       one confusion matrix per model (Fig. 10)
panels.png          the same test patches predicted by every model (Fig. 6, 9)
curves.png          per-epoch loss, precision, recall, F1, train and val (Fig. 4, 7, 8)
activations.png     the maps of one layer of one model for one patch (Fig. 3)
features.png        true colour and the seven feature maps of one patch (Fig. 2)
report.md/.html     all of the above; the HTML embeds its images
==================  ========================================================================

With ``seeds`` every model is trained once per seed (``<out>/runs/<slug>/seed<k>/``) and
Table 1 is the mean ± std over seeds, with a 95 % block-bootstrap interval of each model's
F1 and of every pair's F1 difference (paired: the same resampled blocks for both models);
the report says which differences are larger than the noise. The figures show the first
seed's models.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from slidemap.config import CompareConfig, ExperimentConfig, resolve_data_path, save_config
from slidemap.data.l4s import read_image
from slidemap.errors import ConfigError
from slidemap.evaluation.bootstrap import (
    BootstrapResult,
    block_bootstrap,
    describe_differences,
    patch_blocks,
)
from slidemap.evaluation.evaluate import (
    Evaluation,
    evaluate_checkpoint,
    select_panel_ids,
    split_refs,
    write_figures,
    write_metrics,
)
from slidemap.evaluation.report import build_report
from slidemap.evaluation.seeds import seed_html_table, seed_markdown_table, write_seed_table
from slidemap.evaluation.table import write_table
from slidemap.io.checkpoint import load_checkpoint
from slidemap.training.run import RunResult, train

log = logging.getLogger(__name__)


@dataclass
class ComparisonResult:
    """What :func:`run_comparison` produced.

    Attributes:
        out_dir: the comparison folder.
        runs: display name -> training result.
        metrics: display name -> ``metrics.json`` of its best checkpoint on the split.
        report_md, report_html: the report files.
        seconds: wall time of the whole comparison.
    """

    out_dir: Path
    runs: dict[str, RunResult] = field(default_factory=dict)
    metrics: dict[str, dict[str, float | int]] = field(default_factory=dict)
    report_md: Path | None = None
    report_html: Path | None = None
    seconds: float = 0.0
    title: str = ""
    figures: list[tuple[str, Path]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seeds: SeedComparison | None = None

    def rebuild_report(self) -> None:
        """Write ``report.md``/``report.html`` again from :attr:`figures` and :attr:`notes`
        (after a caller appended its own, e.g. the demo's scene map)."""
        tables = None if self.seeds is None else self.seeds.tables()
        self.report_md, self.report_html = build_report(
            self.out_dir, self.title, self.metrics, self.figures, self.notes, tables=tables
        )


@dataclass
class SeedComparison:
    """The models of a comparison over several seeds.

    Attributes:
        seeds: the training seeds.
        metrics: display name -> one ``metrics.json`` per seed (on the comparison split).
        bootstrap: block-bootstrap F1 intervals of every model and paired difference.
    """

    seeds: list[int]
    metrics: dict[str, list[dict[str, float | int]]]
    bootstrap: BootstrapResult

    def tables(self) -> tuple[str, str]:
        return (seed_markdown_table(self.metrics, intervals=self.bootstrap),
                seed_html_table(self.metrics, intervals=self.bootstrap))

    def notes(self) -> list[str]:
        """What the table means, and which F1 differences are larger than the noise."""
        b = self.bootstrap
        return [
            f"Table 1: mean ± std over seeds {', '.join(map(str, self.seeds))} "
            f"({len(self.seeds)} runs per model). F1 {100 * b.confidence:.0f} % CI: percentile "
            f"block bootstrap of the seed-mean F1 over the split's patches ({b.n_blocks} blocks "
            f"of neighbouring patches, {b.n_resamples} resamples); differences are paired "
            "(the same resampled blocks for both models).",
            *describe_differences(b),
        ]


def seeded(experiment: ExperimentConfig, seed: int) -> ExperimentConfig:
    """``experiment`` with ``trainer.seed`` replaced."""
    changed = copy.deepcopy(experiment)
    changed.trainer.seed = int(seed)
    return changed


def compare_seeds(config: CompareConfig, experiments: dict[str, ExperimentConfig], data: Path,
                  out_dir: Path, first_runs: dict[str, RunResult]) -> SeedComparison:
    """Train every model for every seed after the first (whose runs are ``first_runs``),
    score each on the comparison split, and bootstrap F1 over blocks of its patches."""
    metrics: dict[str, list[dict[str, float | int]]] = {}
    counts = []
    ids: list[str] = []
    for name, experiment in experiments.items():
        metrics[name], per_seed = [], []
        for seed in config.seeds:
            run = first_runs[name] if seed == config.seeds[0] else train(
                seeded(experiment, seed), out_dir / "runs" / slug(name) / f"seed{seed}", overwrite=True)
            evaluation = evaluate_checkpoint(run.best_checkpoint, data, config.split)
            write_metrics(evaluation.metrics, run.out_dir / f"metrics_{config.split}.json")
            metrics[name].append(evaluation.metrics)
            ids = list(evaluation.patch_counts)
            per_seed.append([evaluation.patch_counts[i] for i in ids])
        counts.append(per_seed)
    blocks, block_strata = patch_blocks(ids)
    bootstrap = block_bootstrap(list(experiments), np.asarray(counts), blocks, block_strata)
    return SeedComparison(list(config.seeds), metrics, bootstrap)


def slug(name: str) -> str:
    """Folder-safe form of a display name: ``"UNet-CBAM"`` -> ``"unet-cbam"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


def _activations_figure(config: CompareConfig, runs: dict[str, RunResult], data: Path,
                        patch_id: str, out_dir: Path) -> Path | None:
    """Fig. 3: the maps of ``config.activations.layer`` for one patch (None if not wanted)."""
    from slidemap.data.datamodule import PatchDataset
    from slidemap.plots.activations import capture_activation, plot_activations
    from slidemap.plots.io import save_figure

    wanted = config.activations
    if wanted.model not in runs:
        log.info("no activations figure: model %r is not among %s", wanted.model, list(runs))
        return None
    loaded = load_checkpoint(runs[wanted.model].best_checkpoint)
    refs = [r for r in split_refs(data, config.split) if r.id == patch_id]
    sample = PatchDataset(refs, loaded.pipeline, stats=loaded.stats)[0]
    maps = capture_activation(loaded.model, wanted.layer, sample["image"].unsqueeze(0))[0]
    figure = plot_activations(maps, f"{wanted.model}: {wanted.layer}", wanted.max_channels)
    return save_figure(figure, out_dir / "activations.png")


def _features_figure(config: CompareConfig, data: Path, patch_id: str, out_dir: Path) -> Path:
    """Fig. 2: true colour and the seven feature maps of one patch."""
    from slidemap.bands import get_band_set
    from slidemap.plots.features import plot_feature_maps
    from slidemap.plots.io import save_figure

    band_set = get_band_set(config.base.data.band_set)
    ref = next(r for r in split_refs(data, config.split) if r.id == patch_id)
    bands = read_image(ref.image, n_bands=len(band_set))
    figure = plot_feature_maps(bands, band_set, config.base.data.pixel_size_m,
                               title=f"patch {patch_id}")
    return save_figure(figure, out_dir / "features.png")


def comparison_data(config: CompareConfig) -> Path:
    """The folder Table 1 is computed on: the path given for ``config.split``
    (``base.data.test_path`` / ``val_path`` / ``train_path``, e.g. one area of the rgbd
    data), else the dataset root (its split ``config.split`` is read).

    Raises:
        ConfigError: neither is given.
    """
    data = config.base.data
    split_path = {"train": data.train_path, "valid": data.val_path, "test": data.test_path}
    path = split_path[config.split] or data.root
    if path is None:
        raise ConfigError(
            f"the comparison needs data for its {config.split!r} split: give --data DIR, "
            "base.data.root or the split's path (base.data.test_path, val_path, train_path)")
    return resolve_data_path(path)


def run_comparison(config: CompareConfig, out_dir: str | Path) -> ComparisonResult:
    """Train and evaluate every model of ``config`` on the same data; write Table 1,
    the figures and the report into ``out_dir`` (see the module docstring).

    Raises:
        ConfigError: no data for the split (:func:`comparison_data`), or a bad model variant.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = comparison_data(config)
    experiments = config.experiments()
    save_config(config, out_dir / "compare.yaml")

    result = ComparisonResult(out_dir=out_dir)
    for name, experiment in experiments.items():
        log.info("training %s (%s)", name, experiment.model.name)
        if config.seeds:
            result.runs[name] = train(seeded(experiment, config.seeds[0]), out_dir / "runs"
                                      / slug(name) / f"seed{config.seeds[0]}", overwrite=True)
        else:
            result.runs[name] = train(experiment, out_dir / "runs" / slug(name), overwrite=True)

    refs = split_refs(data, config.split)
    panel_ids = select_panel_ids(refs, config.panels.count, config.panels.ids)
    evaluations: dict[str, Evaluation] = {}
    for name, run in result.runs.items():
        evaluation = evaluate_checkpoint(run.best_checkpoint, data, config.split, keep_ids=panel_ids)
        write_metrics(evaluation.metrics, run.out_dir / f"metrics_{config.split}.json")
        evaluations[name] = evaluation
        result.metrics[name] = evaluation.metrics

    if config.seeds:
        result.seeds = compare_seeds(config, experiments, data, out_dir, result.runs)
        table = write_seed_table(result.seeds.metrics, out_dir, intervals=result.seeds.bootstrap)
    else:
        table = write_table(result.metrics, out_dir)
    figures = write_figures(evaluations, out_dir, panel_ids)
    from slidemap.plots.curves import plot_training_curves
    from slidemap.plots.io import save_figure

    figures["curves"] = save_figure(
        plot_training_curves({name: run.history for name, run in result.runs.items()},
                             metrics=("loss", "precision", "recall", "f1")),
        out_dir / "curves.png")
    feature_patch = config.features_patch or (panel_ids[0] if panel_ids else refs[0].id)
    figures["features"] = _features_figure(config, data, feature_patch, out_dir)
    if panel_ids:
        with torch.inference_mode():
            activations = _activations_figure(config, result.runs, data, panel_ids[0], out_dir)
        if activations is not None:
            figures["activations"] = activations

    result.seconds = time.perf_counter() - started
    captions = {
        "curves": "Per-epoch loss, precision, recall and F1 (training solid, validation dashed) "
                  "- Fig. 4, 7, 8",
        "roc": f"ROC curves on the {config.split} split - Fig. 5, 11",
        "pr": f"Precision-recall curves on the {config.split} split",
        "confusion": "Confusion matrices (rows: true label, columns: predicted) - Fig. 10",
        "panels": "Predictions on the same patches (TP, FP, FN coloured) - Fig. 6, 9",
        "features": f"True colour and feature maps of patch {feature_patch} - Fig. 2",
        "activations": f"Activations of {config.activations.model} layer "
                       f"'{config.activations.layer}' - Fig. 3",
    }
    notes = [
        f"Data: {data}, {len(refs)} patches in the {config.split} split; metrics over all "
        "pixels of the split from one confusion matrix.",
        "Each model's threshold is its checkpoint's: the validation max-F1, or the config's "
        "fixed value (column 'Threshold').",
        *(f"{name}: {run.out_dir.relative_to(out_dir)} (best epoch {run.best_epoch + 1} of "
          f"{len(run.history)}, {run.seconds:.0f} s)" for name, run in result.runs.items()),
        f"Table files: {table.markdown.name}, {table.csv.name}, {table.json.name}. "
        f"Total time {result.seconds:.0f} s.",
        *(result.seeds.notes() if result.seeds is not None else []),
    ]
    order = ("curves", "roc", "pr", "confusion", "panels", "features", "activations")
    result.title = f"slidemap comparison: {config.name}"
    result.figures = [(captions[key], figures[key]) for key in order if key in figures]
    result.notes = notes
    result.rebuild_report()
    return result
