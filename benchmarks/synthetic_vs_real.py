"""Per-band statistics of the synthetic patches next to the real Landslide4Sense patches.

    python benchmarks/synthetic_vs_real.py [--patches 240] [--seed 0] [--real DIR]

Real patches are read from ``../shared/data/l4s-real-unlabelled`` beside the repository
(or ``--real``); without them only the synthetic column is printed. Prints a Markdown table
(stored units: mean, std, p5, p95 per band) and writes ``benchmarks/results/synthetic_vs_real.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from slidemap.bands import get_band_set
from slidemap.data.l4s import find_patches, read_image
from slidemap.data.synthetic import synth_patch
from slidemap.io.atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "synthetic_vs_real.json"
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "l4s-real-unlabelled"


def band_stats(pixels: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """(N, C) stored values → band → mean, std, p5, p95."""
    p5, p95 = np.percentile(pixels, [5, 95], axis=0)
    return {
        name: {
            "mean": float(pixels[:, i].mean()),
            "std": float(pixels[:, i].std()),
            "p5": float(p5[i]),
            "p95": float(p95[i]),
        }
        for i, name in enumerate(names)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", type=Path, default=REAL)
    args = parser.parse_args(argv)
    names = get_band_set("l4s14").names
    synthetic = np.concatenate(
        [
            synth_patch(np.random.default_rng([args.seed, i])).image.reshape(-1, 14)
            for i in range(args.patches)
        ]
    )
    results: dict = {
        "patches": args.patches,
        "seed": args.seed,
        "synthetic": band_stats(synthetic, names),
    }
    if args.real.is_dir():
        refs = find_patches(args.real, require_masks=False)
        real = np.concatenate(
            [np.moveaxis(read_image(r.image), 0, -1).reshape(-1, 14) for r in refs]
        )
        results["real"] = band_stats(real, names)
        results["real_patches"] = len(refs)
    else:
        print(f"real patches not found at {args.real}: synthetic statistics only", file=sys.stderr)

    header = "| band | synthetic mean / std / p5 / p95 |" + (
        " real mean / std / p5 / p95 |" if "real" in results else ""
    )
    rows = [header, "|---|---|" + ("---|" if "real" in results else "")]
    for name in names:
        cells = [results[k][name] for k in ("synthetic", "real") if k in results]
        rows.append(
            f"| {name} | "
            + " | ".join(
                f"{c['mean']:.2f} / {c['std']:.2f} / {c['p5']:.2f} / {c['p95']:.2f}" for c in cells
            )
            + " |"
        )
    print("\n".join(rows))
    write_text_atomic(RESULTS, json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
