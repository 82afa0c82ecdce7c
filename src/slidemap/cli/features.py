"""``slidemap features PATCH.h5 --out FIG.png``: the paper's Fig. 2 for one patch."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidemap.errors import ConfigError

HELP = "plot a patch in true colour and its seven auxiliary feature maps (the paper's Fig. 2)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patch", type=Path, metavar="PATCH.h5", help="Landslide4Sense image file (key 'img')")
    parser.add_argument("--out", type=Path, required=True, metavar="FIG.png",
                        help="figure to write; the format follows the suffix (.png, .pdf, .svg)")
    parser.add_argument("--band-set", default="l4s14", metavar="NAME",
                        help="band order of the file (default: l4s14; rgbd for R, G, B + DSM)")
    parser.add_argument("--pixel-size", type=float, default=None, metavar="M",
                        help="pixel spacing in metres for the slope (default: the band set's, 10 for l4s14)")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of raster formats (default: 150)")
    parser.add_argument("--overwrite", action="store_true", help="replace a figure an earlier run wrote")


def run(args: argparse.Namespace) -> int:
    from slidemap.bands import get_band_set
    from slidemap.data.l4s import read_image
    from slidemap.io.outputs import OutputFolder
    from slidemap.plots.features import plot_feature_maps
    from slidemap.plots.io import save_figure

    out: Path = args.out
    if args.pixel_size is not None and not args.pixel_size > 0:
        raise ConfigError(f"--pixel-size must be a positive number of metres, got {args.pixel_size}")
    band_set = get_band_set(args.band_set)
    bands = read_image(args.patch, n_bands=len(band_set))
    figure = plot_feature_maps(bands, band_set, pixel_size_m=args.pixel_size, title=args.patch.name)
    supported = figure.canvas.get_supported_filetypes()
    file_format = out.suffix.lower().lstrip(".")
    if file_format not in supported:
        raise ConfigError(f"cannot write a {out.suffix or 'suffix-less'} figure; use one of "
                          f"{', '.join('.' + s for s in sorted(supported))}", out)
    with OutputFolder(out.parent, "features", [args.patch], args.overwrite) as folder:
        folder.claim([out])
        save_figure(figure, out, dpi=args.dpi)  # atomic: a temporary name, then a rename
    print(out)
    return 0
