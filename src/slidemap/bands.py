"""Band sets: the one place that knows which channel of an image is which.

A :class:`BandSet` is an ordered list of :class:`Band` objects, each with a *role* (what it
measures: ``"red"``, ``"nir"``, ``"swir1"``, ``"dem"``...). Code that needs "the NIR band"
asks ``band_set.index("nir")``; nothing else in slidemap hard-codes a channel index.

Each band also records how its stored values relate to physical units
(``physical = stored * physical_per_unit``). Landslide4Sense stores every band rescaled to
roughly unit mean; the factors below let a GeoTIFF scene in physical units (Sentinel-2 L2A
reflectance, slope in degrees, elevation in metres) be brought into the units a model was
trained in. The Landslide4Sense factors were measured, not guessed: every band of the real
patches is an integer multiple of a fixed step, and the steps are exactly Sentinel-2 digital
numbers (reflectance x 10000), whole degrees of slope and whole metres of elevation, so
``physical_per_unit`` is that step expressed in physical units (see ``docs/synthetic-data.md``).

Built-in sets: ``l4s14`` (Landslide4Sense: Sentinel-2 B1–B12 without B8A, slope, DEM) and
``rgbd`` (R, G, B 0–255 and a DSM in metres). Users declare their own in YAML::

    band_set:
      name: my_sensor
      processing_level: L2A
      bands:
        - {name: RED, role: red}
        - {name: NIR, role: nir}
        - {name: DEM, role: dem, unit: m}

A model may read only part of a set (:meth:`BandSet.subset`, ``data.bands`` in a config):
``l4s14`` without ``B10`` is what a Sentinel-2 L2A product can give.

This module is also the one home of the Sentinel-2 facts every reader needs
(:data:`SENTINEL2_BANDS`: names, codes, common names, central wavelengths, native
resolutions; the radiometric constants; the scene-classification classes that make a pixel
not assessable).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from slidemap.errors import BandSetError

#: Roles a band may have. Features declare the roles they need.
KNOWN_ROLES: frozenset[str] = frozenset(
    {
        "coastal", "blue", "green", "red", "red_edge_1", "red_edge_2", "red_edge_3",
        "nir", "nir_narrow", "water_vapour", "cirrus", "swir1", "swir2",
        "slope", "dem", "dsm", "other",
    }
)
#: Roles that hold an elevation surface (metres once converted to physical units).
ELEVATION_ROLES: tuple[str, ...] = ("dem", "dsm")
#: Full scale of an optical band, in its physical unit: reflectance 0-1, 8-bit digital
#: numbers 0-255. A band in one of these units is optical (photometric augmentation
#: jitters it); ``DN`` saturates at its full scale, reflectance does not.
OPTICAL_FULL_SCALE: dict[str, float] = {"reflectance": 1.0, "DN": 255.0}
#: Roles of a true-colour display, in display order.
RGB_ROLES: tuple[str, str, str] = ("red", "green", "blue")
#: Processing levels a band set may declare ("" = not said).
PROCESSING_LEVELS: tuple[str, ...] = ("", "L1C", "L2A")


def band_label(text: str) -> str:
    """The band name in a label: GDAL describes Sentinel-2 bands as ``"B4, central
    wavelength 665 nm"``; the name is the part before the first comma, stripped."""
    return str(text).split(",", 1)[0].strip()


# ----------------------------------------------------------------------- Sentinel-2 facts
@dataclass(frozen=True)
class Sentinel2Band:
    """One spectral band of the Sentinel-2 MSI.

    Attributes:
        name: GDAL's band name (``"B4"``, ``"B8A"``): the ``BANDNAME`` of its SENTINEL2 driver.
        code: ESA's file code (``"B04"``), as in ``T34UCF_..._B04_10m.jp2``.
        common_name: the STAC ``eo:bands`` common name (``"red"``; ``"rededge"`` for B5–B7,
            which that name alone cannot tell apart).
        archive_names: further names archives give the band's asset or file (Earth Search's
            ``"rededge1"``, ``"nir08"``...; STAC eo 1.1 common names).
        central_wavelength_nm: centre of the band (Sentinel-2A), nm.
        resolution_m: native pixel size, metres.
    """

    name: str
    code: str
    common_name: str
    archive_names: tuple[str, ...]
    central_wavelength_nm: float
    resolution_m: int


#: The 13 bands of the Sentinel-2 MSI (ESA's Sentinel-2 User Handbook; GDAL's SENTINEL2
#: driver uses the same names, wavelengths and resolutions).
SENTINEL2_BANDS: tuple[Sentinel2Band, ...] = (
    Sentinel2Band("B1", "B01", "coastal", ("coastal",), 443, 60),
    Sentinel2Band("B2", "B02", "blue", ("blue",), 490, 10),
    Sentinel2Band("B3", "B03", "green", ("green",), 560, 10),
    Sentinel2Band("B4", "B04", "red", ("red",), 665, 10),
    Sentinel2Band("B5", "B05", "rededge", ("rededge1", "rededge071"), 705, 20),
    Sentinel2Band("B6", "B06", "rededge", ("rededge2", "rededge075"), 740, 20),
    Sentinel2Band("B7", "B07", "rededge", ("rededge3", "rededge078"), 783, 20),
    Sentinel2Band("B8", "B08", "nir", ("nir",), 842, 10),
    Sentinel2Band("B8A", "B8A", "nir08", ("nir08",), 865, 20),
    Sentinel2Band("B9", "B09", "nir09", ("nir09",), 945, 60),
    Sentinel2Band("B10", "B10", "cirrus", ("cirrus",), 1375, 60),
    Sentinel2Band("B11", "B11", "swir16", ("swir16",), 1610, 20),
    Sentinel2Band("B12", "B12", "swir22", ("swir22",), 2190, 20),
)
SENTINEL2_BY_NAME: dict[str, Sentinel2Band] = {band.name: band for band in SENTINEL2_BANDS}


def sentinel2_band(label: str) -> Sentinel2Band | None:
    """The Sentinel-2 band a label names: its name, code or an archive name
    (``"B4"``, ``"B04"``, ``"red"``, ``"B4, central wavelength 665 nm"``), case-insensitive."""
    wanted = band_label(label).lower()
    for band in SENTINEL2_BANDS:
        if wanted in {band.name.lower(), band.code.lower(), *(a.lower() for a in band.archive_names)}:
            return band
    return None


#: Digital numbers per unit reflectance of Sentinel-2 L1C and L2A products
#: (``QUANTIFICATION_VALUE`` / ``BOA_QUANTIFICATION_VALUE`` in their metadata).
SENTINEL2_DN_PER_REFLECTANCE = 10000.0
#: ``RADIO_ADD_OFFSET`` (L1C) / ``BOA_ADD_OFFSET`` (L2A) of every band since processing
#: baseline 04.00 (products from 25 January 2022, and the reprocessed archive), in DN:
#: ``reflectance = (DN + offset) / QUANTIFICATION_VALUE``.
SENTINEL2_ADD_OFFSET_DN = -1000.0
#: First processing baseline whose products carry :data:`SENTINEL2_ADD_OFFSET_DN`.
SENTINEL2_OFFSET_BASELINE = 4.0
#: The L2A scene classification (``SCL`` band) classes.
SENTINEL2_SCL_CLASSES: dict[int, str] = {
    0: "no data",
    1: "saturated or defective",
    2: "dark area or topographic shadow",
    3: "cloud shadow",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud, medium probability",
    9: "cloud, high probability",
    10: "thin cirrus",
    11: "snow or ice",
}
#: SCL classes where the ground cannot be judged: a landslide there would not be seen, so
#: the pixel is "not assessable", never "no landslide". Dark areas and topographic shadow
#: (2) stay assessable: steep valleys, where landslides happen, are often in shadow.
SENTINEL2_SCL_NOT_ASSESSABLE: frozenset[int] = frozenset({0, 1, 3, 8, 9, 10, 11})


@dataclass(frozen=True)
class Band:
    """One channel of an image.

    Attributes:
        name: short name, e.g. ``"B8"`` or ``"DSM"``; unique within a set.
        role: what the band measures, one of :data:`KNOWN_ROLES`.
        physical_per_unit: ``physical value = stored value * physical_per_unit``
            (reflectance 0–1 for optical bands, degrees for slope, metres for elevation,
            digital numbers for 8-bit RGB).
        unit: physical unit, for documentation and plots (``"reflectance"``, ``"deg"``, ``"m"``).
        aliases: other names a GeoTIFF band description may use for this band (``"B08"``, ``"nir"``).
    """

    name: str
    role: str
    physical_per_unit: float = 1.0
    unit: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def full_scale(self) -> float | None:
        """Full scale of an optical band in stored units (:data:`OPTICAL_FULL_SCALE`
        divided by ``physical_per_unit``); ``None`` for a band that is not optical."""
        physical = OPTICAL_FULL_SCALE.get(self.unit)
        return None if physical is None else physical / self.physical_per_unit

    def matches(self, label: str) -> bool:
        """Whether a band label names this band (case-insensitive).

        ``label`` is a raster band description, a file or asset name: GDAL's Sentinel-2
        descriptions (``"B4, central wavelength 665 nm"``) are matched by the part before
        the first comma.
        """
        wanted = band_label(label).lower()
        return bool(wanted) and wanted in {n.lower() for n in (self.name, self.role, *self.aliases)}


@dataclass(frozen=True)
class BandSet:
    """An ordered list of bands with unique names.

    Attributes:
        name: registry name (``"l4s14"``).
        bands: the bands in channel order.
        sensor: free text (``"Sentinel-2 L1C + ALOS PALSAR DEM"``).
        pixel_size_m: ground sampling distance the set is usually delivered at, metres.
        processing_level: ``"L1C"`` (top-of-atmosphere reflectance), ``"L2A"`` (surface
            reflectance) or ``""`` (not said). A scene of another level is mapped with a
            warning: the blue and coastal bands differ most between the two.
    """

    name: str
    bands: tuple[Band, ...]
    sensor: str = ""
    pixel_size_m: float = 10.0
    processing_level: str = ""
    _by_role: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.bands:
            raise BandSetError(f"band set {self.name!r} has no bands")
        names = [b.name for b in self.bands]
        if len(set(names)) != len(names):
            raise BandSetError(f"band set {self.name!r} repeats a band name: {names}")
        if not (math.isfinite(self.pixel_size_m) and self.pixel_size_m > 0):
            raise BandSetError(f"band set {self.name!r}: pixel_size_m must be a positive number of "
                               f"metres, got {self.pixel_size_m}")
        for i, band in enumerate(self.bands):
            if not (math.isfinite(band.physical_per_unit) and band.physical_per_unit > 0):
                raise BandSetError(
                    f"band set {self.name!r}: band {band.name!r} has physical_per_unit "
                    f"{band.physical_per_unit}; it must be a finite positive scale")
            if band.role not in KNOWN_ROLES:
                raise BandSetError(
                    f"band set {self.name!r}: band {band.name!r} has unknown role {band.role!r}; "
                    f"known roles: {', '.join(sorted(KNOWN_ROLES))}"
                )
            self._by_role.setdefault(band.role, i)
        if self.processing_level not in PROCESSING_LEVELS:
            raise BandSetError(
                f"band set {self.name!r}: processing_level {self.processing_level!r} is not one of "
                f"{', '.join(repr(level) for level in PROCESSING_LEVELS)}"
            )

    def __len__(self) -> int:
        return len(self.bands)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.bands]

    @property
    def roles(self) -> list[str]:
        return [b.role for b in self.bands]

    def has(self, *roles: str) -> bool:
        """True if the set has a band for at least one of ``roles``."""
        return any(r in self._by_role for r in roles)

    def index(self, *roles: str, needed_by: str = "") -> int:
        """Channel index of the first band whose role is one of ``roles`` (tried in order).

        Raises:
            BandSetError: the set has none of them; the message names ``needed_by``.
        """
        for role in roles:
            if role in self._by_role:
                return self._by_role[role]
        who = f"{needed_by} needs" if needed_by else "needed:"
        raise BandSetError(
            f"band set {self.name!r} ({', '.join(self.names)}) has no {' or '.join(roles)} band; "
            f"{who} it. Choose features that this band set supports or declare the band."
        )

    def has_rgb(self) -> bool:
        """True if the set has a red, a green and a blue band (a true-colour display)."""
        return all(self.has(role) for role in RGB_ROLES)

    def rgb_indices(self, needed_by: str = "a true-colour display") -> tuple[int, int, int]:
        """Channel indices of the red, green and blue bands, in that order: the one way
        slidemap picks the bands of a true-colour image.

        Raises:
            BandSetError: a colour is missing; the message names ``needed_by``.
        """
        red, green, blue = (self.index(role, needed_by=needed_by) for role in RGB_ROLES)
        return red, green, blue

    def band(self, *roles: str, needed_by: str = "") -> Band:
        """The :class:`Band` for the first matching role (see :meth:`index`)."""
        return self.bands[self.index(*roles, needed_by=needed_by)]

    def find(self, label: str) -> Band | None:
        """The band that ``label`` names (name, role or alias; see :meth:`Band.matches`)."""
        return next((band for band in self.bands if band.matches(label)), None)

    def subset(self, names: Iterable[str]) -> BandSet:
        """The bands named ``names`` (names or aliases), in this set's order.

        The subset is named after what it leaves out (``"l4s14 without B10"``) and keeps the
        set's sensor, pixel size and processing level.

        Raises:
            BandSetError: an unknown or repeated name, or no name at all.
        """
        wanted: list[Band] = []
        for label in names:
            band = self.find(str(label))
            if band is None:
                raise BandSetError(
                    f"band set {self.name!r} ({', '.join(self.names)}) has no band {label!r}"
                )
            if band in wanted:
                raise BandSetError(f"band {band.name!r} is listed twice in the subset of {self.name!r}")
            wanted.append(band)
        if not wanted:
            raise BandSetError(f"a subset of band set {self.name!r} needs at least one band")
        kept = tuple(band for band in self.bands if band in wanted)
        if len(kept) == len(self.bands):
            return self
        dropped = [band.name for band in self.bands if band not in kept]
        name = (f"{self.name} without {', '.join(dropped)}" if len(dropped) <= len(kept)
                else f"{self.name} bands {', '.join(b.name for b in kept)}")
        return BandSet(name, kept, self.sensor, self.pixel_size_m, self.processing_level)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON/YAML/checkpoint safe)."""
        return {
            "name": self.name,
            "sensor": self.sensor,
            "pixel_size_m": self.pixel_size_m,
            "processing_level": self.processing_level,
            "bands": [
                {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(b).items()}
                for b in self.bands
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BandSet:
        """Inverse of :meth:`to_dict`; raises :class:`BandSetError` on malformed input."""
        try:
            bands = tuple(
                Band(
                    name=str(b["name"]),
                    role=str(b["role"]),
                    physical_per_unit=float(b.get("physical_per_unit", 1.0)),
                    unit=str(b.get("unit", "")),
                    aliases=tuple(str(a) for a in b.get("aliases", ())),
                )
                for b in data["bands"]
            )
            return cls(
                name=str(data["name"]),
                bands=bands,
                sensor=str(data.get("sensor", "")),
                pixel_size_m=float(data.get("pixel_size_m", 10.0)),
                processing_level=str(data.get("processing_level", "") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BandSetError(f"malformed band set definition ({exc!r}): {dict(data)!r}") from None


_REGISTRY: dict[str, BandSet] = {}


def register_band_set(band_set: BandSet) -> BandSet:
    """Add ``band_set`` to the registry under its name (replacing one of the same name)."""
    _REGISTRY[band_set.name] = band_set
    return band_set


def get_band_set(spec: str | Mapping[str, Any] | BandSet) -> BandSet:
    """Resolve a registry name, a plain-data definition, or a :class:`BandSet` itself."""
    if isinstance(spec, BandSet):
        return spec
    if isinstance(spec, Mapping):
        return BandSet.from_dict(spec)
    if spec not in _REGISTRY:
        raise BandSetError(f"unknown band set {spec!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[spec]


def list_band_sets() -> list[str]:
    return sorted(_REGISTRY)


def _s2(name: str, role: str, reflectance_per_unit: float, *aliases: str) -> Band:
    """A Sentinel-2 band of a band set: matched by its ESA code and archive names too."""
    known = SENTINEL2_BY_NAME[name]
    names = (known.code, *known.archive_names, *aliases)
    return Band(name, role, reflectance_per_unit, "reflectance", tuple(dict.fromkeys(names)))


def _builtin() -> Iterable[BandSet]:
    yield BandSet(
        name="l4s14",
        sensor="Landslide4Sense-2022: Sentinel-2 B1-B12 (no B8A), slope, ALOS PALSAR DEM",
        pixel_size_m=10.0,
        # Top-of-atmosphere: the set has the cirrus band B10, which only L1C products carry,
        # and the real patches' coastal band never drops below 0.07 (Rayleigh scattering).
        processing_level="L1C",
        bands=(
            _s2("B1", "coastal", 0.1112, "aerosol"),
            _s2("B2", "blue", 0.0825),
            _s2("B3", "green", 0.0663),
            _s2("B4", "red", 0.0445),
            _s2("B5", "red_edge_1", 0.0646),
            _s2("B6", "red_edge_2", 0.1548),
            _s2("B7", "red_edge_3", 0.1960),
            _s2("B8", "nir", 0.1941),
            _s2("B9", "water_vapour", 0.0674, "water_vapour", "wv"),
            _s2("B10", "cirrus", 0.000905),
            _s2("B11", "swir1", 0.1114, "swir1"),
            _s2("B12", "swir2", 0.0520, "swir2"),
            Band("slope", "slope", 20.29, "deg", ("slope_deg",)),
            Band("DEM", "dem", 772.83, "m", ("elevation", "dem_m")),
        ),
    )
    yield BandSet(
        name="rgbd",
        sensor="high-resolution RGB (0-255) with a DSM in metres",
        pixel_size_m=1.0,
        bands=(
            Band("R", "red", 1.0, "DN", ("red",)),
            Band("G", "green", 1.0, "DN", ("green",)),
            Band("B", "blue", 1.0, "DN", ("blue",)),
            Band("DSM", "dsm", 1.0, "m", ("dem", "elevation")),
        ),
    )


for _bs in _builtin():
    register_band_set(_bs)
