"""Writing outputs, each to a temporary name renamed into place (a crash never leaves half a file).

Atomic outputs (:func:`atomic_path`, :func:`atomic_dir`, :func:`output_lock`, and the refusal of
existing outputs without ``--overwrite``: :func:`check_writable`, :func:`check_output_dir`), then
what is written through them: GeoTIFF rasters (:func:`write_raster`, :func:`raster_writer`), PNG
(:func:`png_bytes`, :func:`write_png`), vectors and GeoPackage layers (:func:`write_vector`,
:func:`write_layers`) and JSON (:func:`to_json`, :func:`write_json`).  A failure is one
:class:`~campwatch.errors.OutputWriteError` naming the output.
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
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.errors
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from campwatch.errors import (
    CampwatchError,
    InvalidSceneError,
    OutputExistsError,
    OutputLockedError,
    OutputWriteError,
)
from campwatch.grid import Grid
from campwatch.layers import style_rows

__all__ = ["OUTPUT_MARKER", "atomic_dir", "atomic_path", "check_output_dir", "check_writable", "output_lock",
           "png_bytes", "raster_writer", "tiff_profile", "to_json", "vector_stamp", "write_json", "write_layers",
           "write_png", "write_raster", "write_vector"]

log = logging.getLogger(__name__)


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


def tiff_profile(grid: Grid, *, count: int, dtype: str, nodata: float | None, fast: bool = False) -> dict[str, Any]:
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
    profile = tiff_profile(grid, count=arr.shape[0], dtype=arr.dtype.name, nodata=nodata)
    with atomic_path(path, overwrite=overwrite) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr)
        _finish(dst, tags, band_names)
    return Path(path)


def _finish(dst: Any, tags: Mapping[str, str] | None, band_names: Sequence[str] | None) -> None:
    if tags:
        dst.update_tags(**{k: str(v) for k, v in tags.items()})
    for i, name in enumerate(band_names or []):
        dst.set_band_description(i + 1, name)


@contextlib.contextmanager
def raster_writer(path: str | os.PathLike[str], grid: Grid, *, dtype: str, nodata: float | None = None,
                  overwrite: bool = False, tags: Mapping[str, str] | None = None,
                  band_names: Sequence[str] | None = None, fast: bool = False) -> Iterator[Any]:
    """Write a one-band raster on ``grid`` window by window; yields ``write(array, window)``.

    The file :func:`write_raster` makes (``fast``: ZSTD level 1, see :func:`tiff_profile`),
    written to a temporary name and renamed into place only when the block succeeds.
    ``write`` must be called from one thread at a time.
    """
    profile = tiff_profile(grid, count=1, dtype=dtype, nodata=nodata, fast=fast)
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
