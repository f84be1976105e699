"""Sensor band profiles: product band ids mapped to STAC ``eo:common_name`` keys.

A profile lets the same detector run on Sentinel-2, Landsat or a VHR RGB(N)
image.  Band keys are the STAC common names; where STAC gives several bands the
same name (Sentinel-2's three red-edge bands are all ``rededge``), they are
numbered in wavelength order: ``rededge1``, ``rededge2``, ``rededge3``.

Pure module: no file is opened here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from campwatch.errors import MissingBandsError

__all__ = [
    "SensorProfile",
    "PROFILES",
    "COMMON_NAMES",
    "get_profile",
    "band_key_from_text",
    "parse_band_override",
]

#: Every band key campwatch knows, in wavelength order.
COMMON_NAMES: tuple[str, ...] = (
    "coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3",
    "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir", "pan",
)

# Aliases seen in band descriptions of real files, mapped to keys.
_ALIASES = {
    "swir1": "swir16", "swir2": "swir22", "swir": "swir16", "nir1": "nir", "rededge": "rededge1",
    "red edge": "rededge1", "tir": "lwir", "thermal": "lwir", "panchromatic": "pan", "aerosol": "coastal",
}


@dataclass(frozen=True)
class SensorProfile:
    """How one sensor's product names its bands and scales its values.

    ``bands`` maps product band ids (``"B02"``, ``"SR_B2"``, ``"1"``) to keys.
    Reflectance is ``(dn + offset) * scale``; ``nominal_res_m`` is the finest native
    pixel size, used to pick resolution-aware methods.
    """

    name: str
    description: str
    bands: dict[str, str]
    scale: float = 1.0
    offset: float = 0.0
    nominal_res_m: float = 10.0
    saturation: float | None = None
    band_res_m: dict[str, float] = field(default_factory=dict)

    def key_for(self, band_id: str) -> str | None:
        """The common-name key of a product band id, or None if the profile lacks it."""
        return self.bands.get(band_id.upper()) or self.bands.get(band_id)

    @property
    def is_vhr(self) -> bool:
        return self.nominal_res_m < 5.0

    def with_scaling(self, *, scale: float | None = None, offset: float | None = None) -> SensorProfile:
        """A copy with other reflectance scaling (as the product metadata demands)."""
        return SensorProfile(
            self.name, self.description, dict(self.bands),
            self.scale if scale is None else scale,
            self.offset if offset is None else offset,
            self.nominal_res_m, self.saturation, dict(self.band_res_m),
        )


_S2_IDS = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
    "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09", "B10": "cirrus", "B11": "swir16",
    "B12": "swir22",
}
_S2_RES = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
           "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}

PROFILES: dict[str, SensorProfile] = {
    p.name: p
    for p in (
        SensorProfile("sentinel2-l1c", "Sentinel-2 MSI Level-1C top-of-atmosphere, DN/10000",
                      dict(_S2_IDS), 1e-4, 0.0, 10.0, 65535.0, {k: float(v) for k, v in _S2_RES.items()}),
        SensorProfile("sentinel2-l2a", "Sentinel-2 MSI Level-2A surface reflectance, DN/10000 "
                      "(baseline >= 04.00: offset -1000 from the metadata)",
                      {k: v for k, v in _S2_IDS.items() if k != "B10"}, 1e-4, 0.0, 10.0, 65535.0,
                      {k: float(v) for k, v in _S2_RES.items() if k != "B10"}),
        SensorProfile("sentinel2-reflectance", "Sentinel-2 bands already scaled to reflectance 0..1",
                      dict(_S2_IDS), 1.0, 0.0, 10.0, None),
        SensorProfile("landsat-tm-etm", "Landsat 4-5 TM / 7 ETM+ (B1-B5, B7 reflective; B6 thermal; B8 pan)",
                      {"B1": "blue", "B2": "green", "B3": "red", "B4": "nir", "B5": "swir16", "B7": "swir22",
                       "B6": "lwir", "B8": "pan", "SR_B1": "blue", "SR_B2": "green", "SR_B3": "red",
                       "SR_B4": "nir", "SR_B5": "swir16", "SR_B7": "swir22"}, 1.0, 0.0, 30.0, 255.0),
        SensorProfile("landsat-oli", "Landsat 8/9 OLI (B1 coastal .. B7 swir22, B8 pan, B9 cirrus)",
                      {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "nir", "B6": "swir16",
                       "B7": "swir22", "B8": "pan", "B9": "cirrus", "SR_B1": "coastal", "SR_B2": "blue",
                       "SR_B3": "green", "SR_B4": "red", "SR_B5": "nir", "SR_B6": "swir16", "SR_B7": "swir22"},
                      1.0, 0.0, 30.0, None),
        SensorProfile("landsat-c2l2", "Landsat Collection 2 Level-2 surface reflectance (DN*2.75e-5 - 0.2)",
                      {"SR_B1": "coastal", "SR_B2": "blue", "SR_B3": "green", "SR_B4": "red", "SR_B5": "nir",
                       "SR_B6": "swir16", "SR_B7": "swir22"}, 2.75e-5, -0.2 / 2.75e-5, 30.0, None),
        SensorProfile("landsat-c2l2-tm-etm",
                      "Landsat 4-5 TM / 7 ETM+ Collection 2 Level-2 surface reflectance (DN*2.75e-5 - 0.2)",
                      {"SR_B1": "blue", "SR_B2": "green", "SR_B3": "red", "SR_B4": "nir", "SR_B5": "swir16",
                       "SR_B7": "swir22"}, 2.75e-5, -0.2 / 2.75e-5, 30.0, None),
        SensorProfile("rgb", "Generic 3-band RGB (band 1 red, 2 green, 3 blue)",
                      {"1": "red", "2": "green", "3": "blue"}, 1.0, 0.0, 10.0, None),
        SensorProfile("rgbn", "Generic 4-band RGBN (red, green, blue, nir)",
                      {"1": "red", "2": "green", "3": "blue", "4": "nir"}, 1.0, 0.0, 10.0, None),
        SensorProfile("vhr-rgb", "Very-high-resolution (< 5 m) RGB, such as Maxar or Google Earth",
                      {"1": "red", "2": "green", "3": "blue"}, 1.0, 0.0, 0.5, None),
        SensorProfile("vhr-rgbn", "Very-high-resolution (< 5 m) RGB + NIR",
                      {"1": "red", "2": "green", "3": "blue", "4": "nir"}, 1.0, 0.0, 0.5, None),
        SensorProfile("generic", "Bands named by their descriptions or colour interpretation",
                      {}, 1.0, 0.0, 10.0, None),
    )
}


def get_profile(name: str) -> SensorProfile:
    """Look a profile up by name.

    Examples
    --------
    >>> get_profile("sentinel2-l1c").key_for("B8A")
    'nir08'
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise MissingBandsError(
            f"unknown sensor profile {name!r}; choose one of {', '.join(sorted(PROFILES))}"
        ) from None


_S2_BAND_RE = re.compile(r"(?:^|[_\-.])(B(?:0?[1-9]|1[0-2]|8A))(?:_\d{2}m)?$", re.IGNORECASE)


def band_key_from_text(text: str | None) -> str | None:
    """Map a band description or colour name (``"B04"``, ``"swir1"``, ``"red"``) to a key.

    Examples
    --------
    >>> band_key_from_text("swir1"), band_key_from_text("B8A"), band_key_from_text("Red")
    ('swir16', 'nir08', 'red')
    """
    if not text:
        return None
    t = text.strip().lower()
    if t in COMMON_NAMES:
        return t
    if t in _ALIASES:
        return _ALIASES[t]
    m = _S2_BAND_RE.search(text.strip())
    if m:
        bid = m.group(1).upper()
        if len(bid) == 2:
            bid = "B0" + bid[1]
        return _S2_IDS.get(bid)
    return None


def parse_band_override(text: str) -> dict[str, int]:
    """Parse ``"red=1,green=2,blue=3,nir=4"`` into ``{"red": 1, ...}`` (1-based band indexes).

    Examples
    --------
    >>> parse_band_override("red=1, nir=4")
    {'red': 1, 'nir': 4}
    """
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, idx = part.partition("=")
        key = band_key_from_text(name) or name.strip().lower()
        if not sep or key not in COMMON_NAMES or not idx.strip().isdigit() or int(idx) < 1:
            raise MissingBandsError(
                f"bad band mapping {part!r} in {text!r}; write NAME=INDEX pairs such as "
                f"red=1,green=2,blue=3,nir=4 with NAME one of {', '.join(COMMON_NAMES)}"
            )
        if key in out:
            raise MissingBandsError(f"band {key!r} is mapped twice in {text!r}")
        out[key] = int(idx)
    if not out:
        raise MissingBandsError(f"empty band mapping {text!r}; write pairs such as red=1,green=2,blue=3")
    return out
