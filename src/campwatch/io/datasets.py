"""Opening raster files: local files only, whole GeoTIFFs, and handles kept open while streaming.

Every band read of :mod:`campwatch.io` opens its file here: :func:`open_raster` refuses a remote
source (:func:`refuse_remote`) and a truncated GeoTIFF (:func:`require_complete`) with a
:class:`~campwatch.errors.TileReadError` or :class:`~campwatch.errors.InvalidSceneError`;
:func:`open_kept` reuses one handle per thread inside a :func:`kept_open` block.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from rasterio.errors import RasterioError

from campwatch.errors import InvalidSceneError, TileReadError
from campwatch.grid import Grid

__all__ = ["grid_of", "kept_open", "open_kept", "open_raster", "refuse_remote", "require_complete"]


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


def open_raster(path: str | Path) -> rasterio.DatasetReader:
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


def open_kept(path: str | Path) -> contextlib.AbstractContextManager[Any]:
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


def grid_of(ds: rasterio.DatasetReader, path: str | Path) -> Grid:
    if ds.crs is None or ds.transform == Affine.identity():
        raise InvalidSceneError(
            f"{path}: the raster has no georeferencing (CRS or transform); campwatch needs georeferenced imagery"
        )
    return Grid((ds.height, ds.width), ds.transform, ds.crs)
