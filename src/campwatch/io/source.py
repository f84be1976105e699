"""What a scene on disk is, before any pixel is read: :class:`BandRef` (where one band lives) and
:class:`SceneSource` (a scene's bands, sensor profile and date), and the band references built from
per-band files, which the Sentinel-2 and Landsat layouts share.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rasterio.warp import transform_bounds

from campwatch.errors import MissingBandsError
from campwatch.grid import Grid
from campwatch.io.datasets import grid_of, open_raster
from campwatch.profiles import COMMON_NAMES, SensorProfile

__all__ = ["BandRef", "SceneSource", "band_refs", "gdal_scaling", "mask_ref"]


@dataclass(frozen=True)
class BandRef:
    """Where one band lives: file, 1-based band index, native grid and nodata."""

    key: str
    path: str
    index: int
    band_id: str
    grid: Grid
    nodata: float | None
    dtype: str


@dataclass(frozen=True)
class SceneSource:
    """A scene on disk, inspected but not read: band locations, profile and date."""

    path: str
    layout: Literal["multiband", "band-folder"]
    profile: SensorProfile
    bands: tuple[BandRef, ...]
    date: dt.date | None
    date_source: str | None
    scl: BandRef | None = None
    notes: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(b.key for b in self.bands)

    def band(self, key: str) -> BandRef:
        for b in self.bands:
            if b.key == key:
                return b
        raise MissingBandsError(f"{self.path} has no band {key!r}; it has {', '.join(self.keys)}")

    @property
    def finest(self) -> BandRef:
        """The band with the smallest pixels (first such band in wavelength order)."""
        return min(self.bands, key=lambda b: (round(b.grid.pixel_size_m(), 3), COMMON_NAMES.index(b.key)))

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the source (what ``campwatch info`` prints)."""
        fine = self.finest.grid
        lon_lat = transform_bounds(fine.crs, "EPSG:4326", *fine.bounds, densify_pts=21)
        return {
            "path": self.path,
            "layout": self.layout,
            "profile": self.profile.name,
            "profile_description": self.profile.description,
            "date": self.date.isoformat() if self.date else None,
            "date_source": self.date_source,
            "crs": fine.crs.to_string(),
            "size": {"rows": fine.height, "cols": fine.width},
            "resolution": list(fine.res),
            "pixel_size_m": round(fine.pixel_size_m(), 3),
            "bounds": list(fine.bounds),
            "bounds_lonlat": [round(v, 7) for v in lon_lat],
            "reflectance_scale": self.profile.scale,
            "reflectance_offset": self.profile.offset,
            "bands": [
                {"name": b.key, "band_id": b.band_id, "file": os.path.basename(b.path), "index": b.index,
                 "resolution": list(b.grid.res), "pixel_size_m": round(b.grid.pixel_size_m(), 3),
                 "size": [b.grid.height, b.grid.width], "dtype": b.dtype, "nodata": b.nodata}
                for b in self.bands
            ],
            "scl": os.path.basename(self.scl.path) if self.scl else None,
            "notes": list(self.notes),
        }


def gdal_scaling(path: Path) -> tuple[float, float] | None:
    """A band file's own GDAL scale and offset (reflectance = DN * scale + offset), when set
    (``campwatch fetch`` writes them from the STAC item); None for the defaults 1 and 0."""
    with open_raster(path) as ds:
        scale, offset = ds.scales[0], ds.offsets[0]
    if (scale, offset) == (1.0, 0.0) or not scale:
        return None
    return float(scale), float(offset)


def mask_ref(files: Sequence[Path], key: str, band_id: str) -> BandRef | None:
    """The quality band (Sentinel-2 SCL, Landsat QA_PIXEL) among ``files``, if any."""
    fs = sorted((f for f in files if band_id in f.name.upper()), key=lambda p: p.name)
    if not fs:
        return None
    with open_raster(fs[0]) as ds:
        return BandRef(key, str(fs[0]), 1, band_id, grid_of(ds, fs[0]), ds.nodata, ds.dtypes[0])


def band_refs(files: Mapping[str, Path], prof: SensorProfile) -> tuple[list[BandRef], dict[str, str]]:
    """A BandRef for each band file the profile names, and the tags of the last one opened."""
    refs: list[BandRef] = []
    tags: dict[str, str] = {}
    for bid, f in files.items():
        key = prof.key_for(bid)
        if key is None:
            continue
        with open_raster(f) as ds:
            refs.append(BandRef(key, str(f), 1, bid, grid_of(ds, f), ds.nodata, ds.dtypes[0]))
            tags = ds.tags()
    return refs, tags
