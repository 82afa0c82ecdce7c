"""Leave-one-area-out validation: train on every area but one, score the one left out.

For every area and every seed, :func:`run_crossval` trains the experiment on the other
areas (pooled, :func:`~slidemap.data.l4s.find_area_patches`) and scores the held-out area,
every pixel, with the run's ``best.ckpt`` at the threshold it carries. The held-out area
chooses nothing: the experiment's own validation policy applies inside the training areas
(``data.holdout``: a spatial block split that picks ``best.ckpt`` and, with
``threshold: best_f1``, the threshold), or there is no validation at all (a fixed threshold;
``best.ckpt`` is then the last epoch). ``data.val_path`` and ``data.root`` of the config
are ignored.

``<out>/`` receives:

====================================  ==================================================
file                                  content
====================================  ==================================================
crossval.md, crossval.json            the table: per held-out area, mean ± std over
                                      seeds, a 95 % block-bootstrap interval of F1, and
                                      the mean over areas; JSON also has every run
runs/<area>/seed<k>/                  each run folder (best.ckpt, last.ckpt, metrics.csv,
                                      config.yaml) and ``heldout.json`` (its metrics and
                                      per-patch counts on the held-out area)
====================================  ==================================================

A finished run whose folder holds the same experiment is reused, so an interrupted
cross-validation continues where it stopped; a folder from another experiment is refused.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import logging
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slidemap.config import ExperimentConfig, experiment_from_dict, save_config
from slidemap.data.l4s import area_names, find_patches
from slidemap.errors import ConfigError, InputError
from slidemap.evaluation.bootstrap import BootstrapResult, block_bootstrap, patch_blocks
from slidemap.io.atomic import write_text_atomic
from slidemap.io.outputs import holding

log = logging.getLogger(__name__)

#: metrics of the table, in order
TABLE_METRICS: tuple[str, ...] = ("f1", "iou", "mcc", "precision", "recall")
METRIC_LABELS = {"f1": "F1", "iou": "IoU", "mcc": "MCC", "precision": "precision", "recall": "recall"}
HELDOUT_FILE = "heldout.json"
ALL_AREAS = "mean over areas"


@dataclass
class CrossvalRun:
    """One training run of the cross-validation and its score on the held-out area.

    Attributes:
        area: name of the held-out area. seed: the training seed.
        run_dir: its run folder. train_seconds: wall time of its training.
        metrics: ``metrics.json`` keys of ``best.ckpt`` on every pixel of the held-out area.
        patch_counts: held-out patch id -> ``[tp, fp, fn, tn]``.
    """

    area: str
    seed: int
    run_dir: Path
    train_seconds: float
    metrics: dict[str, float]
    patch_counts: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"area": self.area, "seed": self.seed, "run_dir": str(self.run_dir),
                "train_seconds": self.train_seconds, "metrics": self.metrics,
                "patch_counts": self.patch_counts}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrossvalRun:
        return cls(area=str(data["area"]), seed=int(data["seed"]), run_dir=Path(data["run_dir"]),
                   train_seconds=float(data["train_seconds"]), metrics=dict(data["metrics"]),
                   patch_counts={k: list(v) for k, v in data.get("patch_counts", {}).items()})


@dataclass
class CrossvalResult:
    """Every run of a cross-validation and the table made of them."""

    out_dir: Path
    areas: list[str]
    seeds: list[int]
    runs: list[CrossvalRun]
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def run(self, area: str, seed: int) -> CrossvalRun:
        return next(r for r in self.runs if r.area == area and r.seed == seed)


def fold_experiment(config: ExperimentConfig, train_areas: Sequence[Path], seed: int,
                    name: str) -> ExperimentConfig:
    """``config`` trained on ``train_areas`` (pooled when several) with ``seed``; no
    validation area (``val_path``, ``root`` and ``test_path`` cleared)."""
    raw = copy.deepcopy(config.to_dict())
    paths = [str(Path(p).resolve()) for p in train_areas]
    raw["data"].update(root=None, val_path=None, test_path=None,
                       train_path=paths[0] if len(paths) == 1 else paths)
    raw["trainer"]["seed"] = int(seed)
    raw["name"] = name
    return experiment_from_dict(raw, source=f"<crossval of {config.name}>")


def _train_and_score(raw_config: dict[str, Any], run_dir: str, area: str, seed: int,
                     held_out: str, threads: int | None) -> dict[str, Any]:
    """Train one fold and score its held-out area (runs in a worker process too)."""
    import torch

    from slidemap.workflows.evaluate import evaluate_checkpoint
    from slidemap.workflows.train import train_and_report

    if threads is not None:
        torch.set_num_threads(threads)
    config = experiment_from_dict(raw_config, source=f"{run_dir}/config.yaml")
    result = train_and_report(config, Path(run_dir), overwrite=True)
    evaluation = evaluate_checkpoint(result.best_checkpoint, held_out, split=None)
    run = CrossvalRun(
        area=area, seed=seed, run_dir=Path(run_dir), train_seconds=round(result.seconds, 1),
        metrics={k: float(v) for k, v in evaluation.metrics.items()},
        patch_counts={k: [int(x) for x in v] for k, v in evaluation.patch_counts.items()},
    )
    write_text_atomic(Path(run_dir) / HELDOUT_FILE, json.dumps(run.to_dict(), indent=1) + "\n")
    return run.to_dict()


def _finished(run_dir: Path, experiment: ExperimentConfig) -> CrossvalRun | None:
    """The run stored in ``run_dir`` if it finished with the same experiment; ``None`` if
    the folder is new or holds an unfinished run of it; :class:`ConfigError` if it holds
    another experiment."""
    stored = run_dir / "config.yaml"
    if not stored.is_file():
        return None
    try:  # through the schema, so settings added since (at their defaults) compare equal
        previous = experiment_from_dict(yaml.safe_load(stored.read_text(encoding="utf-8")),
                                        source=stored).to_dict()
    except (ConfigError, yaml.YAMLError):
        previous = None
    if previous != experiment.to_dict():
        raise ConfigError(
            "holds a run of another experiment (its config.yaml differs); choose another --out",
            run_dir)
    heldout = run_dir / HELDOUT_FILE
    if not heldout.is_file():
        return None
    return read_heldout(heldout)


def read_heldout(path: Path) -> CrossvalRun:
    """A run's ``heldout.json``; :class:`InputError` naming it when it is unreadable."""
    try:
        return CrossvalRun.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"is not a readable cross-validation result ({exc}); delete it to "
                         "train and score this run again", path) from None


def run_crossval(config: ExperimentConfig, areas: Sequence[str | Path], seeds: Sequence[int],
                 out_dir: str | Path, jobs: int = 1) -> CrossvalResult:
    """Leave-one-area-out cross-validation of ``config`` (see the module docstring).

    Args:
        config: the experiment (its data paths are replaced fold by fold).
        areas: at least two labelled split folders (``img/`` + ``mask/``, or a flat folder
            of patches), each an area.
        seeds: training seeds; every area is held out once per seed.
        out_dir: output folder.
        jobs: runs trained at once, in worker processes sharing the CPU threads.

    Raises:
        ConfigError: fewer than two areas, no seed, an area given twice, or an output
            folder holding runs of another experiment.
        InputError: an area is not a labelled dataset folder.
    """
    started = time.perf_counter()
    folders = [Path(a) for a in areas]
    if len(folders) < 2:
        raise ConfigError(f"leave-one-area-out needs at least two areas, got {len(folders)}")
    if not seeds:
        raise ConfigError("leave-one-area-out needs at least one seed")
    if len({f.resolve() for f in folders}) != len(folders):
        raise ConfigError(f"an area is given twice: {', '.join(map(str, folders))}")
    for folder in folders:  # each must be one labelled split folder: fail before training
        find_patches(folder)
    names = area_names(folders)
    out_dir = Path(out_dir)
    for folder in folders:
        if out_dir.resolve().is_relative_to(folder.resolve()):
            raise ConfigError("the output folder lies inside an area's data; choose another --out",
                              out_dir)
    # the folder is held for the whole job (one crossval at a time; a foreign crossval.md or
    # .json is never replaced); its own earlier tables and finished runs are its to reuse
    with holding(out_dir, "crossval", overwrite=True) as folder:
        if _is_crossval_folder(out_dir):  # tables of a slidemap without manifests: ours too
            folder.adopt(CROSSVAL_OUTPUTS)
        folder.claim(CROSSVAL_OUTPUTS)
        result = _run_folds(config, folders, names, seeds, out_dir, jobs)
        result.seconds = time.perf_counter() - started
        with folder.output_set():  # crossval.md and crossval.json appear together
            write_crossval(result, config)
    return result


def _is_crossval_folder(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a ``crossval.json`` this command wrote (its keys) and the
    ``runs/`` it describes."""
    try:
        data = json.loads((out_dir / CROSSVAL_OUTPUTS[1]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(data, dict) and {"areas", "seeds", "runs", "summary"} <= data.keys()
            and (out_dir / "runs").is_dir())


def _run_folds(config: ExperimentConfig, folders: list[Path], names: list[str],
               seeds: Sequence[int], out_dir: Path, jobs: int) -> CrossvalResult:
    """Train (or reuse) and score every fold of :func:`run_crossval`; the summary."""
    runs: list[CrossvalRun] = []
    pending: list[tuple[dict[str, Any], str, str, int, str]] = []
    for held_index, (name, held_out) in enumerate(zip(names, folders, strict=True)):
        train_areas = [f for i, f in enumerate(folders) if i != held_index]
        for seed in seeds:
            run_dir = out_dir / "runs" / name / f"seed{seed}"
            experiment = fold_experiment(config, train_areas, seed, f"{config.name}-without-{name}")
            done = _finished(run_dir, experiment)
            if done is not None:
                log.info("held out %s, seed %d: reusing %s (F1 %.4f)", name, seed, run_dir,
                         done.metrics["f1"])
                runs.append(done)
                continue
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(experiment, run_dir / "config.yaml")
            pending.append((experiment.to_dict(), str(run_dir), name, int(seed), str(held_out)))

    if jobs > 1 and len(pending) > 1:
        import torch

        threads = max(1, torch.get_num_threads() // jobs)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(_train_and_score, *job, threads) for job in pending]
            for future in concurrent.futures.as_completed(futures):
                runs.append(_logged(CrossvalRun.from_dict(future.result())))
    else:
        for job in pending:
            runs.append(_logged(CrossvalRun.from_dict(_train_and_score(*job, None))))

    order = {(n, s): i for i, (n, s) in enumerate((n, s) for n in names for s in seeds)}
    runs.sort(key=lambda r: order[(r.area, r.seed)])
    result = CrossvalResult(out_dir=out_dir, areas=names, seeds=[int(s) for s in seeds], runs=runs)
    result.summary = summarize(result, {n: [m for m in names if m != n] for n in names})
    return result


def _logged(run: CrossvalRun) -> CrossvalRun:
    log.info("held out %s, seed %d: F1 %.4f, IoU %.4f (trained in %.0f s)", run.area, run.seed,
             run.metrics["f1"], run.metrics["iou"], run.train_seconds)
    return run


def _mean_std(values: Sequence[float]) -> dict[str, Any]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "values": [float(v) for v in array]}


def heldout_counts(result: CrossvalResult, area: str | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """Held-out patch ids, their areas and counts ``(S, P, 4)`` (seeds in ``result.seeds``
    order), of one area or of all (``None``)."""
    areas = result.areas if area is None else [area]
    ids: list[str] = []
    strata: list[str] = []
    for name in areas:
        patch_ids = list(result.run(name, result.seeds[0]).patch_counts)
        ids += patch_ids
        strata += [name] * len(patch_ids)
    counts = np.array([[result.run(name, seed).patch_counts[pid]
                        for name, pid in zip(strata, ids, strict=True)] for seed in result.seeds],
                      dtype=np.int64)
    return ids, strata, counts


def bootstrap_crossvals(results: dict[str, CrossvalResult], area: str | None = None,
                        seed: int = 0) -> BootstrapResult:
    """Block-bootstrap F1 intervals of several cross-validations of the same areas and
    seeds (e.g. two models), and of their paired differences; one area, or all areas
    (stratified: blocks resampled within each area, the statistic the mean over areas).

    Raises:
        ConfigError: the cross-validations differ in areas, seeds or held-out patches.
    """
    names = list(results)
    first = results[names[0]]
    ids, strata, _ = heldout_counts(first, area)
    counts = []
    for name in names:
        other = results[name]
        other_ids, _, other_counts = heldout_counts(other, area)
        if other.areas != first.areas or other.seeds != first.seeds or other_ids != ids:
            raise ConfigError(f"cross-validation {name!r} has other areas, seeds or patches than "
                              f"{names[0]!r}; paired intervals need the same")
        counts.append(other_counts)
    blocks, block_strata = patch_blocks(ids, strata=strata)
    return block_bootstrap(names, np.stack(counts), blocks, block_strata, seed=seed)


def summarize(result: CrossvalResult, trained_on: dict[str, list[str]]) -> dict[str, Any]:
    """Per held-out area and over all areas: mean ± std over seeds of every table metric,
    the 95 % block-bootstrap interval of F1, and training minutes."""
    rows: dict[str, Any] = {}
    for area in result.areas:
        runs = [result.run(area, seed) for seed in result.seeds]
        interval = bootstrap_crossvals({"model": result}, area).f1["model"]
        rows[area] = {
            "trained_on": trained_on.get(area, []),
            **{key: _mean_std([r.metrics[key] for r in runs]) for key in TABLE_METRICS},
            "f1_interval": interval.to_dict(),
            "train_minutes": _mean_std([r.train_seconds / 60 for r in runs]),
        }
    per_seed = {key: [float(np.mean([result.run(a, s).metrics[key] for a in result.areas]))
                      for s in result.seeds] for key in TABLE_METRICS}
    rows[ALL_AREAS] = {
        "trained_on": [],
        **{key: _mean_std(values) for key, values in per_seed.items()},
        "f1_interval": bootstrap_crossvals({"model": result}).f1["model"].to_dict(),
        "train_minutes": _mean_std([r.train_seconds / 60 for r in result.runs]),
    }
    return rows


def format_cell(stats: dict[str, Any], decimals: int = 3) -> str:
    """``0.781 ± 0.012`` (mean ± std over seeds)."""
    return f"{stats['mean']:.{decimals}f} ± {stats['std']:.{decimals}f}"


def crossval_markdown(result: CrossvalResult) -> str:
    """The table: one row per held-out area and the mean over areas."""
    header = ["held-out area", "trained on", "seeds",
              *(METRIC_LABELS[k] for k in TABLE_METRICS), "F1 95 % CI", "train min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(TABLE_METRICS) + 2)]
    for area, row in result.summary.items():
        interval = row["f1_interval"]
        lines.append("| " + " | ".join([
            area, ", ".join(row["trained_on"]) or "–", str(len(result.seeds)),
            *(format_cell(row[k]) for k in TABLE_METRICS),
            f"{interval['low']:.3f}–{interval['high']:.3f}",
            f"{row['train_minutes']['mean']:.1f}",
        ]) + " |")
    return "\n".join(lines) + "\n"


#: the tables :func:`write_crossval` writes into the crossval folder.
CROSSVAL_OUTPUTS: tuple[str, ...] = ("crossval.md", "crossval.json")


def write_crossval(result: CrossvalResult, config: ExperimentConfig) -> tuple[Path, Path]:
    """``crossval.md`` and ``crossval.json`` into ``result.out_dir``, atomically."""
    seeds = ", ".join(map(str, result.seeds))
    text = (f"# Leave-one-area-out: {config.name}\n\n"
            f"Each area scored by models trained on the others (seeds {seeds}); every pixel of "
            "the held-out area, `best.ckpt` at its own threshold. Mean ± std over seeds; the "
            "95 % interval of F1 is a block bootstrap over the held-out patches (blocks of "
            "512 px, resampled within each area), seed-mean F1.\n\n"
            + crossval_markdown(result))
    md = write_text_atomic(result.out_dir / CROSSVAL_OUTPUTS[0], text)
    payload = {"config": config.to_dict(), "areas": result.areas, "seeds": result.seeds,
               "seconds": round(result.seconds, 1), "summary": result.summary,
               "runs": [{k: v for k, v in r.to_dict().items() if k != "patch_counts"}
                        for r in result.runs]}
    js = write_text_atomic(result.out_dir / CROSSVAL_OUTPUTS[1], json.dumps(payload, indent=2) + "\n")
    return md, js


def load_crossval(out_dir: str | Path) -> CrossvalResult:
    """A finished cross-validation read back from its folder (``crossval.json`` and each
    run's ``heldout.json``)."""
    out_dir = Path(out_dir)
    table = out_dir / CROSSVAL_OUTPUTS[1]
    try:
        data = json.loads(table.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"is not a finished cross-validation ({exc})", table) from None
    runs = [read_heldout(Path(entry["run_dir"]) / HELDOUT_FILE) for entry in data["runs"]]
    return CrossvalResult(out_dir=out_dir, areas=list(data["areas"]), seeds=list(data["seeds"]),
                          runs=runs, summary=data["summary"], seconds=float(data["seconds"]))
