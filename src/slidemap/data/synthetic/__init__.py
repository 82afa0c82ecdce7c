"""Synthetic Landslide4Sense data: patches in the official layout and large GeoTIFF scenes.

The generator models what makes landslide mapping hard — landslides are bare soil on steep
vegetated slopes, but so are fields, riverbeds and roads on flat ground — so that a model
must use both the spectral and the terrain cues. Design: ``docs/synthetic-data.md``.

Modules: ``noise`` (random fields), ``terrain`` (DEM, slope, shading), ``conditions``
(per-patch parameters), ``landcover``, ``landslides`` (geometry), ``spectra`` (Sentinel-2
reflectance, atmosphere, sensor), ``render`` (one tile), ``patches`` (.h5 dataset),
``scene`` (GeoTIFF scene).
"""

from slidemap.data.synthetic.landcover import CONFUSERS, LandCover
from slidemap.data.synthetic.patches import SyntheticPatch, generate_dataset, synth_patch

__all__ = [
    "CONFUSERS",
    "LandCover",
    "SyntheticPatch",
    "generate_dataset",
    "generate_scene",
    "synth_patch",
]


def __getattr__(name: str):  # noqa: ANN202 - module-level lazy attribute
    # The scene writer needs rasterio; import it only when a scene is asked for.
    if name == "generate_scene":
        from slidemap.data.synthetic.scene import generate_scene

        return generate_scene
    raise AttributeError(name)
