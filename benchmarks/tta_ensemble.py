"""Test-time augmentation and 3-seed ensembles, measured: F1 and time with and without them.

    python benchmarks/tta_ensemble.py [--phase train|evaluate|scene|all] [--models unet_cbam,unet]
                                      [--seeds 42,43,44] [--work runs/tta_ensemble]

Cases, each trained for every seed of ``--seeds`` (the shipped seed first):

- ``rgbd`` A → B and B → A: the leave-one-area-out runs of ``benchmarks/real_rgbd.py``
  (``configs/rgbd/<model>.yaml`` at its screening recipe, 20 epochs, trained on one area with
  no validation), seeds 0, 1, 2 (``--rgbd-seeds``), each ``best.ckpt`` (the last epoch) scored
  on every pixel of the held-out area at its fixed threshold 0.5; read from ``--crossval``
  (run ``python benchmarks/real_rgbd.py --epochs 20 --seeds 3 --set data.holdout.fraction=0
  --set threshold=0.5 --set trainer.monitor=val_f1`` first). Needs
  ``../shared/data/rgbd-landslides`` (skipped when absent). Nothing is trained here.
- ``synthetic``: the demo's UNet-CBAM (``demo.yaml``) on a synthetic dataset of 240 patches
  (the demo's), ``best.ckpt`` scored on the test split at its validation-chosen threshold.

Every case is scored five ways through ``evaluate``'s one inference path (the torch
engine): each seed alone, each seed with ``--tta``, the ensemble of the seeds, and the
ensemble with ``--tta``; the time of each scoring pass is measured in this process (the
single-seed times are the mean over seeds). Run folders are reused when their checkpoint
exists (``--phase evaluate`` scores what ``--phase train`` left). Prints a Markdown table
and writes ``benchmarks/results/tta_ensemble.json``.

``--phase scene`` maps a synthetic scene (``--scene-px``, default 1024) with the synthetic
case's checkpoints through ``predict``'s scene path (ONNX Runtime, 512 px windows): one
checkpoint, with TTA, the ensemble, the ensemble with TTA; each run in a fresh process
(peak resident memory measured there), the four interleaved, ``--repeats`` times; prints
seconds, the ratio to one checkpoint and the peak memory, and writes
``benchmarks/results/tta_ensemble_scene.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from real_rgbd import DATA, machine

from slidemap.io.atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "tta_ensemble.json"
SCENE_RESULTS = RESULTS.with_name("tta_ensemble_scene.json")
SYNTHETIC_PATCHES = 240
SYNTHETIC_MODEL = "UNet-CBAM"


def rgbd_cases(data: Path, models: list[str], crossval: Path, seeds: list[int]) -> list[dict[str, Any]]:
    """One case per rgbd model and held-out area: the crossval runs of every seed, the
    area to score."""
    if not all((data / f"area_{a}" / "img").is_dir() for a in "AB"):
        print(f"tta_ensemble: {data} is not present; rgbd cases skipped", file=sys.stderr)
        return []
    cases = []
    for model in models:
        for source, target in (("A", "B"), ("B", "A")):
            runs = crossval / f"{model}-e20" / "runs" / f"area_{target}"
            cases.append({
                "name": f"rgbd {model} {source}→{target}", "slug": f"rgbd_{model}_{source}{target}",
                "checkpoint": "best.ckpt", "run_dirs": [runs / f"seed{seed}" for seed in seeds],
                "score": data / f"area_{target}", "split": None,
            })
    return cases


def synthetic_case(work: Path) -> dict[str, Any]:
    """The demo's UNet-CBAM on the demo's synthetic dataset (generated once into ``work``)."""
    from slidemap.data.synthetic import generate_dataset
    from slidemap.data.synthetic.patches import SUMMARY_FILE

    root = work / "synthetic_data"
    if not (root / SUMMARY_FILE).is_file():
        generate_dataset(root, n_patches=SYNTHETIC_PATCHES, seed=0)
    return {"name": "synthetic UNet-CBAM", "slug": "synthetic_unet_cbam", "config": None,
            "checkpoint": "best.ckpt", "overrides": [f"data.root={root}"], "score": root,
            "split": "test"}


def experiment(case: dict[str, Any], seed: int):
    """The case's experiment config for ``seed``."""
    from slidemap.workflows.configs import load_comparison, load_experiment

    overrides = [*case["overrides"], f"trainer.seed={seed}", "trainer.progress=false"]
    if case["config"] is not None:
        return load_experiment(case["config"], overrides)
    config = load_comparison("demo.yaml", [f"base.{o}" for o in overrides])
    return config.experiments()[SYNTHETIC_MODEL]


def checkpoints(case: dict[str, Any], seeds: list[int], work: Path, train: bool) -> list[Path]:
    """The case's checkpoint of every seed, trained when missing or unfinished (and
    ``train``; an interrupted run is resumed from its ``last.ckpt``)."""
    from slidemap.training.callbacks import read_history
    from slidemap.training.run import HISTORY_FILE, LAST
    from slidemap.training.run import train as train_run

    if "run_dirs" in case:  # trained elsewhere (benchmarks/real_rgbd.py)
        found = [run / case["checkpoint"] for run in case["run_dirs"]]
        missing = [str(p) for p in found if not p.is_file()]
        if missing:
            raise SystemExit(f"tta_ensemble: missing {', '.join(missing)}; run benchmarks/real_rgbd.py "
                             "first (module docstring)")
        return found[:len(seeds)] if len(seeds) < len(found) else found
    paths = []
    for seed in seeds:
        run_dir = work / f"{case['slug']}_seed{seed}"
        path = run_dir / case["checkpoint"]
        config = experiment(case, seed)
        history = run_dir / HISTORY_FILE
        epochs = len(read_history(history)) if history.is_file() else 0
        if not path.is_file() or epochs < config.trainer.max_epochs:
            if not train:
                raise SystemExit(f"tta_ensemble: {path} is missing or unfinished; run --phase train first")
            started = time.perf_counter()
            train_run(config, run_dir, resume=(run_dir / LAST).is_file(), overwrite=True)
            print(f"trained {case['name']} seed {seed} in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
        paths.append(path)
    return paths


def score(paths: list[Path], case: dict[str, Any], tta: bool) -> dict[str, Any]:
    """F1 (and the rest) of the predictor of ``paths`` on the case's data, and its time."""
    from slidemap.inference.predictor import load_predictor
    from slidemap.workflows.evaluate import evaluate_checkpoint

    predictor = load_predictor(paths, "torch", "patches", tta=tta)
    started = time.perf_counter()
    evaluation = evaluate_checkpoint(predictor, case["score"], case["split"])
    seconds = time.perf_counter() - started
    m = evaluation.metrics
    return {"f1": float(m["f1"]), "iou": float(m["iou"]), "precision": float(m["precision"]),
            "recall": float(m["recall"]), "ece": float(m["ece"]), "threshold": float(m["threshold"]),
            "seconds": round(seconds, 2)}


def evaluate_case(case: dict[str, Any], paths: list[Path]) -> dict[str, Any]:
    """The five scorings of a case (see the module docstring)."""
    singles = [score([p], case, tta=False) for p in paths]
    singles_tta = [score([p], case, tta=True) for p in paths]
    row = {"case": case["name"], "seeds": len(paths),
           "single": singles, "single_tta": singles_tta,
           "ensemble": score(paths, case, tta=False), "ensemble_tta": score(paths, case, tta=True)}
    for key in ("single", "single_tta"):
        row[f"{key}_mean_f1"] = statistics.fmean(s["f1"] for s in row[key])
        row[f"{key}_mean_ece"] = statistics.fmean(s["ece"] for s in row[key])
        row[f"{key}_mean_seconds"] = statistics.fmean(s["seconds"] for s in row[key])
    return row


def map_scene_once(paths: list[str], tta: bool, scene_dir: str, out: str, threads: int | None,
                   queue: Any) -> None:
    """In a fresh process: map the scene, put ``(seconds, peak RSS in MB)`` on ``queue``."""
    import resource

    import torch

    from slidemap.inference.mapping import predict_scene
    from slidemap.inference.predictor import build_predictor, predictor_spec
    from slidemap.inference.scene import SceneSpec

    if threads:
        torch.set_num_threads(threads)
    spec = predictor_spec(paths, "auto", "scene", tta=tta)
    build_predictor(spec)  # ONNX export of every member: not part of the mapping time
    started = time.perf_counter()
    predict_scene(spec, SceneSpec(Path(scene_dir) / "image.tif", Path(scene_dir) / "dem.tif"), out)
    queue.put((time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def scene_costs(paths: list[Path], work: Path, size_px: int, repeats: int,
                threads: int | None) -> dict[str, Any]:
    """Seconds and peak memory of mapping one synthetic scene four ways (module docstring)."""
    import multiprocessing

    from slidemap.data.synthetic import generate_scene

    scene_dir = work / f"scene_{size_px}"
    if not (scene_dir / "image.tif").is_file():
        generate_scene(scene_dir, size_px=size_px, seed=3)
    ways = {"one checkpoint": ([paths[0]], False), "one checkpoint + TTA": ([paths[0]], True),
            f"ensemble of {len(paths)}": (paths, False), f"ensemble of {len(paths)} + TTA": (paths, True)}
    context = multiprocessing.get_context("spawn")
    measured: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    for repeat in range(repeats):
        for way, (members, tta) in ways.items():
            queue = context.Queue()
            process = context.Process(target=map_scene_once, args=(
                [str(p) for p in members], tta, str(scene_dir), str(work / "scene_out" / way.replace(" ", "_")),
                threads, queue))
            process.start()
            measured[way].append(queue.get())
            process.join()
            print(f"repeat {repeat + 1}: {way}: {measured[way][-1][0]:.1f} s, "
                  f"{measured[way][-1][1]:.0f} MB", file=sys.stderr, flush=True)
    base = min(s for s, _ in measured["one checkpoint"])
    rows = {way: {"seconds": min(s for s, _ in runs), "ratio": min(s for s, _ in runs) / base,
                  "peak_rss_mb": max(m for _, m in runs)} for way, runs in measured.items()}
    lines = [f"| mapping a {size_px}² px scene | seconds (best of {repeats}) | × one checkpoint | peak RSS |",
             "|---|---:|---:|---:|"]
    lines += [f"| {way} | {r['seconds']:.1f} | {r['ratio']:.2f} | {r['peak_rss_mb']:.0f} MB |"
              for way, r in rows.items()]
    return {"size_px": size_px, "repeats": repeats, "rows": rows, "table": "\n".join(lines)}


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: F1 (ECE) and seconds per scoring, one row per case."""
    lines = ["| case | one seed: F1 (range) | one seed + TTA | ensemble of 3 | ensemble + TTA "
             "| time: one seed | + TTA | ensemble | ensemble + TTA |",
             "|---|---|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        f1s = [s["f1"] for s in r["single"]]
        f1s_tta = [s["f1"] for s in r["single_tta"]]
        lines.append(
            f"| {r['case']} | {r['single_mean_f1']:.3f} ({min(f1s):.3f}–{max(f1s):.3f}) "
            f"| {r['single_tta_mean_f1']:.3f} ({min(f1s_tta):.3f}–{max(f1s_tta):.3f}) "
            f"| {r['ensemble']['f1']:.3f} | {r['ensemble_tta']['f1']:.3f} "
            f"| {r['single_mean_seconds']:.1f} s | {r['single_tta_mean_seconds']:.1f} s "
            f"| {r['ensemble']['seconds']:.1f} s | {r['ensemble_tta']['seconds']:.1f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("train", "evaluate", "scene", "all"), default="all",
                        help="train the missing checkpoints, score existing ones, both, or time "
                             "scene mapping with the synthetic case's checkpoints")
    parser.add_argument("--scene-px", type=int, default=1024, help="side of the scene of --phase scene")
    parser.add_argument("--repeats", type=int, default=2, help="repeats of --phase scene")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding area_A/ and area_B/")
    parser.add_argument("--models", default="unet_cbam,unet", help="rgbd configs, comma-separated")
    parser.add_argument("--seeds", default="42,43,44", help="training seeds, comma-separated")
    parser.add_argument("--rgbd-seeds", default="0,1,2", help="seeds of the rgbd crossval runs")
    parser.add_argument("--crossval", type=Path, default=RESULTS.parent / "real_rgbd",
                        help="crossval folders of benchmarks/real_rgbd.py (the rgbd cases' runs)")
    parser.add_argument("--cases", default="synthetic,rgbd",
                        help="which cases: synthetic and/or rgbd, comma-separated")
    parser.add_argument("--only", default="", help="only the cases whose folder name contains this "
                        "(e.g. rgbd_unet_cbam_BA), to train cases in parallel processes")
    parser.add_argument("--work", type=Path, default=Path("runs/tta_ensemble"), help="run folders")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    if args.phase == "scene":
        synthetic = checkpoints(synthetic_case(args.work), seeds, args.work, False)
        costs = {**scene_costs(synthetic, args.work, args.scene_px, args.repeats, args.threads),
                 "machine": machine()}
        print(costs["table"])
        write_text_atomic(SCENE_RESULTS, json.dumps(costs, indent=2) + "\n")
        return 0
    wanted = {c.strip() for c in args.cases.split(",")}
    cases = [synthetic_case(args.work)] if "synthetic" in wanted else []
    if "rgbd" in wanted:
        cases += rgbd_cases(args.data, [m.strip() for m in args.models.split(",")], args.crossval,
                            [int(s) for s in args.rgbd_seeds.split(",")])
    cases = [case for case in cases if args.only in case["slug"]]
    started, machine_start = time.perf_counter(), machine()
    # seed by seed over the cases: every case gets its first model (TTA measurable) early
    for count in range(1, len(seeds) + 1):
        for case in cases:
            paths = checkpoints(case, seeds[:count], args.work, args.phase != "evaluate")
    paths = {case["slug"]: checkpoints(case, seeds, args.work, False) for case in cases}
    if args.phase == "train":
        return 0
    rows = []
    for case in cases:
        rows.append(evaluate_case(case, paths[case["slug"]]))
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    table = format_table(rows)
    print(table)
    results = {"rows": rows, "table": table, "seeds": seeds,
               "seconds": round(time.perf_counter() - started, 1),
               "machine_start": machine_start, "machine_end": machine()}
    write_text_atomic(args.out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
