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
      bands:
        - {name: RED, role: red}
        - {name: NIR, role: nir}
        - {name: DEM, role: dem, unit: m}
"""

from __future__ import annotations

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
        """Whether a raster band description ``label`` names this band (case-insensitive)."""
        wanted = label.strip().lower()
        return wanted in {n.lower() for n in (self.name, self.role, *self.aliases)}


@dataclass(frozen=True)
class BandSet:
    """An ordered list of bands with unique names.

    Attributes:
        name: registry name (``"l4s14"``).
        bands: the bands in channel order.
        sensor: free text (``"Sentinel-2 L1C + ALOS PALSAR DEM"``).
        pixel_size_m: ground sampling distance the set is usually delivered at, metres.
    """

    name: str
    bands: tuple[Band, ...]
    sensor: str = ""
    pixel_size_m: float = 10.0
    _by_role: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.bands:
            raise BandSetError(f"band set {self.name!r} has no bands")
        names = [b.name for b in self.bands]
        if len(set(names)) != len(names):
            raise BandSetError(f"band set {self.name!r} repeats a band name: {names}")
        for i, band in enumerate(self.bands):
            if band.role not in KNOWN_ROLES:
                raise BandSetError(
                    f"band set {self.name!r}: band {band.name!r} has unknown role {band.role!r}; "
                    f"known roles: {', '.join(sorted(KNOWN_ROLES))}"
                )
            self._by_role.setdefault(band.role, i)

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

    def band(self, *roles: str, needed_by: str = "") -> Band:
        """The :class:`Band` for the first matching role (see :meth:`index`)."""
        return self.bands[self.index(*roles, needed_by=needed_by)]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON/YAML/checkpoint safe)."""
        return {
            "name": self.name,
            "sensor": self.sensor,
            "pixel_size_m": self.pixel_size_m,
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
    padded = f"B{int(name[1:]):02d}"
    return Band(name, role, reflectance_per_unit, "reflectance", (padded, *aliases))


def _builtin() -> Iterable[BandSet]:
    yield BandSet(
        name="l4s14",
        sensor="Landslide4Sense-2022: Sentinel-2 B1-B12 (no B8A), slope, ALOS PALSAR DEM",
        pixel_size_m=10.0,
        bands=(
            _s2("B1", "coastal", 0.1112, "coastal", "aerosol"),
            _s2("B2", "blue", 0.0825, "blue"),
            _s2("B3", "green", 0.0663, "green"),
            _s2("B4", "red", 0.0445, "red"),
            _s2("B5", "red_edge_1", 0.0646, "rededge1"),
            _s2("B6", "red_edge_2", 0.1548, "rededge2"),
            _s2("B7", "red_edge_3", 0.1960, "rededge3"),
            _s2("B8", "nir", 0.1941, "nir"),
            _s2("B9", "water_vapour", 0.0674, "water_vapour", "wv"),
            _s2("B10", "cirrus", 0.000905, "cirrus"),
            _s2("B11", "swir1", 0.1114, "swir1", "swir16"),
            _s2("B12", "swir2", 0.0520, "swir2", "swir22"),
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
