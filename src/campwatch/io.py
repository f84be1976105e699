"""The I/O edge: find the bands of a scene, read an AOI window onto a grid, write outputs atomically.

Only this module (and the AOI reader) opens files.  Reading is two steps:

1. :func:`open_source` inspects a path (a multi-band raster, a folder of per-band
   files such as a Sentinel-2 ``IMG_DATA`` or L2A ``R10m/R20m/R60m`` tree, or any
   other GDAL-readable raster) and returns a :class:`SceneSource`: which file and
   band index hold each common-name band, the sensor profile, and the date.
2. :func:`read_source` reads a source onto a target :class:`~campwatch.grid.Grid`.
   When the file's pixels already lie on the grid's lattice it is a plain windowed
   read; otherwise the band is warped (``WarpedVRT``) onto the grid.  This is how the
   second date is aligned to the first: by georeferencing, never by array shape.

:func:`read_scene` does both, choosing the grid from the AOI when none is given.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import glob
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyogrio.errors
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window

from campwatch import masks
from campwatch.errors import (
    AcquisitionDateWarning,
    CampwatchError,
    InvalidSceneError,
    MissingBandsError,
    NoOverlapError,
    OutputExistsError,
    OutputLockedError,
    OutputWriteError,
    ReflectanceScalingWarning,
    ReprojectionWarning,
    TileReadError,
)
from campwatch.grid import Grid
from campwatch.profiles import (
    COMMON_NAMES,
    PROFILES,
    SensorProfile,
    band_key_from_text,
    get_profile,
)
from campwatch.scene import Scene

__all__ = [
    "BandRef",
    "SceneSource",
    "apply_user_mask",
    "atomic_dir",
    "atomic_path",
    "check_output_dir",
    "check_writable",
    "output_lock",
    "open_source",
    "read_raster",
    "read_scene",
    "read_source",
    "refuse_remote",
    "scene_grid",
    "utm_crs_for",
    "vector_stamp",
    "write_layers",
    "write_vector",
    "write_raster",
    "raster_writer",
    "block_shape",
]

log = logging.getLogger(__name__)

RASTER_SUFFIXES = {".tif", ".tiff", ".jp2", ".vrt", ".img", ".dat", ".bsq", ".bil", ".hdr", ".nc", ".png"}
_S2_FILE_RE = re.compile(r"(?:^|_)(B(?:0[1-9]|1[0-2]|8A))(?:_(10|20|60)m)?\.(?:tif|tiff|jp2)$", re.IGNORECASE)
_LANDSAT_FILE_RE = re.compile(r"^(L[CTEO]0[4-9])_.*?_((?:SR_)?B\d{1,2})\.(?:tif|tiff)$", re.IGNORECASE)
_SCL_FILE_RE = re.compile(r"(?:^|_)SCL(?:_(20|60)m)?\.(?:tif|tiff|jp2)$", re.IGNORECASE)
_QA_PIXEL_FILE_RE = re.compile(r"(?:^|_)QA_PIXEL\.(?:tif|tiff)$", re.IGNORECASE)

_DATE_TAGS = ("ACQUISITION_DATETIME", "ACQUISITION_DATE", "CAPTURE_DATE", "DATATAKE_1_DATATAKE_SENSING_START",
              "SENSING_TIME", "DATE_ACQUIRED")
# TIFFTAG_DATETIME is often the time the file was written, so it is the last resort, with a note.
_WEAK_DATE_TAG = "TIFFTAG_DATETIME"
#: Sentinel-2 processing baseline 04.00 (from 2022-01-25) adds 1000 to every DN (BOA/RADIO_ADD_OFFSET).
S2_BASELINE_04_START = dt.date(2022, 1, 25)
_DATE_NAME_PATTERNS = (
    ("sentinel-2 tile name sensing time", re.compile(r"T\d{2}[A-Z]{3}_(\d{8})T\d{6}")),
    ("SAFE product sensing time", re.compile(r"MSIL[12][AC]_(\d{8})T\d{6}")),
    ("landsat product acquisition date", re.compile(r"L[CTEO]0\d_L\w{3}_\d{6}_(\d{8})_")),
    ("ISO date in file name", re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)")),
)
# Old-style Sentinel-2 names (S2A_OPER_MSI_L1C_TL_EPA__20160706T155721_...) carry the *processing*
# time, not the sensing time, so they are not read as an acquisition date.
_OLD_S2_NAME = re.compile(r"S2[AB]_OPER_MSI_L1C_TL_\w{4}_(\d{8})T")


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


# --------------------------------------------------------------------------------------
# inspection
# --------------------------------------------------------------------------------------
#: A GDAL path that reaches over the network: a /vsicurl/-style virtual file system or a URL.
_REMOTE = re.compile(r"^\s*(/vsi(curl|s3|gs|az|adls|oss|swift|webhdfs|hdfs)\w*/|[a-z][a-z0-9+.-]*://)", re.IGNORECASE)


def refuse_remote(path: str | os.PathLike[str], *, _depth: int = 0) -> None:
    """Refuse a local input that would make GDAL connect to a server (which reveals the analyst's
    address): a remote path, or a ``.vrt`` (also nested) whose sources are remote.

    ``campwatch fetch`` is the one place that reads over the network, on purpose.
    """
    text = os.fspath(path)
    if _REMOTE.match(text):
        raise InvalidSceneError(f"{text}: a remote source; campwatch reads local files only (a remote read reveals "
                                "your address to its server): download it first, e.g. with campwatch fetch")
    p = Path(text)
    if p.suffix.lower() != ".vrt" or _depth > 8 or not p.is_file():
        return
    try:
        root = ET.parse(p).getroot()
    except (ET.ParseError, OSError):
        return  # not a VRT GDAL can read either: GDAL's own error names it
    for el in root.iter():
        tag = str(el.tag)
        if not (tag.endswith("Filename") or tag.endswith("DataSource")) or not (el.text or "").strip():
            continue
        src = el.text.strip()  # type: ignore[union-attr]
        if _REMOTE.match(src):
            raise InvalidSceneError(f"{p}: its source {src} is remote; campwatch reads local files only (a remote "
                                    "read reveals your address to its server): download the source and point the "
                                    "VRT at the local copy")
        local = p.parent / src if el.get("relativeToVRT") == "1" else Path(src)
        refuse_remote(local, _depth=_depth + 1)


def _open(path: str | Path) -> rasterio.DatasetReader:
    refuse_remote(path)
    try:
        ds = rasterio.open(path)
    except RasterioError as exc:
        raise TileReadError(f"{path}: not a readable raster ({exc}); check the file is a GDAL-readable image") from exc
    try:
        require_complete(ds, path)
    except TileReadError:
        ds.close()
        raise
    return ds


def require_complete(ds: rasterio.DatasetReader, path: str | Path) -> None:
    """Refuse a GeoTIFF cut short (an interrupted copy or download): a pixel block that ends
    beyond the end of the file.  It reads block offsets from the TIFF directory, not pixels, so
    it is cheap; every block of the first band and the last block of each band are checked."""
    if ds.driver != "GTiff" or not os.path.isfile(path):
        return
    size = os.path.getsize(path)
    bh, bw = ds.block_shapes[0]
    nx, ny = -(-ds.width // bw), -(-ds.height // bh)
    blocks = [(1, x, y) for y in range(ny) for x in range(nx)][:4096]
    blocks += [(b, nx - 1, ny - 1) for b in range(2, ds.count + 1)]
    for band, x, y in blocks:
        off = ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band)
        n = ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band)
        if off and n and int(off) + int(n) > size:
            raise TileReadError(f"{path}: the file is truncated (band {band}'s block {x},{y} ends at byte "
                                f"{int(off) + int(n):,}, the file has {size:,} bytes); copy or download it again")


#: Open datasets kept by :func:`kept_open`, per (thread, path); None outside such a block.
_KEPT: dict[tuple[int, str], Any] | None = None
_KEPT_LOCK = threading.Lock()


@contextlib.contextmanager
def kept_open() -> Iterator[None]:
    """Within this block, band reads keep each file open, one handle per thread, and the
    handles are closed at its end.  The streaming engine reads a full tile in hundreds of
    windows; opening the file for every band of every window cost more than a tenth of the
    reading time.  Nested blocks share the outer one's handles."""
    global _KEPT
    with _KEPT_LOCK:
        outer = _KEPT is not None
        if not outer:
            _KEPT = {}
    try:
        yield
    finally:
        if not outer:
            with _KEPT_LOCK:
                handles, _KEPT = _KEPT or {}, None
            for ds in handles.values():
                ds.close()


def _dataset(path: str | Path) -> contextlib.AbstractContextManager[Any]:
    """``rasterio.open(path)`` as a context manager; inside :func:`kept_open`, this thread's
    kept handle (not closed on exit)."""
    kept = _KEPT
    if kept is None:
        return rasterio.open(path)
    key = (threading.get_ident(), str(path))
    ds = kept.get(key)
    if ds is None:
        ds = rasterio.open(path)
        with _KEPT_LOCK:
            kept[key] = ds
    return contextlib.nullcontext(ds)


def _grid_of(ds: rasterio.DatasetReader, path: str | Path) -> Grid:
    if ds.crs is None or ds.transform == Affine.identity():
        raise InvalidSceneError(
            f"{path}: the raster has no georeferencing (CRS or transform); campwatch needs georeferenced imagery"
        )
    return Grid((ds.height, ds.width), ds.transform, ds.crs)


def _date_from_tags(tags: Mapping[str, str], keys: Sequence[str] = _DATE_TAGS) -> tuple[dt.date | None, str | None]:
    for key in keys:
        value = tags.get(key)
        if value:
            m = re.search(r"(\d{4})[-:]?(\d{2})[-:]?(\d{2})", value)
            if m:
                with contextlib.suppress(ValueError):
                    return dt.date(int(m[1]), int(m[2]), int(m[3])), f"tag {key}"
    return None, None


def _date_from_dates_txt(folder: Path) -> tuple[dt.date | None, str | None]:
    """OSCD layout: ``<city>/dates.txt`` gives ``date_1`` for ``imgs_1`` and ``date_2`` for ``imgs_2``."""
    m = re.fullmatch(r"imgs_(\d)", folder.name)
    dates = folder.parent / "dates.txt"
    if not m or not dates.is_file():
        return None, None
    for line in dates.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == f"date_{m[1]}":
            with contextlib.suppress(ValueError):
                return dt.datetime.strptime(value.strip(), "%Y%m%d").date(), f"{dates.name} date_{m[1]}"
    return None, None


def _date_from_name(name: str) -> tuple[dt.date | None, str | None]:
    for label, rx in _DATE_NAME_PATTERNS:
        m = rx.search(name)
        if m:
            text = m[1].replace("-", "")
            with contextlib.suppress(ValueError):
                return dt.datetime.strptime(text, "%Y%m%d").date(), f"{label} ({m[0]})"
    return None, None


def _find_date(path: Path, files: Sequence[Path], tags: Mapping[str, str]) -> tuple[dt.date | None, str | None, list[str]]:
    notes: list[str] = []
    date, source = _date_from_tags(tags)
    if date is None:
        folder = path if path.is_dir() else path.parent
        date, source = _date_from_dates_txt(folder)
    if date is None:
        for f in [path, *files]:
            date, source = _date_from_name(f.name)
            if date:
                break
    if date is None:
        date, source = _date_from_tags(tags, (_WEAK_DATE_TAG,))
        if date is not None:
            notes.append(f"date {date} comes from {_WEAK_DATE_TAG}, which may be when the file was written; "
                         "check it, or give the date explicitly")
    if date is None and any(_OLD_S2_NAME.search(f.name) for f in files):
        notes.append("file names carry a processing date, not the acquisition date; pass the date explicitly")
    return date, source, notes


def _s2_metadata_scaling(folder: Path, level: str) -> tuple[float | None, float | None, str | None]:
    """Quantification value and additive offset from a SAFE ``MTD_MSIL1C/2A.xml`` above ``folder``."""
    for parent in [folder, *folder.parents][:6]:
        for mtd in parent.glob("MTD_MSIL*.xml"):
            try:
                root = ET.parse(mtd).getroot()
            except ET.ParseError:
                continue
            quant = offset = None
            baseline = None
            for el in root.iter():
                tag = el.tag.rsplit("}", 1)[-1]
                if tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE") and el.text:
                    quant = float(el.text)
                elif tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.text and offset is None:
                    offset = float(el.text)
                elif tag == "PROCESSING_BASELINE" and el.text:
                    baseline = el.text.strip()
            return quant, offset, f"{mtd.name} (processing baseline {baseline})"
    return None, None, None


def _gdal_scaling(path: Path) -> tuple[float, float] | None:
    """A band file's own GDAL scale and offset (reflectance = DN * scale + offset), when set
    (``campwatch fetch`` writes them from the STAC item); None for the defaults 1 and 0."""
    with _open(path) as ds:
        scale, offset = ds.scales[0], ds.offsets[0]
    if (scale, offset) == (1.0, 0.0) or not scale:
        return None
    return float(scale), float(offset)


def _mask_ref(files: Sequence[Path], key: str, band_id: str) -> BandRef | None:
    """The quality band (Sentinel-2 SCL, Landsat QA_PIXEL) among ``files``, if any."""
    fs = sorted((f for f in files if band_id in f.name.upper()), key=lambda p: p.name)
    if not fs:
        return None
    with _open(fs[0]) as ds:
        return BandRef(key, str(fs[0]), 1, band_id, _grid_of(ds, fs[0]), ds.nodata, ds.dtypes[0])


def _band_folder_files(folder: Path) -> list[Path]:
    """Raster files under ``folder``, without SAFE quality masks (``QI_DATA/MSK_DETFOO_B02.jp2`` is not a band)."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES
             and "QI_DATA" not in p.relative_to(folder).parts[:-1] and not p.name.upper().startswith("MSK_")]
    return sorted(files)


def _band_refs(files: Mapping[str, Path], prof: SensorProfile) -> tuple[list[BandRef], dict[str, str]]:
    """A BandRef for each band file the profile names, and the tags of the last one opened."""
    refs: list[BandRef] = []
    tags: dict[str, str] = {}
    for bid, f in files.items():
        key = prof.key_for(bid)
        if key is None:
            continue
        with _open(f) as ds:
            refs.append(BandRef(key, str(f), 1, bid, _grid_of(ds, f), ds.nodata, ds.dtypes[0]))
            tags = ds.tags()
    return refs, tags


def _source_from_folder(folder: Path, profile: SensorProfile | None) -> SceneSource:
    files = _band_folder_files(folder)
    if not files:
        raise InvalidSceneError(
            f"{folder}: the folder holds no raster files; point at a multi-band image or a folder of band files (*_B02.tif ...)"
        )
    s2: dict[str, list[Path]] = {}
    landsat: dict[str, Path] = {}
    landsat_sensor = None
    scl: list[Path] = []
    for f in files:
        if _SCL_FILE_RE.search(f.name) or _QA_PIXEL_FILE_RE.search(f.name):
            scl.append(f)
        elif m := _S2_FILE_RE.search(f.name):
            s2.setdefault(m[1].upper(), []).append(f)
        elif m := _LANDSAT_FILE_RE.search(f.name):
            landsat[m[2].upper()] = f
            landsat_sensor = m[1].upper()
    if not s2 and not landsat:
        if len(files) == 1:
            return _source_from_file(files[0], profile)
        raise InvalidSceneError(
            f"{folder}: {len(files)} raster files but none named like band files (*_B02.tif, *_SR_B4.TIF); "
            "point at one multi-band image, or at a folder holding one scene's band files"
        )
    notes: list[str] = []
    if s2:
        is_l2a = any("SCL" in f.name.upper() for f in scl) or any(re.search(r"_(10|20|60)m\.|MSIL2A|/R[126]0m/", str(f)) for fs in s2.values() for f in fs)
        name = "sentinel2-l2a" if is_l2a else "sentinel2-l1c"
        prof = profile or PROFILES[name]
        # several resolutions of one band (L2A R10m/R20m/R60m): keep the finest copy.
        chosen: dict[str, Path] = {}
        for bid, fs in s2.items():
            chosen[bid] = min(fs, key=lambda p: int((_S2_FILE_RE.search(p.name) or [None, None, "99"])[2] or 99))
        tiles = {re.sub(r"_?B(?:0[1-9]|1[0-2]|8A)(?:_\d\dm)?\.\w+$", "", p.name, flags=re.I) for p in chosen.values()}
        if len(tiles) > 1:
            raise InvalidSceneError(
                f"{folder}: band files of {len(tiles)} different products ({', '.join(sorted(tiles)[:3])}...); "
                "a scene folder must hold one product's bands"
            )
        if profile is None:
            quant, offset, mtd = _s2_metadata_scaling(next(iter(chosen.values())).parent, name)
            if quant:
                prof = prof.with_scaling(scale=1.0 / quant, offset=offset or 0.0)
                notes.append(f"reflectance scaling from {mtd}: (DN + {offset or 0:g}) / {quant:g}")
            elif (gdal := _gdal_scaling(next(iter(chosen.values())))) is not None:
                prof = prof.with_scaling(scale=gdal[0], offset=gdal[1] / gdal[0])
                notes.append(f"reflectance scaling from the band files' scale/offset: DN * {gdal[0]:g} + {gdal[1]:g}")
        refs, tags = _band_refs(chosen, prof)
        scl_ref = _mask_ref(scl, "scl", "SCL")
    else:
        name = "landsat-oli" if landsat_sensor in ("LC08", "LC09", "LO08", "LO09") else "landsat-tm-etm"
        if any(k.startswith("SR_") for k in landsat):
            name = "landsat-c2l2" if name == "landsat-oli" else "landsat-c2l2-tm-etm"
        prof = profile or PROFILES[name]
        if profile is None and (gdal := _gdal_scaling(next(iter(landsat.values())))) is not None:
            prof = prof.with_scaling(scale=gdal[0], offset=gdal[1] / gdal[0])
            notes.append(f"reflectance scaling from the band files' scale/offset: DN * {gdal[0]:g} + {gdal[1]:g}")
        refs, tags = _band_refs(landsat, prof)
        scl_ref = _mask_ref(scl, "qa_pixel", "QA_PIXEL")
    refs.sort(key=lambda b: COMMON_NAMES.index(b.key))
    crss = {b.grid.crs.to_string() for b in refs}
    if len(crss) > 1:
        raise InvalidSceneError(f"{folder}: band files in different CRSs ({', '.join(sorted(crss))}); one scene needs one CRS")
    date, date_source, date_notes = _find_date(folder, [Path(b.path) for b in refs], tags)
    if (s2 and profile is None and not any("reflectance scaling from" in n for n in notes)
            and date is not None and date >= S2_BASELINE_04_START):
        # No MTD XML beside the bands: products processed with baseline >= 04.00 (all sensed from
        # 2022-01-25) carry a -1000 DN offset; without it reflectance is biased by +0.1.
        prof = prof.with_scaling(offset=-1000.0)
        msg = (f"no MTD_MSIL*.xml found; sensed {date} (>= {S2_BASELINE_04_START}), so processing baseline "
               ">= 04.00 is assumed and DN - 1000 is used; give --profile sentinel2-reflectance or the "
               "product's MTD file if that is wrong")
        notes.append(msg)
        warnings.warn(f"{folder}: {msg}", ReflectanceScalingWarning, stacklevel=3)
    return SceneSource(str(folder), "band-folder", prof, tuple(refs), date, date_source, scl_ref,
                       tuple(notes + date_notes), tags)


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


def _source_from_file(path: Path, profile: SensorProfile | None, band_map: Mapping[str, int] | None = None) -> SceneSource:
    with _open(path) as ds:
        grid = _grid_of(ds, path)
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
    date, date_source, date_notes = _find_date(path, [path], tags)
    return SceneSource(str(path), "multiband", prof, tuple(refs), date, date_source, None, tuple(notes + date_notes), tags)


def open_source(path: str | os.PathLike[str], *, profile: str | None = None,
                bands: Mapping[str, int] | None = None) -> SceneSource:
    """Inspect a scene on disk without reading its pixels.

    Parameters
    ----------
    path : path-like
        A multi-band raster, a folder of per-band files, or a single-file folder.
    profile : str, optional
        A name from :data:`campwatch.profiles.PROFILES`; by default it is detected.
    bands : mapping, optional
        ``{"red": 1, "nir": 4}``: the user's band mapping for a multi-band file.

    Examples
    --------
    >>> src = open_source("data/sample_tiles/rennes/imgs_2")
    >>> src.profile.name, len(src.bands), src.date.isoformat()
    ('sentinel2-l1c', 13, '2017-06-21')
    """
    p = Path(path)
    prof = get_profile(profile) if profile else None
    if not p.exists():
        raise TileReadError(f"{p}: no such file or folder; check the path")
    if p.is_dir():
        if bands:
            raise MissingBandsError(f"{p}: --bands maps band indexes of one multi-band file, not a folder of band files")
        src = _source_from_folder(p, prof)
    else:
        src = _source_from_file(p, prof, bands)
    if src.date is None:
        warnings.warn(f"{p}: acquisition date not found in tags or file names"
                      + (f" ({src.notes[-1]})" if src.notes else ""), AcquisitionDateWarning, stacklevel=2)
    return src


# --------------------------------------------------------------------------------------
# grids and reading
# --------------------------------------------------------------------------------------
def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone CRS that contains ``(lon, lat)``.

    Examples
    --------
    >>> utm_crs_for(126.98, 39.6).to_epsg()   # Yodok, North Korea
    32652
    """
    zone = math.floor((lon + 180.0) / 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _geometry_bounds(aoi: Any, crs: CRS) -> tuple[float, float, float, float]:
    """Bounds of an EPSG:4326 geometry (shapely or ``__geo_interface__``) in ``crs``."""
    geo = aoi.__geo_interface__ if hasattr(aoi, "__geo_interface__") else aoi
    if crs != CRS.from_epsg(4326):
        geo = transform_geom("EPSG:4326", crs, geo)
    xs: list[float] = []
    ys: list[float] = []

    def walk(c: Any) -> None:
        if isinstance(c[0], (int, float)):
            xs.append(float(c[0]))
            ys.append(float(c[1]))
        else:
            for sub in c:
                walk(sub)

    walk(geo["coordinates"])
    return min(xs), min(ys), max(xs), max(ys)


def scene_grid(source: SceneSource, *, aoi: Any = None, margin_m: float = 100.0,
               resolution: float | None = None, crs: str | CRS | None = None) -> Grid:
    """The grid a scene is read onto.

    By default, the source's finest band grid, cut to the AOI (an EPSG:4326 geometry)
    plus ``margin_m``.  With ``resolution`` (metres), the AOI's local UTM grid at that
    resolution (or ``crs`` if given) instead.
    """
    fine = source.finest.grid
    if resolution is not None:
        if aoi is None:
            lon0, lat0, lon1, lat1 = transform_bounds(fine.crs, "EPSG:4326", *fine.bounds, densify_pts=21)
            target = CRS.from_user_input(crs) if crs else utm_crs_for((lon0 + lon1) / 2, (lat0 + lat1) / 2)
            bounds = transform_bounds(fine.crs, target, *fine.bounds, densify_pts=21)
        else:
            b4326 = _geometry_bounds(aoi, CRS.from_epsg(4326))
            target = CRS.from_user_input(crs) if crs else utm_crs_for((b4326[0] + b4326[2]) / 2, (b4326[1] + b4326[3]) / 2)
            left, bottom, right, top = _geometry_bounds(aoi, target)
            bounds = (left - margin_m, bottom - margin_m, right + margin_m, top + margin_m)
        left = math.floor(bounds[0] / resolution) * resolution
        top = math.ceil(bounds[3] / resolution) * resolution
        cols = max(1, math.ceil((bounds[2] - left) / resolution))
        rows = max(1, math.ceil((top - bounds[1]) / resolution))
        grid = Grid((rows, cols), Affine(resolution, 0, left, 0, -resolution, top), target)
        overlap = transform_bounds(fine.crs, target, *fine.bounds, densify_pts=21)
        if overlap[0] >= grid.bounds[2] or overlap[2] <= grid.bounds[0] or overlap[1] >= grid.bounds[3] or overlap[3] <= grid.bounds[1]:
            raise NoOverlapError(f"{source.path}: scene bounds {tuple(round(v, 6) for v in overlap)} do not overlap "
                                 f"the requested grid {tuple(round(v, 6) for v in grid.bounds)} ({target.to_string()})")
        return grid
    if aoi is None:
        return fine
    left, bottom, right, top = _geometry_bounds(aoi, fine.crs)
    if fine.is_geographic:
        lat = (bottom + top) / 2
        mx = margin_m / (111_320.0 * max(math.cos(math.radians(lat)), 1e-6))
        my = margin_m / 110_574.0
    else:
        mx = my = margin_m
    try:
        win = fine.window_of_bounds((left - mx, bottom - my, right + mx, top + my))
    except NoOverlapError:
        aoi_b = _geometry_bounds(aoi, CRS.from_epsg(4326))
        scene_b = transform_bounds(fine.crs, "EPSG:4326", *fine.bounds, densify_pts=21)
        swapped = (aoi_b[1], aoi_b[0], aoi_b[3], aoi_b[2])
        hint = ("; its coordinates look swapped (lat, lon): GeoJSON wants lon, lat"
                if swapped[0] < scene_b[2] and swapped[2] > scene_b[0] and swapped[1] < scene_b[3]
                and swapped[3] > scene_b[1] else "; pick the scene that covers the AOI")
        raise NoOverlapError(
            f"the AOI (lon/lat bounds {tuple(round(v, 5) for v in aoi_b)}) lies outside the scene {source.path} "
            f"(lon/lat bounds {tuple(round(v, 5) for v in scene_b)}){hint}"
        ) from None
    return fine.window(win)


def _lattice_window(src: Grid, dst: Grid) -> Window | None:
    """The window of ``src`` equal to ``dst`` when both share CRS, pixel size and pixel lattice."""
    if src.crs != dst.crs:
        return None
    a, b = src.transform, dst.transform
    if a.b or a.d or b.b or b.d:
        return None
    if not (math.isclose(a.a, b.a, rel_tol=1e-6) and math.isclose(a.e, b.e, rel_tol=1e-6)):
        return None
    col = (b.c - a.c) / a.a
    row = (b.f - a.f) / a.e
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        return None
    return Window(round(col), round(row), dst.width, dst.height)


def _read_band(ref: BandRef, grid: Grid, resampling: Resampling, *,
               native: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One band on ``grid`` as float64 DN (the file's own dtype for plain windowed reads when
    ``native``), plus a mask of pixels that came from the file."""
    try:
        with _dataset(ref.path) as ds:
            win = _lattice_window(ref.grid, grid)
            fill = ref.nodata if ref.nodata is not None else 0
            if win is not None:
                within = (win.row_off >= 0 and win.col_off >= 0 and win.row_off + win.height <= ref.grid.height
                          and win.col_off + win.width <= ref.grid.width)
                # a boundless read goes through a VRT: only when the window leaves the file
                arr = ds.read(ref.index, window=win, boundless=not within, fill_value=None if within else fill,
                              out_dtype=None if native else "float64")
                inside = np.zeros(grid.shape, dtype=bool)
                r0, c0 = max(0, -int(win.row_off)), max(0, -int(win.col_off))
                r1 = min(grid.height, ref.grid.height - int(win.row_off))
                c1 = min(grid.width, ref.grid.width - int(win.col_off))
                if r1 > r0 and c1 > c0:
                    inside[r0:r1, c0:c1] = True
                return arr, inside
            if ref.grid.crs != grid.crs:
                warnings.warn(f"{ref.path}: reprojected from {ref.grid.crs.to_string()} to {grid.crs.to_string()} "
                              f"({resampling.name} resampling)", ReprojectionWarning, stacklevel=3)
                log.info("reprojecting %s from %s to %s", ref.path, ref.grid.crs, grid.crs)
            if ref.nodata is None:
                # Without a nodata value, coverage comes from an alpha band: a nodata of 0 would
                # also mark the file's real zeros (a mask's "keep" value, a dark pixel) as outside.
                with WarpedVRT(ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                               resampling=resampling, add_alpha=True) as vrt:
                    arr = vrt.read(ref.index, out_dtype="float64")
                    inside = vrt.read(vrt.count) > 0
                arr[~inside] = fill
                return arr, inside
            with WarpedVRT(ds, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                           resampling=resampling, src_nodata=ref.nodata, nodata=fill,
                           add_alpha=False) as vrt:
                arr = vrt.read(ref.index, out_dtype="float64")
                inside = vrt.read_masks(ref.index) > 0
            return arr, inside
    except RasterioError as exc:
        raise TileReadError(f"{ref.path}: cannot read band {ref.key} ({exc})") from exc


@functools.lru_cache(maxsize=16)
def _reflectance_lut(dtype: str, offset: float, scale: float) -> np.ndarray:
    """float32 ``(dn + offset) * scale`` (computed in float64) for every value of an 8/16-bit dtype."""
    dn = np.arange(np.iinfo(dtype).max + 1, dtype=np.float64)
    lut = ((dn + offset) * scale).astype(np.float32)
    lut.setflags(write=False)
    return lut


def _zero_rules(source: SceneSource, ref: BandRef) -> tuple[bool, bool]:
    """How a 0 in band ``ref`` is read: (0 alone is fill, 0 is fill only where every such band
    is 0).  In a folder of unsigned band files a 0 is fill; in one multi-band unsigned file
    without a nodata value only a pixel that is 0 in every band is (a single 0 is a real
    value in 8-bit imagery: deep shadow)."""
    uint = ref.dtype.startswith("uint")
    all_zero = source.layout == "multiband" and uint and ref.nodata is None
    return uint and not all_zero, all_zero


def _one_read(source: SceneSource, grid: Grid, keys: Sequence[str]) -> Window | None:
    """The window of ``grid`` in the one integer file holding all of ``keys``, when a single
    plain read covers them (same file, pixel lattice, inside the file, no SCL); else None."""
    refs = [source.band(k) for k in keys]
    if source.scl is not None or len({r.path for r in refs}) != 1 or refs[0].dtype not in ("uint8", "uint16"):
        return None
    win = _lattice_window(refs[0].grid, grid)
    if win is None or any(not r.grid.same_as(refs[0].grid) for r in refs):
        return None
    g = refs[0].grid
    if win.row_off < 0 or win.col_off < 0 or win.row_off + win.height > g.height or win.col_off + win.width > g.width:
        return None
    return win


def _read_at_once(source: SceneSource, win: Window, keys: Sequence[str], data: np.ndarray,
                  valid: np.ndarray, at: tuple[int, int]) -> None:
    """All of ``keys`` in one read of one file, converted by one compiled pass with exactly the
    numbers of the band-by-band path (:func:`campwatch._kernels.dn_to_reflectance`), into
    ``data`` and ``valid`` from row and column ``at``."""
    from campwatch._kernels import dn_to_reflectance

    refs = [source.band(k) for k in keys]
    prof = source.profile
    try:
        with _dataset(refs[0].path) as ds:
            dn = ds.read([r.index for r in refs], window=win)
    except RasterioError as exc:
        raise TileReadError(f"{refs[0].path}: cannot read bands {', '.join(keys)} ({exc})") from exc
    zero_fill, all_zero = (np.array(x) for x in zip(*(_zero_rules(source, r) for r in refs), strict=True))
    has_nodata = np.array([r.nodata is not None and not np.isnan(r.nodata) for r in refs])
    nodata = np.array([r.nodata if h else 0.0 for r, h in zip(refs, has_nodata, strict=True)], np.float64)
    sat = prof.saturation
    dn_to_reflectance(dn, float(prof.offset), float(prof.scale), nodata, has_nodata, zero_fill, all_zero,
                      float(sat) if sat is not None else 0.0, sat is not None, data, valid, *at)


def read_source(source: SceneSource, grid: Grid, *, bands: Sequence[str] | None = None,
                resampling: Literal["bilinear", "nearest", "cubic", "average"] = "bilinear",
                use_scl: bool = True, out: tuple[np.ndarray, np.ndarray] | None = None,
                at: tuple[int, int] = (0, 0)) -> Scene:
    """Read ``source`` onto ``grid``: reflectance, valid mask, date and provenance.

    With ``out``, the (bands, rows, cols) float32 and (rows, cols) bool arrays read into:
    the grid's first pixel lands at row and column ``at`` of them, and the scene's arrays
    are views of them.  Pass whole C-contiguous arrays and ``at`` rather than a view of
    their middle: the one-read conversion then writes them at full speed.

    Invalid pixels (outside the file, nodata, zero fill in unsigned products, saturation,
    and L2A SCL cloud/shadow/cirrus/snow where an SCL band is present) are NaN and
    False in ``Scene.valid``.  Zero fill: in a folder of band files (Sentinel-2, Landsat)
    a 0 in any band is fill; in one multi-band file without a nodata value only a pixel
    that is 0 in every band is fill, because a single 0 is a real value in 8-bit
    imagery (deep shadow in a VHR image).
    """
    keys = list(bands) if bands is not None else list(source.keys)
    missing = [k for k in keys if k not in source.keys]
    if missing:
        raise MissingBandsError(f"{source.path}: needs bands {', '.join(missing)} but has only {', '.join(source.keys)}")
    rs = Resampling[resampling]
    prof = source.profile
    if out is not None:
        whole, whole_valid = out
        r, c = at
        m, n = grid.shape
        if (whole.ndim != 3 or whole.shape[0] != len(keys) or whole.shape[1:] != whole_valid.shape
                or min(r, c) < 0 or r + m > whole.shape[1] or c + n > whole.shape[2]):
            raise ValueError(f"out arrays {whole.shape}, {whole_valid.shape} at {at} do not hold {len(keys)} "
                             f"bands on {grid.shape}")
        data, valid = whole[:, r:r + m, c:c + n], whole_valid[r:r + m, c:c + n]
    else:
        data = whole = np.empty((len(keys), *grid.shape), dtype=np.float32)
        valid = whole_valid = np.empty(grid.shape, dtype=bool)
        at = (0, 0)
    win = _one_read(source, grid, keys)
    if win is not None:
        _read_at_once(source, win, keys, whole, whole_valid, at)
        return _scene(source, grid, keys, data, valid, resampling)
    valid[...] = True
    all_zero: np.ndarray | None = None  # multi-band files: zero in every unsigned band without nodata
    for i, key in enumerate(keys):
        ref = source.band(key)
        # Shrinking finer pixels onto a coarser grid averages them; enlarging uses ``resampling``.
        finer = ref.grid.pixel_size_m() < grid.pixel_size_m() * 0.99
        band_rs = Resampling.average if finer and rs == Resampling.bilinear else rs
        dn, inside = _read_band(ref, grid, band_rs, native=True)
        zero_fill, in_all_zero = _zero_rules(source, ref)
        if in_all_zero:
            all_zero = (dn == 0) if all_zero is None else all_zero & (dn == 0)
        valid &= inside & masks.nodata_mask(dn, nodata=ref.nodata, zero_is_nodata=zero_fill,
                                            saturation=prof.saturation)
        if dn.dtype in (np.uint8, np.uint16):
            # the same float64 arithmetic, done once per possible DN (a full tile reads faster)
            data[i] = _reflectance_lut(dn.dtype.name, prof.offset, prof.scale)[dn]
        else:
            data[i] = ((dn.astype(np.float64) + prof.offset) * prof.scale).astype(np.float32)
    if all_zero is not None:
        valid &= ~all_zero
    scl_fraction = None
    if source.scl is not None and use_scl:
        scl, inside = _read_band(source.scl, grid, Resampling.nearest)
        scl_ok = (masks.qa_pixel_valid(scl.astype(np.uint16)) if source.scl.band_id == "QA_PIXEL"
                  else masks.scl_valid(scl.astype(np.uint8))) & inside
        scl_fraction = round(float(1 - scl_ok[valid].mean()) if valid.any() else 0.0, 6)
        valid &= scl_ok
    invalid = ~valid
    if invalid.any():
        data[:, invalid] = np.nan
    return _scene(source, grid, keys, data, valid, resampling, scl_fraction)


def _scene(source: SceneSource, grid: Grid, keys: Sequence[str], data: np.ndarray, valid: np.ndarray,
           resampling: str, scl_fraction: float | None = None) -> Scene:
    prof = source.profile
    meta: dict[str, Any] = {"layout": source.layout, "date_source": source.date_source,
                            "reflectance_scale": prof.scale, "reflectance_offset": prof.offset,
                            "resampling": resampling}
    if scl_fraction is not None:
        meta["scl_masked_fraction"] = scl_fraction
    if source.notes:
        meta["notes"] = list(source.notes)
    used = tuple(dict.fromkeys(source.band(k).path for k in keys))
    return Scene(data, tuple(keys), grid, valid, source.date, prof.name, used, meta)


def read_scene(path: str | os.PathLike[str], *, aoi: Any = None, grid: Grid | None = None,
               bands: Sequence[str] | None = None, profile: str | None = None,
               band_map: Mapping[str, int] | None = None, resolution: float | None = None,
               margin_m: float = 100.0,
               resampling: Literal["bilinear", "nearest", "cubic", "average"] = "bilinear",
               mask: str | os.PathLike[str] | None = None,
               mask_invalid: Literal["nonzero", "zero"] = "nonzero") -> Scene:
    """Read a scene from disk onto one grid.

    Parameters
    ----------
    path : path-like
        Multi-band raster or folder of band files.
    aoi : shapely geometry (EPSG:4326), optional
        Only the AOI window plus ``margin_m`` is read.
    grid : Grid, optional
        Read onto this grid (to align a second date to the first).  Overrides ``aoi``.
    bands : sequence of str, optional
        Common names to read; all by default.
    profile, band_map :
        Override the detected sensor profile or band mapping.
    resolution : float, optional
        Read onto the AOI's local UTM grid at this resolution in metres.
    mask : path-like, optional
        A user mask raster (any CRS and resolution).  It is read onto the scene's
        grid with nearest-neighbour resampling; pixels it marks become invalid.
        Pixels outside the mask raster are left as they are.
    mask_invalid : {"nonzero", "zero"}
        Which mask values mark invalid pixels: by default any nonzero value.

    Examples
    --------
    >>> before = read_scene("data/sample_tiles/rennes/imgs_1", bands=["red", "nir"])
    >>> after = read_scene("data/sample_tiles/rennes/imgs_2", grid=before.grid, bands=["red", "nir"])
    >>> after.grid.same_as(before.grid), before.data.shape
    (True, (2, 339, 563))
    """
    source = open_source(path, profile=profile, bands=band_map)
    if grid is None:
        grid = scene_grid(source, aoi=aoi, margin_m=margin_m, resolution=resolution)
    else:
        fine = source.finest.grid
        other = transform_bounds(fine.crs, grid.crs, *fine.bounds, densify_pts=21)
        gb = grid.bounds
        if other[0] >= gb[2] or other[2] <= gb[0] or other[1] >= gb[3] or other[3] <= gb[1]:
            raise NoOverlapError(f"{source.path}: scene bounds {tuple(round(v, 6) for v in other)} do not overlap "
                                 f"the target grid {tuple(round(v, 6) for v in gb)} ({grid.crs.to_string()}); "
                                 "the two dates must cover the same place")
    scene = read_source(source, grid, bands=bands, resampling=resampling)
    if mask is not None:
        scene = apply_user_mask(scene, mask, invalid=mask_invalid)
    return scene


def apply_user_mask(scene: Scene, path: str | os.PathLike[str], *,
                    invalid: Literal["nonzero", "zero"] = "nonzero") -> Scene:
    """Mark the pixels a user mask raster flags as invalid (see :func:`read_scene`'s ``mask``).

    ``meta["user_mask"]`` records the file and ``meta["user_masked_fraction"]`` the share
    of previously valid pixels it removed.
    """
    p = Path(path)
    if not p.exists():
        raise TileReadError(f"{p}: no such mask file; check the --mask path")
    with _open(p) as ds:
        own = _grid_of(ds, p) if ds.crs is not None and ds.transform != Affine.identity() else None
    if own is not None:
        ref = BandRef("mask", str(p), 1, "1", own, None, "float64")
        arr, inside = _read_band(ref, scene.grid, Resampling.nearest)
        arr = np.where(inside, arr, np.nan)
    else:
        arr, _ = read_raster(p, grid=scene.grid)
    ok = masks.user_mask_valid(arr, invalid=invalid)
    before = int(scene.valid.sum())
    removed = int((scene.valid & ~ok).sum())
    return scene.with_valid(ok, user_mask=str(p), user_mask_invalid=invalid,
                            user_masked_fraction=round(removed / before, 6) if before else 0.0)


# --------------------------------------------------------------------------------------
# single rasters and atomic outputs
# --------------------------------------------------------------------------------------
def read_raster(path: str | os.PathLike[str], *, grid: Grid | None = None, band: int = 1,
                resampling: Literal["nearest", "bilinear"] = "nearest") -> tuple[np.ndarray, Grid]:
    """Read one band of a raster (labels, masks), optionally onto ``grid``.

    A raster without georeferencing (some OSCD label files) is taken to lie on
    ``grid`` when its shape equals the grid's shape.
    """
    from rasterio.errors import NotGeoreferencedWarning

    p = Path(path)
    if not p.exists():
        raise TileReadError(f"{p}: no such file; check the path")
    with warnings.catch_warnings():  # handled below: an unreferenced raster takes ``grid``
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = _open(p)
    with ds:
        if ds.crs is None or ds.transform == Affine.identity():
            arr = ds.read(band)
            if grid is None:
                raise InvalidSceneError(f"{p}: the raster has no georeferencing; give the grid it belongs to")
            if arr.shape != grid.shape:
                raise InvalidSceneError(
                    f"{p}: has no georeferencing and its shape {arr.shape} differs from the grid {grid.shape}; "
                    "an unreferenced label must cover exactly the prediction's grid (score a whole-scene "
                    "comparison, made without --aoi)")
            return arr, grid
        own = _grid_of(ds, p)
        if grid is None:
            return ds.read(band), own
        dtype = ds.dtypes[band - 1]
    ref = BandRef("mask", str(p), band, str(band), own, None, "float64")
    arr, _ = _read_band(ref, grid, Resampling[resampling])
    return arr.astype(dtype), grid


def check_writable(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Refuse an existing output file unless ``overwrite``, and a folder in a file's place; return the path."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        raise OutputExistsError(f"{p} is a folder; give a file name for this output")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} exists already; pass --overwrite to replace it")
    return p


#: The file campwatch leaves in every output folder it writes: ``--overwrite`` replaces only such folders.
OUTPUT_MARKER = ".campwatch-output"


def check_output_dir(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Refuse an output folder campwatch may not (re)write; return it as an absolute path.

    A new or empty folder is fine.  An existing folder is replaced only with ``overwrite``
    and only when campwatch wrote it (it holds :data:`OUTPUT_MARKER`): ``--overwrite``
    never deletes a user's own files, and a file is never turned into a folder.  The
    parent must be writable.  Call it before any computation, so that nothing is lost.
    """
    p = Path(os.path.abspath(path))
    if p.parent == p:
        raise OutputExistsError(f"{path}: the file-system root cannot be an output folder; give a new folder")
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            raise OutputExistsError(f"{path} is a file, not a folder; give -o a new folder name "
                                    "(campwatch never replaces a file with a folder)")
        if any(p.iterdir()):
            if not overwrite:
                raise OutputExistsError(f"{path} exists already; pass --overwrite to replace it, or give a new "
                                        "folder")
            if not (p / OUTPUT_MARKER).is_file():
                raise OutputExistsError(f"{path} is not a folder campwatch wrote (it has no {OUTPUT_MARKER} file), so "
                                        "--overwrite will not replace it; give a new folder, or empty it yourself")
    parent = next((q for q in p.parents if q.exists()), p.parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputWriteError(f"{parent} is not writable, so {path} cannot be written; choose another -o folder")
    return p


@contextlib.contextmanager
def output_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on output ``path`` (a sibling ``.NAME.lock`` file, removed after).

    A second run writing the same path meanwhile gets :class:`OutputLockedError` at once.
    """
    import fcntl

    final = Path(path)
    lock = final.with_name(f".{final.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLockedError(f"{final} is being written by another campwatch run ({lock} is locked); wait for "
                                    "it to finish, or give another output path") from None
        try:  # the lock file may have been removed by the run that held it: lock the current one
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _recover(final: Path) -> None:
    """Under the output lock: undo what a killed run left beside ``final``.

    A run killed between its two renames left the previous output only as ``.NAME.old``:
    it is put back when ``final`` is missing, removed otherwise.  Temporary ``.NAME.*.part``
    files and folders (``.NAME.part-*``) of killed runs are removed.
    """
    name = glob.escape(final.name)
    for old in sorted([*final.parent.glob(f".{name}.old"), *final.parent.glob(f".{name}.old-*")]):
        if not final.exists() and not final.is_symlink():
            os.replace(old, final)
            log.warning("restored %s from %s, left by an interrupted run", final, old.name)
        else:
            _remove(old)
    for part in final.parent.glob(f".{name}.part-*"):
        _remove(part)


#: What GDAL, OGR and the OS raise when an output cannot be written (full disk, read-only, quota).
_WRITE_ERRORS = (OSError, RasterioError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError)


@contextlib.contextmanager
def _writing(final: Path) -> Iterator[None]:
    """Turn a failure while outputs are built into one :class:`OutputWriteError` naming ``final``."""
    try:
        yield
    except OutputWriteError as inner:  # a file inside the folder being built: name the folder instead
        exc = inner.__cause__ or inner
        raise OutputWriteError(f"{final} could not be written ({type(exc).__name__}: {exc}); nothing was replaced. "
                               "Free disk space, or choose a writable -o path, and run again") from exc
    except CampwatchError:
        raise
    except _WRITE_ERRORS as exc:
        raise OutputWriteError(f"{final} could not be written ({type(exc).__name__}: {exc}); nothing was replaced. "
                               "Free disk space, or choose a writable -o path, and run again") from exc


def _swap_in(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` moves to ``.NAME.old`` first, then goes."""
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old")
        os.replace(final, old)
        os.replace(tmp, final)  # a kill before this line leaves only .NAME.old: the next run restores it
        _remove(old)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    The final path is locked meanwhile (:func:`output_lock`); leftovers of killed runs go first.
    """
    final = check_writable(path, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(final):
        _recover(final)
        final = check_writable(final, overwrite=overwrite)  # again: another run may have written it meanwhile
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.part-", suffix=final.suffix, dir=final.parent)
        os.close(fd)
        os.unlink(tmp)
        try:
            with _writing(final):
                yield Path(tmp)
                _swap_in(Path(tmp), final)
        finally:
            _remove(Path(tmp))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, overwrite: bool = False, kind: str = "output") -> Iterator[Path]:
    """Yield a new temporary folder beside ``path``; swap it into place only if the block succeeds.

    The whole output folder is built there, so a folder is only ever the previous complete
    run or the new complete one, never a mixture: a crash, Ctrl-C or kill leaves the old one
    as it was.  The folder gets :data:`OUTPUT_MARKER` (with ``kind``, the command that wrote
    it); see :func:`check_output_dir` for what may be replaced.  The path is locked while the
    folder is built and swapped, and the next run clears what a killed run left.
    """
    final = check_output_dir(path, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(final):
        _recover(final)
        check_output_dir(final, overwrite=overwrite)  # again: another run may have written it meanwhile
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.part-", dir=final.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; outputs are meant to be shared
        try:
            with _writing(final):
                yield tmp
                (tmp / OUTPUT_MARKER).write_text(to_json({"written_by": "campwatch", "command": kind}),
                                                 encoding="utf-8")
                _swap_in(tmp, final)
        finally:
            _remove(tmp)


def _tiff_profile(grid: Grid, *, count: int, dtype: str, nodata: float | None, fast: bool = False) -> dict[str, Any]:
    """The GeoTIFF campwatch writes: tiled 256 px (small rasters striped), DEFLATE; ``fast``:
    ZSTD level 1 when this GDAL has it (a third of DEFLATE's CPU time at the same size on
    float32 scores; GDAL >= 2.3 reads it), else DEFLATE level 1."""
    profile: dict[str, Any] = {
        "driver": "GTiff", "height": grid.height, "width": grid.width, "count": count,
        "dtype": dtype, "crs": grid.crs, "transform": grid.transform, "nodata": nodata,
        "compress": "deflate", "tiled": grid.width >= 256 and grid.height >= 256, "bigtiff": "if_safer",
    }
    if profile["tiled"]:
        profile.update(blockxsize=256, blockysize=256)
    if fast:
        profile.update({"compress": "zstd", "zstd_level": 1} if _has_zstd() else {"zlevel": 1})
    return profile


@functools.lru_cache(maxsize=1)
def _has_zstd() -> bool:
    """Whether this GDAL writes ZSTD-compressed GeoTIFFs (tried once, in memory: a GDAL
    without ZSTD only warns and writes the file uncompressed)."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(driver="GTiff", width=1, height=1, count=1, dtype="uint8", compress="zstd") as dst:
                dst.write(np.zeros((1, 1, 1), np.uint8))
            with mem.open() as src:
                return src.tags(ns="IMAGE_STRUCTURE").get("COMPRESSION", "").upper() == "ZSTD"


def write_raster(path: str | os.PathLike[str], array: np.ndarray, grid: Grid, *, nodata: float | None = None,
                 overwrite: bool = False, tags: Mapping[str, str] | None = None,
                 band_names: Sequence[str] | None = None) -> Path:
    """Write an (M, N) or (B, M, N) array on ``grid`` as a tiled DEFLATE GeoTIFF, atomically."""
    arr = array[None] if array.ndim == 2 else array
    if arr.shape[1:] != grid.shape:
        raise InvalidSceneError(f"array shape {arr.shape[1:]} does not match grid {grid.shape} for {path}")
    profile = _tiff_profile(grid, count=arr.shape[0], dtype=arr.dtype.name, nodata=nodata)
    with atomic_path(path, overwrite=overwrite) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr)
        _finish(dst, tags, band_names)
    return Path(path)


def _finish(dst: Any, tags: Mapping[str, str] | None, band_names: Sequence[str] | None) -> None:
    if tags:
        dst.update_tags(**{k: str(v) for k, v in tags.items()})
    for i, name in enumerate(band_names or []):
        dst.set_band_description(i + 1, name)


def block_shape(ref: BandRef) -> tuple[int, int]:
    """(rows, cols) of the internal blocks (tiles or strips) of the file holding band ``ref``."""
    with _open(ref.path) as ds:
        r, c = ds.block_shapes[ref.index - 1]
    return int(r), int(c)


@contextlib.contextmanager
def raster_writer(path: str | os.PathLike[str], grid: Grid, *, dtype: str, nodata: float | None = None,
                  overwrite: bool = False, tags: Mapping[str, str] | None = None,
                  band_names: Sequence[str] | None = None, fast: bool = False) -> Iterator[Any]:
    """Write a one-band raster on ``grid`` window by window; yields ``write(array, window)``.

    The file :func:`write_raster` makes (``fast``: ZSTD level 1, see :func:`_tiff_profile`),
    written to a temporary name and renamed into place only when the block succeeds.
    ``write`` must be called from one thread at a time.
    """
    profile = _tiff_profile(grid, count=1, dtype=dtype, nodata=nodata, fast=fast)
    with atomic_path(path, overwrite=overwrite) as tmp, rasterio.open(tmp, "w", **profile) as dst:

        def write(array: np.ndarray, window: Window) -> None:
            dst.write(np.asarray(array, dtype=dtype), 1, window=window)

        yield write
        _finish(dst, tags, band_names)


def png_bytes(rgb: np.ndarray, *, level: int = 1, up_filter: bool = False) -> bytes:
    """Encode an (M, N, 3) RGB or (M, N, 4) RGBA uint8 image as PNG bytes (8-bit, zlib ``level``).

    The PNG container is a signature and three chunks around one zlib stream; ``zlib.compress`` releases the
    GIL, so the streaming engine's 1098 x 3294 px quicklook is written while the polygons
    are (GDAL's PNG driver held the GIL and took twice as long for the same size).  Rows are
    unfiltered by default; ``up_filter`` stores each row as its difference from the row above
    (PNG filter 2), which makes photographic images about 20 % smaller at level 6.

    Examples
    --------
    >>> png_bytes(np.zeros((2, 3, 3), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    import struct
    import zlib

    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"png_bytes needs an (M, N, 3) or (M, N, 4) uint8 image, got shape {rgb.shape}")
    h, w, c = rgb.shape
    rows = np.zeros((h, c * w + 1), np.uint8)  # each row: its filter type (0 none, 2 up), then its pixels
    rows[:, 1:] = rgb.reshape(h, c * w)
    if up_filter:
        rows[1:, 1:] -= rows[:-1, 1:].copy()  # uint8 arithmetic wraps modulo 256, as PNG's filter does
        rows[:, 0] = 2

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2 if c == 3 else 6, 0, 0, 0)  # 8-bit truecolour (+ alpha), no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + chunk(b"IEND", b""))


def write_png(path: str | os.PathLike[str], rgb: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write an (M, N, 3) uint8 image as a PNG file, atomically."""
    data = png_bytes(rgb)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


_GDAL_OPTION_LOCK = threading.Lock()


def vector_stamp(*dates: Any) -> str:
    """The timestamp GeoPackages carry (``gpkg_contents.last_change``): the newest of the inputs'
    acquisition dates, never the clock, so that a rerun writes the same bytes; with no date, 1970-01-01."""
    known = [d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10]) for d in dates if d]
    return f"{max(known, default=dt.date(1970, 1, 1)).isoformat()}T00:00:00.000Z"


def write_vector(gdf: Any, path: str | os.PathLike[str], *, layer: str, driver: str = "GPKG",
                 stamp: str | None = None) -> Path:
    """Write ``gdf`` as layer ``layer`` of ``path`` (GeoPackage layers add to an existing file).

    ``layer`` is also the GeoJSON ``name``, whatever the file is called while it is written.
    ``stamp`` (:func:`vector_stamp`) pins GDAL's ``OGR_CURRENT_DATE`` for the write.
    """
    import pyogrio

    with _GDAL_OPTION_LOCK:
        before = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": stamp or vector_stamp()})
        try:
            gdf.to_file(path, layer=layer, driver=driver, engine="pyogrio")
        finally:
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": before})
    return Path(path)


#: The ``layer_styles`` table QGIS reads a layer's default style from (the columns QGIS itself creates).
_LAYER_STYLES_SQL = """CREATE TABLE layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256),
f_table_schema TEXT(256), f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT,
styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), update_time DATETIME)"""


def write_layers(path: str | os.PathLike[str], layers: Mapping[str, Any], *, stamp: str | None = None) -> Path:
    """Write each GeoDataFrame of ``layers`` (name -> frame, see :func:`campwatch.layers.to_layer`) as a
    layer of the GeoPackage ``path``, then a ``layer_styles`` table with each layer's default QGIS style
    (:func:`campwatch.layers.style_rows`), registered in ``gpkg_contents`` as an attributes table.

    ``path`` is the temporary path of an atomic write (:func:`atomic_path`, :func:`atomic_dir`):
    the styles are part of the file that is renamed into place.
    """
    import sqlite3

    from campwatch.layers import style_rows

    stamp = stamp or vector_stamp()
    for name, gdf in layers.items():
        write_vector(gdf, path, layer=name, stamp=stamp)
    con = sqlite3.connect(path)
    try:
        with con:
            geom = dict(con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns").fetchall())
            con.execute(_LAYER_STYLES_SQL)
            con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, last_change) "
                        "VALUES ('layer_styles', 'attributes', 'layer_styles', ?)", (stamp,))
            for name in layers:
                con.executemany("INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                                "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, owner, "
                                "ui, update_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                style_rows({name: layers[name]}, geometry_column=geom.get(name, "geom"), stamp=stamp))
    except sqlite3.Error as exc:
        raise OutputWriteError(f"{path}: could not write the layer_styles table ({exc}); check the disk and "
                               "rerun") from None
    finally:
        con.close()
    return Path(path)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (dt.date, Path)):
        return o.isoformat() if isinstance(o, dt.date) else str(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_json(obj: Any) -> str:
    """JSON text for an output file: indented, UTF-8, numpy scalars/arrays, dates and paths converted.

    Examples
    --------
    >>> print(to_json({"area_m2": np.float32(2.5), "date": dt.date(2013, 5, 1), "pct": float("nan")}), end="")
    {
      "area_m2": 2.5,
      "date": "2013-05-01",
      "pct": null
    }
    """
    return json.dumps(_finite(obj), indent=2, ensure_ascii=False, default=_jsonable, allow_nan=False) + "\n"


def _finite(o: Any) -> Any:
    """NaN and infinities as null: JSON has no such numbers, and a figure that is not a number is none."""
    if isinstance(o, float | np.floating):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, Mapping):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray) and o.dtype.kind == "f":
        return _finite(o.tolist())
    return o


def write_json(path: str | os.PathLike[str], obj: Any, *, overwrite: bool = False) -> Path:
    """Write :func:`to_json` of ``obj`` atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(to_json(obj), encoding="utf-8")
    return Path(path)
