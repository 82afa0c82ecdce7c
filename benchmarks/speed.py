"""Speed benchmark: every engine and precision, against matmul rates timed in the same run.

For every registered model at the demo width (``configs/demo.yaml``: 16 channels, depth 3)
and the paper width (64, depth 4), on 128 x 128 patches:

* forward GFLOPs per patch (:func:`slidemap.models.profile_model`);
* training patches/s (forward, BCE, backward, Adam step, ``channels_last``: what
  ``SegmentationTask`` does without Lightning's bookkeeping; counted as 3 x forward FLOPs)
  in float32 with the fused CBAM kernel, float32 with CBAM as framework ops
  (``unfused``), and bf16-mixed (``torch.autocast``, what ``trainer.precision: bf16-mixed``
  runs);
* inference patches/s and Mpx/s per engine and precision: ``eager`` (``model.eval()``, the
  straightforward form), ``torch fp32`` (what :class:`TorchEngine` runs: BatchNorm folded,
  ``channels_last``, fused CBAM), ``torch fp32 unfused`` (the same with CBAM as framework
  ops), ``torch bf16``, ``onnx fp32`` (the graph ``slidemap export`` writes) and ``onnx
  int8`` (that graph quantized statically, QDQ, per-channel weights);
* the fraction of this machine's float32 dense-matmul rate (the faster of a 2048^2
  ``torch.mm`` and the same-size GEMM through oneDNN) each reaches, and of the rate of its
  own precision (bf16: oneDNN's bf16 GEMM; int8: onnxruntime's u8s8 GEMM), all timed in
  the same interleaved loop;
* the CBAM overhead (UNet-CBAM time / UNet time, same width, same engine);
* a plain reference: :class:`PlainUNet`, a minimal UNet of the same shape written here.

With ``--all`` also: the accuracy of each precision against fp32 (F1 change, largest
probability difference, share of pixels whose mask is unchanged) on the synthetic test
split and on the real RGB + DSM areas (A -> B, B -> A) with trained checkpoints (trained
first when missing: the demo's UNet-CBAM, ``configs/rgbd/unet_cbam.yaml`` in both
directions); whole-scene mapping per engine and precision through ``benchmarks/scene.py``
(the whole job against the bare network, the Sentinel-2 tile time); the DataModule's
patches/s. The Markdown tables go to ``benchmarks/results/speed-tables.md`` and, with
``--update-docs``, into ``docs/speed.md`` and ``README.md`` between their markers.

Every timing is the median of repeated **interleaved** runs (A B C A B C ...), so machine
drift hits all of them alike; compare ratios, not absolute numbers, across runs::

    python benchmarks/speed.py                 # widths 16 and 64, 5 repeats
    python benchmarks/speed.py --quick         # 2 repeats, batch 2, width 16 only
    python benchmarks/speed.py --all --update-docs   # everything, one command (make bench)
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from slidemap.features import InputPipeline
from slidemap.models import build_model, list_models, profile_model
from slidemap.models.cbam import CBAM
from slidemap.models.fuse import optimize_for_inference
from slidemap.models.native import status as native_status

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DEMO_CONFIG = ROOT / "src" / "slidemap" / "configs" / "demo.yaml"
RGBD_DATA = ROOT.parent / "shared" / "data" / "rgbd-landslides"
PAPER_WIDTH, PAPER_DEPTH = 64, 4
PATCH_PX = 128
MATMUL_N = 2048
GEMM_CHANNELS, GEMM_SIDE = 1024, 64  # oneDNN GEMM: (64*64 x 1024) @ (1024 x 1024)
#: inference engines and precisions timed per model: name -> (engine kind, precision)
INFERENCE = {"eager": ("eager", "fp32"), "torch fp32": ("torch", "fp32"),
             "torch fp32 unfused": ("torch", "fp32"), "torch bf16": ("torch", "bf16"),
             "onnx fp32": ("onnx", "fp32"), "onnx int8": ("onnx", "int8")}
TRAINING = {"train fp32": "fp32", "train fp32 unfused": "fp32", "train bf16-mixed": "bf16"}
MATMUL_OF = {"fp32": "matmul fp32", "bf16": "matmul bf16", "int8": "matmul int8"}
DOC_MARKERS = ("<!-- speed-tables:start -->", "<!-- speed-tables:end -->")
README_MARKERS = ("<!-- speed-summary:start -->", "<!-- speed-summary:end -->")


def demo_model() -> tuple[int, int, list[str]]:
    """Width, depth and features of the demo model, read from ``configs/demo.yaml``."""
    base = yaml.safe_load(DEMO_CONFIG.read_text())["base"]
    options = base["model"]["options"]
    return int(options["base_channels"]), int(options["depth"]), list(base["data"]["features"])


def depth_of(width: int) -> int:
    """Depth used for a width: the demo's for the demo width, the paper's (4) otherwise."""
    demo_width, demo_depth, _ = demo_model()
    return demo_depth if width == demo_width else PAPER_DEPTH


class PlainUNet(nn.Module):
    """The reference: a UNet written the obvious way, same layers and widths as
    ``build_model("unet", ...)`` (double conv-BN-ReLU, max-pool, transposed conv, concat)."""

    def __init__(self, in_channels: int, width: int, depth: int) -> None:
        super().__init__()
        widths = [width * 2**level for level in range(depth + 1)]

        def double_conv(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            )

        self.down = nn.ModuleList(double_conv(a, b) for a, b in zip([in_channels, *widths[:-1]], widths, strict=True))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth))
        self.merge = nn.ModuleList(double_conv(2 * widths[i], widths[i]) for i in range(depth))
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(F.max_pool2d(x, 2) if level else x)
            skips.append(x)
        x = skips.pop()
        for level in reversed(range(len(self.up))):
            x = self.merge[level](torch.cat((skips[level], self.up[level](x)), dim=1))
        return self.head(x)


@dataclass
class Timed:
    """One interleaved measurement: ``fn`` runs once per repeat on ``patches`` patches."""

    fn: Callable[[], object]
    patches: int
    gflops: float  # per call
    seconds: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)


#: the clock of :func:`run_interleaved`: wall time, or this thread's CPU time (``--clock cpu``,
#: with ``--threads 1`` only): on a machine shared with other jobs the CPU time of a
#: single-threaded run leaves out the time the scheduler gave to others.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = CLOCKS["wall"]


def run_interleaved(items: dict[str, Timed], repeats: int) -> None:
    """Warm each up once, then ``repeats`` rounds of A B C ...; fills ``Timed.seconds``."""
    for item in items.values():
        item.fn()
    for _ in range(repeats):
        for item in items.values():
            started = clock()
            item.fn()
            item.seconds.append(clock() - started)


def set_fused(model: nn.Module, fused: bool) -> nn.Module:
    """``model`` with every CBAM on (or off) its fused kernel."""
    for module in model.modules():
        if isinstance(module, CBAM):
            module.fused = fused
    return model


def ort_session(model_bytes: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def int8_matmul_graph() -> bytes:
    """An ONNX graph of one u8 x s8 -> s32 GEMM (``MatMulInteger``), what int8 layers run."""
    from onnx import TensorProto, helper

    n = MATMUL_N
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def matmul_timed(threads: int) -> dict[str, Timed]:
    """The machine's dense matrix-multiply rates: float32 two ways (``torch.mm``: BLAS, MKL,
    which on AMD CPUs takes its AVX2 path; and the same GEMM through oneDNN, the library of
    the convolutions: a 1x1 convolution, ``channels_last``), bfloat16 through oneDNN, and
    int8 (u8 x s8) through onnxruntime, which runs the int8 engine."""
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    channels, side = GEMM_CHANNELS, GEMM_SIDE
    x = torch.randn(1, channels, side, side).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 1, 1).contiguous(memory_format=torch.channels_last)
    xb, wb = x.bfloat16(), w.bfloat16()
    session = ort_session(int8_matmul_graph(), threads)
    rng = np.random.default_rng(0)
    feed = {"a": rng.integers(0, 255, (MATMUL_N, MATMUL_N), dtype=np.uint8),
            "b": rng.integers(-127, 127, (MATMUL_N, MATMUL_N), dtype=np.int8)}

    def onednn(x: torch.Tensor, w: torch.Tensor) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                F.conv2d(x, w)
        return run

    gemm_ops = 2 * channels**2 * side**2 / 1e9
    return {"matmul fp32/blas": Timed(lambda: torch.mm(a, b), 0, 2 * MATMUL_N**3 / 1e9),
            "matmul fp32/onednn": Timed(onednn(x, w), 0, gemm_ops),
            "matmul bf16/onednn": Timed(onednn(xb, wb), 0, gemm_ops),
            "matmul int8/onnxruntime": Timed(lambda: session.run(None, feed), 0, 2 * MATMUL_N**3 / 1e9)}


def train_timed(model: nn.Module, batch: torch.Tensor, target: torch.Tensor, gflops: float,
                fused: bool = True, bf16: bool = False) -> Timed:
    """A training step as ``SegmentationTask`` runs it: ``channels_last`` weights and batch
    (``trainer.channels_last``, the default); ``bf16``: under ``torch.autocast`` (bf16-mixed)."""
    model = set_fused(copy.deepcopy(model).train().to(memory_format=torch.channels_last), fused)
    batch = batch.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(batch)
        F.binary_cross_entropy_with_logits(logits.float(), target).backward()
        optimizer.step()

    return Timed(step, batch.shape[0], 3 * gflops * batch.shape[0])


def forward_timed(model: nn.Module, batch: torch.Tensor, gflops: float) -> Timed:
    model = model.eval()

    def forward() -> None:
        with torch.inference_mode():
            model(batch)

    return Timed(forward, batch.shape[0], gflops * batch.shape[0])


def onnx_bytes(model: nn.Module, batch: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (batch[:1],), buffer, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}}, opset_version=17,
                          dynamo=False)
    return buffer.getvalue()


def inference_timed(variant: str, model: nn.Module, batch: torch.Tensor, gflops: float, threads: int) -> Timed | str:
    """One engine/precision of :data:`INFERENCE` on ``batch``, or why it cannot run."""
    calls = gflops * batch.shape[0]
    last = batch.contiguous(memory_format=torch.channels_last)
    if variant == "eager":
        return forward_timed(model, batch, gflops)
    if variant.startswith("torch"):
        optimized = set_fused(optimize_for_inference(model), "unfused" not in variant)
        if "bf16" in variant:
            return forward_timed(optimized.to(torch.bfloat16), last.bfloat16(), gflops)
        return forward_timed(optimized, last, gflops)
    try:
        data = onnx_bytes(model, batch)
    except Exception as exc:  # noqa: BLE001 - reported in the table, not fatal
        return f"export failed: {type(exc).__name__}"
    if variant == "onnx int8":
        from slidemap.inference.onnx_export import quantize_int8

        rng = np.random.default_rng(0)
        calibration = [rng.normal(size=(1, *batch.shape[1:])).astype(np.float32) for _ in range(8)]
        data = quantize_int8(data, calibration)
    session = ort_session(data, threads)
    feed = {"input": batch.numpy()}
    return Timed(lambda: session.run(None, feed), batch.shape[0], calls)


def bench_width(width: int, in_channels: int, batch_size: int, repeats: int, threads: int) -> dict[str, Any]:
    """All models at one width: interleaved medians, FLOP rates and ratios."""
    depth = depth_of(width)
    torch.manual_seed(0)
    batch = torch.randn(batch_size, in_channels, PATCH_PX, PATCH_PX)
    target = (torch.rand(batch_size, 1, PATCH_PX, PATCH_PX) < 0.05).float()
    models: dict[str, nn.Module] = {name: build_model(name, in_channels, base_channels=width, depth=depth)
                                    for name in list_models()}
    models["reference"] = PlainUNet(in_channels, width, depth)
    gflops = {name: profile_model(model, in_channels, PATCH_PX).gflops for name, model in models.items()}
    items: dict[str, Timed] = matmul_timed(threads)
    notes: dict[str, str] = {}
    for name, model in models.items():
        has_cbam = any(isinstance(m, CBAM) for m in model.modules())
        for variant in TRAINING:
            if "unfused" in variant and not has_cbam:
                continue
            items[f"{name}/{variant}"] = train_timed(model, batch, target, gflops[name],
                                                     fused="unfused" not in variant, bf16="bf16" in variant)
        for variant in INFERENCE:
            if (name == "reference" and variant != "eager") or ("unfused" in variant and not has_cbam):
                continue
            timed = inference_timed(variant, model, batch, gflops[name], threads)
            if isinstance(timed, Timed):
                items[f"{name}/{variant}"] = timed
            else:
                notes[f"{name}/{variant}"] = timed
    run_interleaved(items, repeats)
    rates = {key.split(" ")[1]: items[key].gflops / items[key].median_s for key in items if key.startswith("matmul")}
    matmul = {"fp32": max(v for k, v in rates.items() if k.startswith("fp32")),
              "bf16": rates["bf16/onednn"], "int8": rates["int8/onnxruntime"]}
    rows = []
    for name in models:
        row: dict[str, Any] = {"model": name, "width": width, "depth": depth, "gflops_per_patch": round(gflops[name], 3)}
        for variant in (*TRAINING, *INFERENCE):
            item = items.get(f"{name}/{variant}")
            if item is None:
                continue
            precision = TRAINING.get(variant) or INFERENCE[variant][1]
            rate = item.gflops / item.median_s
            reference = items[f"reference/{'train fp32' if variant in TRAINING else 'eager'}"]
            row[variant] = {"median_s": round(item.median_s, 4),
                            "patches_per_s": round(item.patches / item.median_s, 2),
                            "mpx_per_s": round(item.patches * PATCH_PX**2 / 1e6 / item.median_s, 4),
                            "gflop_per_s": round(rate, 2),
                            "fraction_of_fp32_matmul": round(rate / matmul["fp32"], 3),
                            "fraction_of_own_matmul": round(rate / matmul[precision], 3),
                            "time_vs_reference": round(item.median_s / reference.median_s, 3)}
        rows.append(row)
    by_name = {row["model"]: row for row in rows}
    cbam_overhead = {variant: round(by_name["unet_cbam"][variant]["median_s"] / by_name["unet"][variant]["median_s"], 3)
                     for variant in (*TRAINING, *INFERENCE)
                     if variant in by_name["unet_cbam"] and variant in by_name["unet"]}
    # the unfused variants against UNet's own time in the same runtime
    for variant in ("train fp32 unfused", "torch fp32 unfused"):
        base = variant.replace(" unfused", "")
        if variant in by_name["unet_cbam"] and base in by_name["unet"]:
            cbam_overhead[variant] = round(by_name["unet_cbam"][variant]["median_s"] / by_name["unet"][base]["median_s"], 3)
    return {"width": width, "depth": depth, "batch": batch_size,
            "matmul_gflop_per_s": {k: round(v, 1) for k, v in matmul.items()},
            "matmul_gflop_per_s_by_library": {k: round(v, 1) for k, v in rates.items()},
            "rows": rows, "cbam_overhead": cbam_overhead, "notes": notes}


def bench_data(features: list[str], batch_size: int, train_patches_per_s: float) -> list[dict[str, Any]]:
    """DataModule patches/s alone (cache on; second epoch, i.e. from the cache) for 0 and 2
    workers, against the training step's patches/s."""
    from slidemap.data.datamodule import L4SDataModule
    from slidemap.data.synthetic import generate_dataset

    rows = []
    pipeline = InputPipeline("l4s14", features=tuple(features))
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_dataset(Path(tmp) / "data", n_patches=80, seed=0)
        for workers in (0, 2):
            module = L4SDataModule(root, pipeline, batch_size=batch_size, num_workers=workers, cache=True)
            module.setup("fit")
            loader = module.train_dataloader()
            epochs = []
            for _ in range(3):  # epoch 1 fills the cache; later epochs read it
                started, patches = time.perf_counter(), 0
                for sample in loader:
                    patches += sample["image"].shape[0]
                epochs.append(patches / (time.perf_counter() - started))
            rows.append({"workers": workers, "cache": True, "first_epoch_patches_per_s": round(epochs[0], 1),
                         "cached_patches_per_s": round(statistics.median(epochs[1:]), 1),
                         "training_step_patches_per_s": round(train_patches_per_s, 2),
                         "headroom": round(statistics.median(epochs[1:]) / train_patches_per_s, 1)})
            del loader, module
    return rows


# ------------------------------------------------------------------------------ accuracy
@dataclass(frozen=True)
class AccuracyCase:
    """A trained checkpoint scored on labelled patches: ``data`` (a root and its ``split``,
    or one folder with ``split=None``), int8 calibrated on ``calibration`` (its training data)."""

    name: str
    checkpoint: Path
    data: Path
    split: str | None
    calibration: Path


def probabilities(predictor: Any, refs: list[Any], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``(probability (N, H, W) float32, mask (N, H, W))`` of every patch through ``predictor``
    (:class:`~slidemap.inference.predictor.Predictor`, the path ``predict`` takes)."""
    from slidemap.data.l4s import read_image, read_mask

    n_bands = len(predictor.pipeline.band_set)
    probs, masks = [], []
    for start in range(0, len(refs), batch_size):
        chunk = refs[start:start + batch_size]
        probs.append(predictor.probabilities(np.stack([predictor.prepare(read_image(r.image, n_bands))
                                                       for r in chunk])))
        masks.extend(read_mask(r.mask) for r in chunk)
    return np.concatenate(probs), np.stack(masks)


def f1_score(probability: np.ndarray, mask: np.ndarray, threshold: float) -> float:
    from slidemap.evaluation.metrics import ConfusionCounts, metrics_from_counts

    counts = ConfusionCounts.from_predictions(torch.from_numpy(probability >= threshold), torch.from_numpy(mask))
    return float(metrics_from_counts(counts, threshold)["f1"])


def bench_accuracy(case: AccuracyCase) -> dict[str, Any]:
    """F1 at each precision, its change against fp32, the largest probability difference and
    the share of labelled pixels whose mask is unchanged."""
    from slidemap.data.l4s import IGNORE_INDEX, find_patches
    from slidemap.inference.predictor import load_predictor

    refs = find_patches(case.data, split=case.split)
    engines = {precision: load_predictor(case.checkpoint, kind, precision=precision, calibration=case.calibration)
               for kind, precision in (("torch", "fp32"), ("torch", "bf16"), ("onnx", "int8"))}
    threshold = engines["fp32"].threshold
    reference, mask = probabilities(engines["fp32"], refs)
    labelled = mask != IGNORE_INDEX
    f1_fp32 = f1_score(reference, mask, threshold)
    out: dict[str, Any] = {"case": case.name, "checkpoint": str(case.checkpoint), "patches": len(refs),
                           "threshold": threshold, "f1_fp32": round(f1_fp32, 4)}
    for precision, engine in engines.items():
        if precision == "fp32":
            continue
        probability, _ = probabilities(engine, refs)
        same = ((probability >= threshold) == (reference >= threshold))[labelled]
        f1 = f1_score(probability, mask, threshold)
        out[precision] = {"f1": round(f1, 4), "delta_f1": round(f1 - f1_fp32, 4),
                          "max_probability_difference": round(float(np.abs(probability - reference).max()), 4),
                          "unchanged_mask_fraction": round(float(same.mean()), 5),
                          "meets_target": bool(abs(f1 - f1_fp32) <= 0.005 and same.mean() >= 0.999)}
    return out


def accuracy_cases(work: Path, train_missing: bool,
                   rgbd_runs: Path = RESULTS / "real_rgbd" / "unet_cbam-e20" / "runs") -> list[AccuracyCase]:
    """The demo's UNet-CBAM on its synthetic test split (from ``work``, trained there when
    missing and asked), and ``configs/rgbd/unet_cbam.yaml`` A -> B and B -> A (the
    leave-one-area-out runs of ``benchmarks/real_rgbd.py`` in ``rgbd_runs``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    cases = []
    from training_precision import run_one

    synthetic = work / "training_precision"
    data = synthetic / "data"
    checkpoint = synthetic / "unet_cbam_32-true_seed0" / "best.ckpt"
    if not checkpoint.is_file() and train_missing:
        from slidemap.data.synthetic import generate_dataset
        from slidemap.workflows.configs import load_comparison

        if not (data / "synthetic.json").is_file():
            generate_dataset(data, n_patches=load_comparison("demo.yaml").synthetic_patches, seed=0)
        run_one("unet_cbam", 0, "32-true", data, synthetic, None)
    if checkpoint.is_file():
        cases.append(AccuracyCase("synthetic test (demo UNet-CBAM)", checkpoint, data, "test", data))
    if (RGBD_DATA / "area_A").is_dir():
        # the leave-one-area-out runs of benchmarks/real_rgbd.py (UNet-CBAM, seed 0): trained on
        # one area, held out the other; trained there, not here
        for source, target in (("A", "B"), ("B", "A")):
            checkpoint = rgbd_runs / f"area_{target}" / "seed0" / "best.ckpt"
            if checkpoint.is_file():
                cases.append(AccuracyCase(f"real RGB+DSM {source} -> {target}", checkpoint,
                                          RGBD_DATA / f"area_{target}", None, RGBD_DATA / f"area_{source}"))
            else:
                print(f"speed: {checkpoint} is missing; run benchmarks/real_rgbd.py (its docstring) for the "
                      "real-data accuracy cases", file=sys.stderr)
    return cases


# ------------------------------------------------------------------------------ scenes
SCENE_ENGINES = (("onnx", "fp32"), ("torch", "fp32"), ("torch", "bf16"), ("onnx", "int8"))


def bench_scenes(sizes: list[int], checkpoint: Path | None, calibration: Path | None, threads: int,
                 clock_name: str) -> list[dict[str, Any]]:
    """``benchmarks/scene.py`` per engine and precision (each size in its own process);
    int8 calibrated on ``calibration`` (the checkpoint's training data)."""
    rows = []
    for kind, precision in SCENE_ENGINES:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "scene.json"
            command = [sys.executable, str(Path(__file__).with_name("scene.py")), "--engine", kind,
                       "--precision", precision, "--sizes", *map(str, sizes), "--out", str(out),
                       "--threads", str(threads), "--clock", "cpu" if clock_name == "cpu" else "wall"]
            if checkpoint is not None:
                command += ["--checkpoint", str(checkpoint)]
            if calibration is not None:
                command += ["--calibration", str(calibration)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                rows.append({"engine": kind, "precision": precision, "error": done.stderr[-500:]})
                continue
            rows.append(json.loads(out.read_text()))
        print(f"scene {kind} {precision}: tile ~{rows[-1].get('s2_tile_extrapolated_minutes')} min", flush=True)
    return rows


# ------------------------------------------------------------------------------ tables
def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def markdown_tables(out: dict[str, Any]) -> str:
    """Every table of ``docs/speed.md`` from one run's results."""
    lines: list[str] = []
    for result in out["results"]:
        mm = result["matmul_gflop_per_s"]
        lines += [f"**Width {result['width']}, depth {result['depth']}**, batch {result['batch']} × 128²; "
                  f"matmul rates: fp32 {mm['fp32']}, bf16 {mm['bf16']}, int8 {mm['int8']} G(FL)OP/s. "
                  "Patches/s, Mpx/s, fraction of the fp32 matmul rate / of the engine's own precision's:", "",
                  "| model | GFLOP/patch | " + " | ".join(INFERENCE) + " |",
                  "| --- | ---: | " + " | ".join("---:" for _ in INFERENCE) + " |"]
        for row in result["rows"]:
            cells = []
            for variant in INFERENCE:
                stats = row.get(variant)
                cells.append("" if stats is None else
                             f"{stats['patches_per_s']:.1f} p/s, {stats['mpx_per_s']:.2f} Mpx/s "
                             f"({_pct(stats['fraction_of_fp32_matmul'])} / {_pct(stats['fraction_of_own_matmul'])})")
            lines.append(f"| {row['model']} | {row['gflops_per_patch']:.2f} | " + " | ".join(cells) + " |")
        lines += ["", "| model | " + " | ".join(TRAINING) + " |", "| --- | " + " | ".join("---:" for _ in TRAINING) + " |"]
        for row in result["rows"]:
            cells = ["" if row.get(v) is None else
                     f"{row[v]['patches_per_s']:.1f} p/s ({_pct(row[v]['fraction_of_fp32_matmul'])})" for v in TRAINING]
            lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
        lines += ["", "CBAM overhead (UNet-CBAM time / UNet time, same engine): " +
                  ", ".join(f"{k} **{v:.2f}**" for k, v in result["cbam_overhead"].items()), ""]
    if out.get("accuracy"):
        lines += ["**Accuracy against fp32** (F1 at the checkpoint's threshold over every labelled pixel; "
                  "target |ΔF1| ≤ 0.005 and ≥ 99.9 % of pixels unchanged):", "",
                  "| data | fp32 F1 | precision | ΔF1 | largest Δp | unchanged mask | target |",
                  "| --- | ---: | --- | ---: | ---: | ---: | --- |"]
        for case in out["accuracy"]:
            for precision in ("bf16", "int8"):
                if precision in case:
                    r = case[precision]
                    lines.append(f"| {case['case']} | {case['f1_fp32']:.4f} | {precision} | {r['delta_f1']:+.4f} | "
                                 f"{r['max_probability_difference']:.4f} | {100 * r['unchanged_mask_fraction']:.3f} % | "
                                 f"{'met' if r['meets_target'] else 'missed'} |")
        lines.append("")
    if out.get("scenes"):
        lines += ["**Whole-scene mapping** (probability, mask, polygons; each size in a fresh process):", "",
                  "| engine | precision | size px | job Mpx/s | × bare network | network share | overlap | "
                  "peak MB | MB per Mpx | S2 tile |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for scene in out["scenes"]:
            if "rows" not in scene:
                lines.append(f"| {scene['engine']} | {scene['precision']} | failed | | | | | | | |")
                continue
            for r in scene["rows"]:
                lines.append(f"| {scene['engine']} | {scene['precision']} | {r['size_px']} | {r['mpx_per_s']:.2f} | "
                             f"{r['fraction_of_bare']:.2f} | {_pct(r['network_share'])} | {r['overlap_factor']:.2f} | "
                             f"{r['peak_rss_mb']:.0f} | {scene['peak_growth_mb_per_mpx']:.2f} | "
                             f"{scene['s2_tile_extrapolated_minutes']:.1f} min |")
        lines.append("")
    if out.get("data_loading"):
        for row in out["data_loading"]:
            lines.append(f"DataModule, {row['workers']} workers, cached: {row['cached_patches_per_s']} patches/s, "
                         f"{row['headroom']}× a UNet-CBAM training step.")
        lines.append("")
    load = out["load_average_before"], out["load_average_after"]
    lines.append(f"Measured {out['date']}, {out['machine']['cpus']} CPUs, {out['threads']} threads, "
                 f"{out.get('clock', 'wall')} clock, load average "
                 f"{load[0]} → {load[1]}, fused CBAM kernel: {out['native']}.")
    return "\n".join(lines) + "\n"


def readme_summary(out: dict[str, Any]) -> str:
    """The few numbers README's Speed section quotes."""
    demo = out["results"][0]
    by_name = {row["model"]: row for row in demo["rows"]}
    cbam = demo["cbam_overhead"]
    lines = [f"Width {demo['width']}, batch {demo['batch']} × 128², UNet-CBAM: "
             + ", ".join(f"{v} {by_name['unet_cbam'][v]['patches_per_s']:.0f} patches/s"
                         for v in INFERENCE if v in by_name["unet_cbam"]) + ".",
             f"CBAM overhead: torch fp32 {cbam.get('torch fp32', float('nan')):.2f}× "
             f"(unfused {cbam.get('torch fp32 unfused', float('nan')):.2f}×), onnx fp32 "
             f"{cbam.get('onnx fp32', float('nan')):.2f}×, training {cbam.get('train fp32', float('nan')):.2f}× "
             f"(unfused {cbam.get('train fp32 unfused', float('nan')):.2f}×)."]
    for case in out.get("accuracy", []):
        lines.append(f"{case['case']}: " + ", ".join(
            f"{p} ΔF1 {case[p]['delta_f1']:+.4f}, {100 * case[p]['unchanged_mask_fraction']:.2f} % unchanged"
            for p in ("bf16", "int8") if p in case) + ".")
    for scene in out.get("scenes", []):
        if "rows" in scene:
            lines.append(f"Scene, {scene['engine']} {scene['precision']}: Sentinel-2 tile "
                         f"~{scene['s2_tile_extrapolated_minutes']:.1f} min, job at "
                         f"{scene['rows'][-1]['fraction_of_bare']:.2f}× the bare network.")
    return "\n".join(f"- {line}" for line in lines) + "\n"


def replace_between(path: Path, markers: tuple[str, str], text: str) -> None:
    """Replace what lies between the two marker lines of ``path`` (kept) with ``text``."""
    from slidemap.io.atomic import write_text_atomic

    content = path.read_text(encoding="utf-8")
    start, end = content.find(markers[0]), content.find(markers[1])
    if start < 0 or end < start:
        raise SystemExit(f"{path}: markers {markers} not found")
    write_text_atomic(path, content[: start + len(markers[0])] + "\n" + text + content[end:])


def print_width(result: dict[str, Any]) -> None:
    print(f"width {result['width']}, depth {result['depth']}, batch {result['batch']} x {PATCH_PX}^2; "
          f"matmul GFLOP/s {result['matmul_gflop_per_s']} ({result['matmul_gflop_per_s_by_library']})")
    for row in result["rows"]:
        cells = [f"{v}: {row[v]['patches_per_s']:.1f}" for v in (*TRAINING, *INFERENCE) if v in row]
        print(f"  {row['model']:10} {row['gflops_per_patch']:6.2f} GFLOP  " + "  ".join(cells))
    print(f"  CBAM overhead: {result['cbam_overhead']}")
    for key, note in result["notes"].items():
        print(f"  {key}: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats, batch 2, demo width only")
    parser.add_argument("--all", action="store_true",
                        help="also accuracy per precision, whole-scene mapping per engine, data loading")
    parser.add_argument("--update-docs", action="store_true", help="write the tables into docs/speed.md and README.md")
    parser.add_argument("--widths", type=int, nargs="+", default=None,
                        help=f"base widths (default: demo width and {PAPER_WIDTH}); depth 3 at the demo width, else 4")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and onnxruntime threads")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall time (default), or thread CPU time (with --threads 1: robust on a busy machine)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 5, --quick 2)")
    parser.add_argument("--batch", type=int, default=None, help="patches per call (default 8, --quick 2)")
    parser.add_argument("--scene-sizes", type=int, nargs="+", default=[2048, 4096], help="with --all")
    parser.add_argument("--work", type=Path, default=ROOT / "runs", help="trained checkpoints (--all)")
    parser.add_argument("--rgbd-runs", type=Path, default=RESULTS / "real_rgbd" / "unet_cbam-e20" / "runs",
                        help="--all: real_rgbd.py's leave-one-area-out runs of UNet-CBAM (area_X/seed0)")
    parser.add_argument("--no-train", action="store_true", help="--all: skip accuracy cases without a checkpoint")
    args = parser.parse_args()

    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread: use it with --threads 1")
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    demo_width, _, features = demo_model()
    widths = args.widths or ([demo_width] if args.quick else [demo_width, PAPER_WIDTH])
    repeats = args.repeats or (2 if args.quick else 5)
    batch_size = args.batch or (2 if args.quick else 8)
    in_channels = InputPipeline("l4s14", features=tuple(features)).in_channels
    native = native_status("cbam")
    load = os.getloadavg()
    started = time.perf_counter()
    out: dict[str, Any] = {"results": [], "repeats": repeats, "threads": args.threads, "clock": args.clock,
                           "native": f"{native.state} ({native.detail})" if native.state != "loaded" else "loaded"}
    for width in widths:
        out["results"].append(bench_width(width, in_channels, batch_size, repeats, args.threads))
        print_width(out["results"][-1])
    if args.all:
        out["accuracy"] = []
        for case in accuracy_cases(args.work, train_missing=not args.no_train, rgbd_runs=args.rgbd_runs):
            out["accuracy"].append(bench_accuracy(case))
            print(json.dumps(out["accuracy"][-1]), flush=True)
        synthetic = args.work / "training_precision" / "unet_cbam_32-true_seed0" / "best.ckpt"
        trained = synthetic.is_file()
        out["scenes"] = bench_scenes(args.scene_sizes, synthetic if trained else None,
                                     synthetic.parents[1] / "data" if trained else None, args.threads, args.clock)
        demo = next(r for r in out["results"] if r["width"] == demo_width)
        train_rate = next(row for row in demo["rows"] if row["model"] == "unet_cbam")["train fp32"]["patches_per_s"]
        out["data_loading"] = bench_data(features, batch_size, train_rate)
    out.update({"load_average_before": [round(v, 2) for v in load],
                "load_average_after": [round(v, 2) for v in os.getloadavg()],
                "seconds": round(time.perf_counter() - started, 1), "date": time.strftime("%Y-%m-%d %H:%M"),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__}})
    from slidemap.io.atomic import write_text_atomic

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = write_text_atomic(RESULTS / f"speed-{time.strftime('%Y%m%d-%H%M%S')}.json", json.dumps(out, indent=2) + "\n")
    tables = markdown_tables(out)
    write_text_atomic(RESULTS / "speed-tables.md", tables)
    print(tables)
    if args.update_docs:
        replace_between(ROOT / "docs" / "speed.md", DOC_MARKERS, tables)
        replace_between(ROOT / "README.md", README_MARKERS, readme_summary(out))
    print(f"load average {out['load_average_before']} -> {out['load_average_after']}; wrote {path}")


if __name__ == "__main__":
    main()
