"""Speed benchmark: model cost, training and inference throughput, data loading, as ratios.

For every registered model at the demo width (``configs/demo.yaml``: 16 channels, depth 3)
and the paper width (64, depth 4), on 128 x 128 patches:

* forward GFLOPs per patch (:func:`slidemap.models.profile_model`);
* training patches/s (forward, BCE, backward, Adam step, ``channels_last``: what
  ``SegmentationTask`` does without Lightning's bookkeeping), counted as 3 x forward FLOPs;
* inference patches/s and Mpx/s three ways: ``eager`` (``model.eval()`` under
  ``inference_mode``, the straightforward form), ``optimized`` (what :class:`TorchEngine`
  runs: BatchNorm folded, ``channels_last``) and ``onnxruntime`` (the ``--engine onnx`` graph);
* the fraction of this machine's dense-matmul rate (the faster of a 2048^2 float32
  ``torch.mm`` and the same-size GEMM through oneDNN, timed in the same loop) that each
  reaches;
* the CBAM overhead (UNet-CBAM time / UNet time, same width, same variant);
* a plain reference: :class:`PlainUNet`, a minimal UNet of the same shape written here, so
  the ratio ``package UNet / reference`` shows what the package adds;
* the DataModule's patches/s alone (cached, 0 and 2 workers) against the training step's.

Every timing is the median of repeated **interleaved** runs (A B C A B C ...), so machine
drift hits all of them alike; compare ratios, not absolute numbers, across runs. Prints a
table and writes JSON to ``benchmarks/results/``::

    python benchmarks/speed.py                 # widths 16 and 64, 5 repeats
    python benchmarks/speed.py --quick         # 2 repeats, batch 2, width 16 only
    python benchmarks/speed.py --widths 16 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from slidemap.features import InputPipeline
from slidemap.models import build_model, list_models, profile_model
from slidemap.models.fuse import optimize_for_inference

RESULTS = Path(__file__).resolve().parent / "results"
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "src" / "slidemap" / "configs" / "demo.yaml"
PAPER_WIDTH, PAPER_DEPTH = 64, 4
PATCH_PX = 128
MATMUL_N = 2048
GEMM_CHANNELS, GEMM_SIDE = 1024, 64  # oneDNN GEMM: (64*64 x 1024) @ (1024 x 1024)


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


def run_interleaved(items: dict[str, Timed], repeats: int) -> None:
    """Warm each up once, then ``repeats`` rounds of A B C ...; fills ``Timed.seconds``."""
    for item in items.values():
        item.fn()
    for _ in range(repeats):
        for item in items.values():
            started = time.perf_counter()
            item.fn()
            item.seconds.append(time.perf_counter() - started)


def matmul_timed() -> dict[str, Timed]:
    """The machine's dense float32 matrix-multiply rate, two ways: ``torch.mm`` (BLAS: MKL,
    which on AMD CPUs takes its AVX2 path) and the same GEMM through oneDNN, the library
    that runs the networks' convolutions (a 1x1 convolution, ``channels_last``, which
    oneDNN runs as one GEMM with AVX-512 where the CPU has it). The faster one is the
    reference: a network cannot be asked to beat a GEMM its own library runs faster."""
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    channels, side = GEMM_CHANNELS, GEMM_SIDE
    x = torch.randn(1, channels, side, side).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 1, 1).contiguous(memory_format=torch.channels_last)

    def onednn() -> None:
        with torch.inference_mode():
            F.conv2d(x, w)

    return {"matmul/blas": Timed(lambda: torch.mm(a, b), 0, 2 * MATMUL_N**3 / 1e9),
            "matmul/onednn": Timed(onednn, 0, 2 * channels**2 * side**2 / 1e9)}


def train_timed(model: nn.Module, batch: torch.Tensor, target: torch.Tensor, gflops: float) -> Timed:
    """A training step as ``SegmentationTask`` runs it: ``channels_last`` weights and batch
    (``trainer.channels_last``, the default)."""
    model = copy.deepcopy(model).train().to(memory_format=torch.channels_last)  # its own copy
    batch = batch.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(model(batch), target).backward()
        optimizer.step()

    return Timed(step, batch.shape[0], 3 * gflops * batch.shape[0])


def eager_timed(model: nn.Module, batch: torch.Tensor, gflops: float) -> Timed:
    model = model.eval()

    def forward() -> None:
        with torch.inference_mode():
            model(batch)

    return Timed(forward, batch.shape[0], gflops * batch.shape[0])


def optimized_timed(model: nn.Module, batch: torch.Tensor, gflops: float) -> Timed:
    return eager_timed(optimize_for_inference(model), batch.contiguous(memory_format=torch.channels_last), gflops)


def onnx_timed(model: nn.Module, batch: torch.Tensor, gflops: float, threads: int) -> Timed | str:
    """onnxruntime on the same graph ``slidemap export`` writes, or why it cannot run."""
    import onnxruntime as ort

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (batch[:1],), buffer, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}}, opset_version=17, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - reported in the table, not fatal
        return f"export failed: {type(exc).__name__}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"input": batch.numpy()}
    return Timed(lambda: session.run(None, feed), batch.shape[0], gflops * batch.shape[0])


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
    items: dict[str, Timed] = matmul_timed()
    notes: dict[str, str] = {}
    for name, model in models.items():
        items[f"{name}/train"] = train_timed(model, batch, target, gflops[name])
        items[f"{name}/eager"] = eager_timed(model, batch, gflops[name])
        if name != "reference":
            items[f"{name}/optimized"] = optimized_timed(model, batch, gflops[name])
            onnx = onnx_timed(model, batch, gflops[name], threads)
            if isinstance(onnx, Timed):
                items[f"{name}/onnxruntime"] = onnx
            else:
                notes[f"{name}/onnxruntime"] = onnx
    run_interleaved(items, repeats)
    matmul_rates = {key.split("/")[1]: items[key].gflops / items[key].median_s
                    for key in ("matmul/blas", "matmul/onednn")}
    matmul_rate = max(matmul_rates.values())
    rows = []
    for name in models:
        row: dict[str, Any] = {"model": name, "width": width, "depth": depth, "gflops_per_patch": round(gflops[name], 3)}
        for variant in ("train", "eager", "optimized", "onnxruntime"):
            item = items.get(f"{name}/{variant}")
            if item is None:
                continue
            rate = item.gflops / item.median_s
            row[variant] = {"median_s": round(item.median_s, 4),
                            "patches_per_s": round(item.patches / item.median_s, 2),
                            "mpx_per_s": round(item.patches * PATCH_PX**2 / 1e6 / item.median_s, 4),
                            "gflop_per_s": round(rate, 2),
                            "fraction_of_matmul": round(rate / matmul_rate, 3)}
            reference = items[f"reference/{'train' if variant == 'train' else 'eager'}"]
            row[variant]["time_vs_reference"] = round(item.median_s / reference.median_s, 3)
        rows.append(row)
    by_name = {row["model"]: row for row in rows}
    cbam_overhead = {variant: round(by_name["unet_cbam"][variant]["median_s"] / by_name["unet"][variant]["median_s"], 3)
                     for variant in ("train", "eager", "optimized", "onnxruntime")
                     if variant in by_name["unet_cbam"] and variant in by_name["unet"]}
    return {"width": width, "depth": depth, "batch": batch_size, "matmul_gflop_per_s": round(matmul_rate, 1),
            "matmul_gflop_per_s_by_library": {k: round(v, 1) for k, v in matmul_rates.items()},
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


def print_table(result: dict[str, Any]) -> None:
    print(f"width {result['width']}, depth {result['depth']}, batch {result['batch']} x {PATCH_PX}^2; "
          f"dense matmul {result['matmul_gflop_per_s']} GFLOP/s (the faster of "
          f"{', '.join(f'{k} {v}' for k, v in result['matmul_gflop_per_s_by_library'].items())})")
    print(f"{'model':10} {'GFLOP':>6} {'train p/s':>9} {'%mm':>5} {'eager p/s':>9} {'opt p/s':>8} {'opt Mpx/s':>9} "
          f"{'%mm':>5} {'ort p/s':>8} {'ort Mpx/s':>9} {'%mm':>5} {'eager/ref':>9}")
    for row in result["rows"]:
        cells = [f"{row['model']:10} {row['gflops_per_patch']:>6.2f}",
                 f"{row['train']['patches_per_s']:>9.2f} {100 * row['train']['fraction_of_matmul']:>5.1f}",
                 f"{row['eager']['patches_per_s']:>9.2f}"]
        for variant in ("optimized", "onnxruntime"):
            stats = row.get(variant)
            cells.append(f"{stats['patches_per_s']:>8.2f} {stats['mpx_per_s']:>9.3f} "
                         f"{100 * stats['fraction_of_matmul']:>5.1f}" if stats else f"{'n/a':>8} {'':>9} {'':>5}")
        cells.append(f"{row['eager']['time_vs_reference']:>9.3f}")
        print(" ".join(cells))
    print(f"CBAM overhead (UNet-CBAM / UNet time): {result['cbam_overhead']}")
    for key, note in result["notes"].items():
        print(f"  {key}: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats, batch 2, demo width only, no data loading")
    parser.add_argument("--widths", type=int, nargs="+", default=None,
                        help=f"base widths (default: demo width and {PAPER_WIDTH}); depth 3 at the demo width, else 4")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and onnxruntime threads")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 5, --quick 2)")
    parser.add_argument("--batch", type=int, default=None, help="patches per call (default 8, --quick 2)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    demo_width, _, features = demo_model()
    widths = args.widths or ([demo_width] if args.quick else [demo_width, PAPER_WIDTH])
    repeats = args.repeats or (2 if args.quick else 5)
    batch_size = args.batch or (2 if args.quick else 8)
    in_channels = InputPipeline("l4s14", features=tuple(features)).in_channels
    load = os.getloadavg()
    started = time.perf_counter()
    results = []
    for width in widths:
        results.append(bench_width(width, in_channels, batch_size, repeats, args.threads))
        print_table(results[-1])
    data = []
    if not args.quick:
        demo = next((r for r in results if r["width"] == demo_width), results[0])
        train_rate = next(row for row in demo["rows"] if row["model"] == "unet_cbam")["train"]["patches_per_s"]
        data = bench_data(features, batch_size, train_rate)
        for row in data:
            print(f"DataModule, {row['workers']} workers, cached: {row['cached_patches_per_s']} patches/s "
                  f"(first epoch {row['first_epoch_patches_per_s']}); training step (unet_cbam, width "
                  f"{demo['width']}) {row['training_step_patches_per_s']} patches/s: {row['headroom']}x headroom")
    out = {"results": results, "data_loading": data, "repeats": repeats, "threads": args.threads,
           "load_average_before": [round(v, 2) for v in load], "load_average_after": [round(v, 2) for v in os.getloadavg()],
           "seconds": round(time.perf_counter() - started, 1),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    from slidemap.io.atomic import write_text_atomic

    path = write_text_atomic(RESULTS / f"speed-{time.strftime('%Y%m%d-%H%M%S')}.json", json.dumps(out, indent=2) + "\n")
    print(f"load average {out['load_average_before']} -> {out['load_average_after']}; wrote {path}")


if __name__ == "__main__":
    main()
