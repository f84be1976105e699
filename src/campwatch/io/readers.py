"""Reading: inspect a scene on disk (:func:`open_source`), choose the grid it is read onto
(:func:`scene_grid`), and read it onto that grid (:func:`read_source`, :func:`read_scene`); single
rasters such as labels and masks (:func:`read_raster`, :func:`apply_user_mask`).

When a file's pixels already lie on the grid's lattice a band is a plain windowed read (a multi-band
integer file in one read, :func:`one_read`); otherwise it is warped (``WarpedVRT``) onto the grid.
This is how the second date is aligned to the first: by georeferencing, never by array shape.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
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
    InvalidSceneError,
    MissingBandsError,
    NoOverlapError,
    ReprojectionWarning,
    TileReadError,
)
from campwatch.grid import Grid
from campwatch.io.datasets import grid_of, open_kept, open_raster
from campwatch.io.folder import source_from_folder
from campwatch.io.multiband import source_from_file
from campwatch.io.source import BandRef, SceneSource
from campwatch.profiles import get_profile
from campwatch.scene import Scene

__all__ = ["apply_user_mask", "block_shape", "geometry_bounds", "lattice_window", "one_read", "open_source",
           "read_raster", "read_scene", "read_source", "scene_grid", "utm_crs_for"]

log = logging.getLogger(__name__)


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
        src = source_from_folder(p, prof)
    else:
        src = source_from_file(p, prof, bands)
    if src.date is None:
        warnings.warn(f"{p}: acquisition date not found in tags or file names"
                      + (f" ({src.notes[-1]})" if src.notes else ""), AcquisitionDateWarning, stacklevel=2)
    return src


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone CRS that contains ``(lon, lat)``.

    Examples
    --------
    >>> utm_crs_for(126.98, 39.6).to_epsg()   # Yodok, North Korea
    32652
    """
    zone = math.floor((lon + 180.0) / 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def geometry_bounds(aoi: Any, crs: CRS) -> tuple[float, float, float, float]:
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
            b4326 = geometry_bounds(aoi, CRS.from_epsg(4326))
            target = CRS.from_user_input(crs) if crs else utm_crs_for((b4326[0] + b4326[2]) / 2, (b4326[1] + b4326[3]) / 2)
            left, bottom, right, top = geometry_bounds(aoi, target)
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
    left, bottom, right, top = geometry_bounds(aoi, fine.crs)
    if fine.is_geographic:
        lat = (bottom + top) / 2
        mx = margin_m / (111_320.0 * max(math.cos(math.radians(lat)), 1e-6))
        my = margin_m / 110_574.0
    else:
        mx = my = margin_m
    try:
        win = fine.window_of_bounds((left - mx, bottom - my, right + mx, top + my))
    except NoOverlapError:
        aoi_b = geometry_bounds(aoi, CRS.from_epsg(4326))
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


def lattice_window(src: Grid, dst: Grid) -> Window | None:
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
        with open_kept(ref.path) as ds:
            win = lattice_window(ref.grid, grid)
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


def one_read(source: SceneSource, grid: Grid, keys: Sequence[str]) -> Window | None:
    """The window of ``grid`` in the one integer file holding all of ``keys``, when a single
    plain read covers them (same file, pixel lattice, inside the file, no SCL); else None."""
    refs = [source.band(k) for k in keys]
    if source.scl is not None or len({r.path for r in refs}) != 1 or refs[0].dtype not in ("uint8", "uint16"):
        return None
    win = lattice_window(refs[0].grid, grid)
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
        with open_kept(refs[0].path) as ds:
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
    win = one_read(source, grid, keys)
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
    with open_raster(p) as ds:
        own = grid_of(ds, p) if ds.crs is not None and ds.transform != Affine.identity() else None
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
        ds = open_raster(p)
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
        own = grid_of(ds, p)
        if grid is None:
            return ds.read(band), own
        dtype = ds.dtypes[band - 1]
    ref = BandRef("mask", str(p), band, str(band), own, None, "float64")
    arr, _ = _read_band(ref, grid, Resampling[resampling])
    return arr.astype(dtype), grid


def block_shape(ref: BandRef) -> tuple[int, int]:
    """(rows, cols) of the internal blocks (tiles or strips) of the file holding band ``ref``."""
    with open_raster(ref.path) as ds:
        r, c = ds.block_shapes[ref.index - 1]
    return int(r), int(c)
