"""The multi-band file layout: one raster holding every band (a GeoTIFF stack, a VHR image, a
Landsat export, any GDAL-readable raster).

Bands are named by the user's ``--bands`` mapping, a given profile, the file's band descriptions
and colour interpretation, or, failing those, by band count and pixel size.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import rasterio

from campwatch.errors import InvalidSceneError, MissingBandsError
from campwatch.grid import Grid
from campwatch.io.datasets import grid_of, open_raster
from campwatch.io.dates import find_date
from campwatch.io.source import BandRef, SceneSource
from campwatch.profiles import COMMON_NAMES, PROFILES, SensorProfile, band_key_from_text

__all__ = ["source_from_file"]


def _guess_multiband_profile(ds: rasterio.DatasetReader, grid: Grid) -> tuple[SensorProfile, list[str | None]]:
    """Pick a profile for a multi-band file and the key of each band (None = unnamed)."""
    count = ds.count
    from_desc = [band_key_from_text(d) for d in ds.descriptions]
    colour = [c.name if c.name in ("red", "green", "blue") else None for c in ds.colorinterp]
    keys: list[str | None] = [d or c for d, c in zip(from_desc, colour, strict=True)]
    tags = {k.upper(): v for k, v in ds.tags().items()}
    sensor = " ".join(tags.get(k, "") for k in ("SENSOR", "PRODUCT", "SPACECRAFT_ID", "SATELLITE")).lower()
    px = grid.pixel_size_m()
    is_float = ds.dtypes[0].startswith("float")
    if all(keys) and len(set(keys)) == count:
        if "sentinel-2" in sensor or all(band_key_from_text(d) and d and d.upper().startswith("B") for d in ds.descriptions):
            name = "sentinel2-reflectance" if is_float or "0-1" in sensor else "sentinel2-l1c"
        elif "landsat" in sensor:
            name = "landsat-oli" if ("oli" in sensor or "8" in sensor or "9" in sensor) and "etm" not in sensor else "landsat-tm-etm"
        elif px < 5.0:
            name = "vhr-rgbn" if "nir" in keys else "vhr-rgb"
        else:
            name = "generic"
        base = PROFILES[name]
        return SensorProfile(base.name, base.description + " (bands named by the file's band descriptions)",
                             {str(i + 1): k for i, k in enumerate(keys) if k}, base.scale, base.offset,
                             px, base.saturation), keys
    # No usable names: fall back on band count and pixel size.
    if count == 13:
        base = PROFILES["sentinel2-reflectance" if is_float else "sentinel2-l1c"]
        order = ["coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "nir09",
                 "cirrus", "swir16", "swir22"]
    elif count in (3, 4) and px < 5.0:
        base = PROFILES["vhr-rgb" if count == 3 else "vhr-rgbn"]
        order = ["red", "green", "blue", "nir"][:count]
    elif count == 4 and 5.0 <= px <= 20.0:
        base = PROFILES["sentinel2-l1c"] if ds.dtypes[0] == "uint16" else PROFILES["generic"]
        order = ["blue", "green", "red", "nir"]  # Sentinel-2 10 m stack B02, B03, B04, B08
    elif count == 6 and px >= 20:
        base = PROFILES["landsat-tm-etm"]
        order = ["blue", "green", "red", "nir", "swir16", "swir22"]
    elif count in (3, 4):
        base = PROFILES["rgb" if count == 3 else "rgbn"]
        order = ["red", "green", "blue", "nir"][:count]
    else:
        raise InvalidSceneError(
            f"{ds.name}: {count} unnamed bands at {px:.1f} m; campwatch cannot tell which is which. "
            "Name them with --bands red=1,green=2,blue=3,nir=4 or --profile NAME"
        )
    return SensorProfile(base.name, base.description + f" (band order assumed from {count} bands at {px:.1f} m)",
                         {str(i + 1): k for i, k in enumerate(order)}, base.scale, base.offset, px,
                         base.saturation), list(order)


def source_from_file(path: Path, profile: SensorProfile | None, band_map: Mapping[str, int] | None = None) -> SceneSource:
    """The :class:`SceneSource` of multi-band file ``path`` (``profile`` and ``band_map``: the user's
    profile and ``--bands`` mapping, else detected)."""
    with open_raster(path) as ds:
        grid = grid_of(ds, path)
        tags = ds.tags()
        notes: list[str] = []
        if band_map:
            bad = [f"{k}={i}" for k, i in band_map.items() if i > ds.count]
            if bad:
                raise MissingBandsError(f"{path}: has {ds.count} bands, cannot map {', '.join(bad)}")
            base = profile or PROFILES["generic"]
            prof = SensorProfile(base.name, base.description + " (bands mapped by the user)",
                                 {str(i): k for k, i in band_map.items()}, base.scale, base.offset,
                                 grid.pixel_size_m(), base.saturation)
            keys: list[str | None] = [None] * ds.count
            for k, i in band_map.items():
                keys[i - 1] = k
        elif profile is not None:
            keys = [profile.key_for(str(i + 1)) or band_key_from_text(ds.descriptions[i]) for i in range(ds.count)]
            prof = profile
        else:
            prof, keys = _guess_multiband_profile(ds, grid)
        refs = [BandRef(k, str(path), i + 1, ds.descriptions[i] or str(i + 1), grid, ds.nodata, ds.dtypes[i])
                for i, k in enumerate(keys) if k]
        if not refs:
            raise MissingBandsError(f"{path}: none of its {ds.count} bands maps to a known band name")
    refs.sort(key=lambda b: COMMON_NAMES.index(b.key))
    date, date_source, date_notes = find_date(path, [path], tags)
    return SceneSource(str(path), "multiband", prof, tuple(refs), date, date_source, None, tuple(notes + date_notes), tags)
