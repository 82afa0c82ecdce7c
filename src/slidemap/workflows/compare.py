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
calibration.png     reliability diagram of every model (15 bins), ECE in the legend
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from slidemap.config import CompareConfig, ExperimentConfig, resolve_data_path, save_config
from slidemap.data.l4s import split_refs
from slidemap.data.synthetic.patches import synthetic_summary
from slidemap.errors import ConfigError
from slidemap.evaluation.bootstrap import (
    BootstrapResult,
    block_bootstrap,
    describe_differences,
    patch_blocks,
)
from slidemap.evaluation.seeds import seed_html_table, seed_markdown_table, write_seed_table
from slidemap.evaluation.table import table_caption, write_table
from slidemap.io.outputs import OutputFolder, holding
from slidemap.training.run import RunResult
from slidemap.workflows.evaluate import Evaluation, evaluate_checkpoint, write_metrics
from slidemap.workflows.figures import (
    select_panel_ids,
    write_activations_figure,
    write_evaluation_figures,
    write_features_figure,
    write_training_curves,
)
from slidemap.workflows.report import RunRecord, build_report
from slidemap.workflows.train import CURVES_FILE, train_and_report

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
    caption: str = ""
    alerts: list[str] = field(default_factory=list)
    run_records: list[RunRecord] = field(default_factory=list)
    seeds: SeedComparison | None = None

    def rebuild_report(self) -> None:
        """Write ``report.md``/``report.html`` again from :attr:`figures` and :attr:`notes`
        (after a caller appended its own, e.g. the demo's scene map)."""
        self.report_md, self.report_html = build_report(
            self.out_dir, self.title, self.metrics, self.figures, self.notes,
            caption=self.caption, alerts=self.alerts, runs=self.run_records,
            tables=None if self.seeds is None else self.seeds.tables(),
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
                  out_dir: Path, first_runs: dict[str, RunResult], scoring: dict[str, Any],
                  records: list[RunRecord]) -> SeedComparison:
    """Train every model for every seed after the first (whose runs are ``first_runs``),
    score each on the comparison split (``scoring``: the keyword arguments of
    :func:`~slidemap.workflows.evaluate.evaluate_checkpoint`, the same for every run), and
    bootstrap F1 over blocks of its patches."""
    metrics: dict[str, list[dict[str, float | int]]] = {}
    counts = []
    ids: list[str] = []
    for name, experiment in experiments.items():
        metrics[name], per_seed = [], []
        for seed in config.seeds:
            run = first_runs[name]
            if seed != config.seeds[0]:
                run_started = datetime.now(UTC).astimezone()
                run = train_and_report(seeded(experiment, seed),
                                       out_dir / "runs" / slug(name) / f"seed{seed}", overwrite=True)
                records.append(run_record(name, run, seed, run_started, out_dir))
            evaluation = evaluate_checkpoint(run.best_checkpoint, data, config.split, **scoring)
            write_metrics(evaluation, run.out_dir / f"metrics_{config.split}.json")
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


def run_record(name: str, run: RunResult, seed: int, started: datetime, out_dir: Path) -> RunRecord:
    """How the report lists one training run of a comparison in ``out_dir``."""
    from slidemap import __version__

    return RunRecord(name=name, config=(run.out_dir / "config.yaml").relative_to(out_dir).as_posix(),
                     seed=seed, version=__version__, started=started, seconds=run.seconds,
                     best_epoch=run.best_epoch + 1, epochs=len(run.history))


def synthetic_alerts(data: Path) -> list[str]:
    """The report's warning when ``data`` is a synthetic dataset (it has ``synthetic.json``)."""
    summary = synthetic_summary(data)
    if summary is None:
        return []
    return [f"These data are synthetic ({summary.parent}, generated by slidemap; see "
            f"{summary.name}): the scores show that the pipeline works, not how well a model "
            "maps real landslides."]


def calibration_data(config: CompareConfig) -> Path | None:
    """The comparison's training data (``base.data.train_path``, else the root, whose
    training split is read), which calibrates ``--precision int8``."""
    data = config.base.data
    path = data.train_path or data.root
    return None if path is None else resolve_data_path(path)


#: files a comparison writes into its folder (besides ``runs/``).
COMPARISON_OUTPUTS: tuple[str, ...] = (
    "compare.yaml", "table1.md", "table1.csv", "table1.json", "roc.png", "pr.png",
    "confusion.png", "calibration.png", "panels.png", CURVES_FILE, "features.png", "activations.png",
    "report.md", "report.html",
)


def run_comparison(config: CompareConfig, out_dir: str | Path, *, engine: str = "auto",
                   precision: str = "fp32", calibration: str | Path | None = None,
                   overwrite: bool = False) -> ComparisonResult:
    """Train and evaluate every model of ``config`` on the same data; write Table 1,
    the figures and the report into ``out_dir`` (see the module docstring).

    Args:
        config: the comparison (registry names checked: :func:`~slidemap.workflows.configs.load_comparison`).
        out_dir: the comparison folder.
        engine: inference engine of the evaluations (``auto``: torch for patches), as
            ``slidemap evaluate --engine``; recorded in each ``metrics_<split>.json``.
        precision: numeric precision of the evaluations (``fp32``, ``bf16``, ``int8``;
            int8 is calibrated on ``calibration``, else on the comparison's training data).
        overwrite: replace the comparison's own earlier outputs and runs (never another
            file: :mod:`slidemap.io.outputs`); the metrics, table, figures and report appear
            together at the end.

    Raises:
        ConfigError: no data for the split (:func:`comparison_data`), or a bad model variant.
        OutputError: ``out_dir`` holds earlier outputs (without ``overwrite``) or foreign files.
    """
    with holding(out_dir, "compare", overwrite=overwrite) as folder:
        folder.claim(COMPARISON_OUTPUTS)
        return _run_comparison(config, Path(out_dir), engine, folder, precision, calibration)


def _run_comparison(config: CompareConfig, out_dir: Path, engine: str, folder: OutputFolder,
                    precision: str = "fp32", calibration: str | Path | None = None) -> ComparisonResult:
    started = time.perf_counter()
    data = comparison_data(config)
    experiments = config.experiments()
    save_config(config, out_dir / "compare.yaml")

    result = ComparisonResult(out_dir=out_dir)
    for name, experiment in experiments.items():
        log.info("training %s (%s)", name, experiment.model.name)
        run_started = datetime.now(UTC).astimezone()
        run_dir = out_dir / "runs" / slug(name)
        if config.seeds:  # the first seed's runs make the figures
            experiment = seeded(experiment, config.seeds[0])
            run_dir = run_dir / f"seed{config.seeds[0]}"
        # overwrite=True: the comparison's folder decides what may be replaced (its own
        # earlier runs with --overwrite, never a foreign file)
        run = train_and_report(experiment, run_dir, overwrite=True)
        result.runs[name] = run
        result.run_records.append(
            run_record(name, run, experiment.trainer.seed, run_started, out_dir))

    refs = split_refs(data, config.split)
    panel_ids = select_panel_ids(refs, config.panels.count, config.panels.ids)
    evaluations: dict[str, Evaluation] = {}
    scoring: dict[str, Any] = {"engine": engine, "tta": config.tta, "precision": precision,
                               "calibration": calibration or calibration_data(config)}
    for name, run in result.runs.items():
        evaluations[name] = evaluate_checkpoint(run.best_checkpoint, data, config.split,
                                                keep_ids=panel_ids, **scoring)
        result.metrics[name] = evaluations[name].metrics
    if config.seeds:  # every further seed trained and scored before anything is written
        result.seeds = compare_seeds(config, experiments, data, out_dir, result.runs, scoring,
                                     result.run_records)
    with folder.output_set():  # the metrics, table, figures and report appear together
        _write_products(config, result, evaluations, data, refs, panel_ids, started)
    return result


def _write_products(config: CompareConfig, result: ComparisonResult,
                    evaluations: dict[str, Evaluation], data: Path, refs: list[Any],
                    panel_ids: list[str], started: float) -> None:
    """Per-run metrics, Table 1, the figures and the report of :func:`run_comparison`."""
    out_dir = result.out_dir
    for name, run in result.runs.items():
        write_metrics(evaluations[name], run.out_dir / f"metrics_{config.split}.json")

    if result.seeds is not None:
        table = write_seed_table(result.seeds.metrics, out_dir, intervals=result.seeds.bootstrap)
    else:
        table = write_table(result.metrics, out_dir)
    figures = write_evaluation_figures(evaluations, out_dir, panel_ids)
    figures["curves"] = write_training_curves(
        {name: run.history for name, run in result.runs.items()}, out_dir / CURVES_FILE)
    by_id = {ref.id: ref for ref in refs}
    feature_patch = config.features_patch or (panel_ids[0] if panel_ids else refs[0].id)
    if feature_patch not in by_id:
        raise ConfigError(f"features_patch {feature_patch!r} is not in the {config.split} split")
    first_run = next(iter(result.runs.values()))
    figures["features"] = write_features_figure(first_run.best_checkpoint, by_id[feature_patch],
                                                out_dir / "features.png")
    wanted = config.activations
    if panel_ids and wanted.model in result.runs:
        figures["activations"] = write_activations_figure(
            result.runs[wanted.model].best_checkpoint, wanted, by_id[panel_ids[0]],
            out_dir / "activations.png")
    elif panel_ids:
        log.info("no activations figure: model %r is not among %s", wanted.model, list(result.runs))

    result.seconds = time.perf_counter() - started
    captions = {
        "curves": "Per-epoch loss, precision, recall and F1 (training solid, validation dashed) "
                  "- Fig. 4, 7, 8",
        "roc": f"ROC curves on the {config.split} split, on linear axes and with the false "
               "positive rate on a log scale (where the models differ) - Fig. 5, 11",
        "pr": f"Precision-recall curves on the {config.split} split",
        "confusion": "Confusion matrices (rows: true label, columns: predicted) - Fig. 10",
        "calibration": f"Reliability diagram on the {config.split} split: landslide fraction "
                       "against mean predicted probability in 15 equal-width bins, with each "
                       "model's expected calibration error (ECE); pixels per bin below",
        "panels": "Predictions on the same patches (TP, FP, FN coloured) - Fig. 6, 9",
        "features": f"True colour and feature maps of patch {feature_patch} - Fig. 2",
        "activations": f"Activations of {config.activations.model} layer "
                       f"'{config.activations.layer}' - Fig. 3",
    }
    record = next(iter(evaluations.values())).record
    notes = [
        f"Data: {data}, {len(refs)} patches in the {config.split} split; metrics over all "
        "pixels of the split from one confusion matrix.",
        "Each model's threshold is its checkpoint's: the validation max-F1, or the config's "
        "fixed value (column 'Threshold').",
        f"Probabilities by the {record['engine']} engine at {record['inference_precision']} (the "
        "path of slidemap predict)"
        + (", averaged over the 8 flips and 90° rotations of each patch (test-time augmentation)"
           if config.tta else "")
        + ", masks thresholded without post-processing, as in the submission format.",
        "Expected calibration error (15 bins): " + ", ".join(
            f"{name} {metrics['ece']:.4f}" for name, metrics in result.metrics.items()) + ".",
        f"Table files: {table.markdown.name}, {table.csv.name}, {table.json.name}. "
        f"Total time {result.seconds:.0f} s.",
        *(result.seeds.notes() if result.seeds is not None else []),
    ]
    order = ("curves", "roc", "pr", "confusion", "calibration", "panels", "features", "activations")
    result.title = f"slidemap comparison: {config.name}"
    result.caption = table_caption(result.metrics, config.split, len(refs))
    result.alerts = synthetic_alerts(data)
    result.figures = [(captions[key], figures[key]) for key in order if key in figures]
    result.notes = notes
    result.rebuild_report()
