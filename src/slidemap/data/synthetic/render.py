"""Render one tile of the synthetic world: terrain + land cover + landslides → bands and mask.

A *tile* is a window of the image grid (a whole 128 px patch, or a block of a large scene)
given with everything that must agree across tile borders: the DEM with a one-pixel halo,
smooth random fields sampled at the tile's pixels, and the landslide geometry in global
pixel coordinates. What is drawn per tile (per-pixel noise, fine textures) has no
long-range structure, so tiles of a scene join without seams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slidemap.data.synthetic import spectra
from slidemap.data.synthetic.conditions import Conditions
from slidemap.data.synthetic.landcover import LandCover, classify
from slidemap.data.synthetic.landslides import SCAR_FRACTION, Landslide, rasterise_landslides
from slidemap.data.synthetic.noise import hash_uniform, smooth_noise
from slidemap.data.synthetic.terrain import illumination, slope_deg

#: Smooth random fields a tile needs, with their correlation length in 10 m pixels.
#: Long ones (≥ 10 px) carry structure across a scene and must be sampled from one global
#: field; short ones are textures that a tile may draw for itself (:data:`LOCAL_FIELDS`).
FIELD_SCALES_PX: dict[str, float] = {
    "cover": 12.0,  # forest / shrub patches
    "farm": 25.0,  # where the valley floor is farmed
    "river": 40.0,  # river course: its zero line meanders
    "road": 50.0,  # valley roads: zero line
    "road_presence": 20.0,  # which stretches of a contour road exist
    "urban": 15.0,  # built-up clusters
    "haze": 40.0,  # aerosol variation
    "cirrus": 25.0,  # thin cirrus structure
    "soil": 4.0,  # soil brightness / moisture
    "texture": 1.5,  # canopy and roof texture
    "edge": 1.5,  # ragged landslide outlines
}
LOCAL_FIELDS: tuple[str, ...] = ("soil", "texture", "edge")

_VEGETATION = {LandCover.FOREST: "forest", LandCover.SHRUB: "shrub", LandCover.CROP: "crop"}


@dataclass
class Tile:
    """Inputs of :func:`render_tile` for an (H, W) window of the image grid.

    Attributes:
        dem_m: (H + 2, W + 2) float64 metres, with a one-pixel halo for derivatives.
        smooth_slope_deg: (H, W) slope of the terrain smoothed over a few hundred metres.
        fields: (H, W) unit-variance random fields, keys of :data:`FIELD_SCALES_PX`.
        origin_rc: global (row, col) of the window's first pixel.
        pixel_size_m: ground sampling distance, metres.
    """

    dem_m: np.ndarray
    smooth_slope_deg: np.ndarray
    fields: dict[str, np.ndarray]
    origin_rc: tuple[int, int]
    pixel_size_m: float = 10.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.smooth_slope_deg.shape  # type: ignore[return-value]


@dataclass
class RenderedTile:
    """Output of :func:`render_tile`.

    Attributes:
        dn: (12, H, W) uint16 Sentinel-2 reflectance × 10 000 (B1–B12, no B8A).
        mask: (H, W) uint8, 1 = landslide.
        landcover: (H, W) uint8 :class:`LandCover` codes (landslides included).
        slope_deg: (H, W) float64 degrees (Eq. 15).
        dem_m: (H, W) float64 metres.
    """

    dn: np.ndarray
    mask: np.ndarray
    landcover: np.ndarray
    slope_deg: np.ndarray
    dem_m: np.ndarray


def local_fields(shape: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The short-range fields of :data:`LOCAL_FIELDS`, drawn for one tile: (H, W) each."""
    return {name: smooth_noise(shape, rng, FIELD_SCALES_PX[name]) for name in LOCAL_FIELDS}


def _surface(
    landcover: np.ndarray,
    slide_position: np.ndarray,
    fields: dict[str, np.ndarray],
    origin_rc: tuple[int, int],
    cond: Conditions,
) -> np.ndarray:
    """(12, H, W) surface reflectance of every pixel from its land cover."""
    soil_noise, texture = fields["soil"], fields["texture"]
    surface = np.empty((spectra.N_BANDS, *landcover.shape))
    for code, name in _VEGETATION.items():
        here = landcover == code
        surface[:, here] = spectra.ENDMEMBERS[name][:, None]
    for code, name in ((LandCover.WATER, "water"), (LandCover.URBAN, "urban")):
        here = landcover == code
        surface[:, here] = spectra.ENDMEMBERS[name][:, None]

    # Bare ground: landslides and their look-alikes draw from overlapping soil mixtures.
    brightness = np.zeros(landcover.shape)
    vegetation = np.zeros(landcover.shape)
    slide = landcover == LandCover.LANDSLIDE
    t = np.nan_to_num(slide_position, nan=1.0)
    brightness[slide] = 0.45 + 0.15 * soil_noise[slide] + 0.25 * (t[slide] < SCAR_FRACTION)
    vegetation[slide] = np.clip(0.06 + 0.18 * t[slide] + 0.06 * soil_noise[slide], 0.0, 0.4)

    fields_here = landcover == LandCover.BARE_FIELD
    rows, cols = np.nonzero(fields_here)
    angle = np.radians(cond.field_angle_deg)
    u = np.floor(
        ((rows + origin_rc[0]) * np.cos(angle) + (cols + origin_rc[1]) * np.sin(angle))
        / cond.field_size_px[0]
    )
    v = np.floor(
        (-(rows + origin_rc[0]) * np.sin(angle) + (cols + origin_rc[1]) * np.cos(angle))
        / cond.field_size_px[1]
    )
    brightness[fields_here] = (
        0.1 + 0.8 * hash_uniform(cond.hash_seed + 1, u, v) + 0.08 * soil_noise[fields_here]
    )
    vegetation[fields_here] = 0.3 * hash_uniform(cond.hash_seed + 2, u, v)

    riverbed = landcover == LandCover.RIVERBED
    brightness[riverbed] = 0.65 + 0.15 * soil_noise[riverbed]
    vegetation[riverbed] = 0.04
    road = landcover == LandCover.ROAD
    brightness[road] = 0.5 + 0.1 * soil_noise[road]
    bare = slide | fields_here | riverbed | road
    surface[:, bare] = spectra.soil_reflectance(brightness[bare], vegetation[bare])

    urban_texture = np.where(landcover == LandCover.URBAN, 0.25, 0.06)
    return surface * (1.0 + urban_texture * texture)[None]


def render_tile(
    tile: Tile,
    slides: list[Landslide],
    cond: Conditions,
    rng: np.random.Generator,
) -> RenderedTile:
    """Render one tile: land cover, landslides over it, spectra, atmosphere, sensor.

    Args:
        tile: the window and its inputs (see :class:`Tile`).
        slides: landslides in global image pixel coordinates (any number may miss the tile).
        cond: the patch's or scene's conditions.
        rng: source of the per-pixel noise of this tile.
    """
    h, w = tile.shape
    slope_full = slope_deg(tile.dem_m, tile.pixel_size_m)
    light_full = illumination(
        tile.dem_m, tile.pixel_size_m, cond.sun_elevation_deg, cond.sun_azimuth_deg
    )
    dem = tile.dem_m[1:-1, 1:-1]
    slope = slope_full[1:-1, 1:-1]
    fields = tile.fields

    landcover = classify(dem, slope, tile.smooth_slope_deg, fields, tile.origin_rc, cond)
    inside, position = rasterise_landslides(
        slides, tile.origin_rc, (h, w), edge_noise=0.8 * fields["edge"]
    )
    landcover[inside] = LandCover.LANDSLIDE

    surface = _surface(landcover, position, fields, tile.origin_rc, cond)
    haze = np.clip(1.0 + 0.15 * fields["haze"], 0.3, None)
    cirrus = cond.cirrus_reflectance * np.exp(0.7 * fields["cirrus"] - 0.245)
    toa = spectra.top_of_atmosphere(
        surface,
        light_full[1:-1, 1:-1],
        haze,
        cirrus,
        dem,
        cond.aerosol,
        cond.water_vapour_transmittance,
    )
    dn = spectra.sensor(toa, rng, tile.origin_rc)
    return RenderedTile(
        dn=dn, mask=inside.astype(np.uint8), landcover=landcover, slope_deg=slope, dem_m=dem
    )
