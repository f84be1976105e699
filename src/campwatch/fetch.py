"""Find and download the free imagery of an AOI from a STAC API (``campwatch fetch``).

Four steps, each recorded in the ``fetch.json`` manifest:

1. **Search** (pystac-client): the items of one collection whose footprint meets the AOI
   between two dates.  The tile-wide ``eo:cloud_cover`` is only a pre-filter, applied on the
   client (not every STAC API has the query extension).
2. **Screen**: the items of one platform on one date are one acquisition (an AOI across two
   tiles has two items).  For each, only the AOI window of the cloud-mask asset (Sentinel-2
   SCL) is read, giving the AOI's *own* cloud and no-data fractions.
3. **Choose** the best acquisition per period (``per``: month, season, year or all); every
   other candidate gets the reason it was dropped.
4. **Download** each chosen acquisition: every band's AOI window (plus a margin) on the item's
   own grid, by HTTP range requests, tiles of one date mosaicked on the first tile's lattice;
   one GeoTIFF per band, the SCL band and the STAC item JSON, in ``DIR/<date>_<item-id>/``,
   written atomically.  A rerun skips completed dates.

The reflectance conversion is written into each band file (GDAL scale/offset), so
:func:`campwatch.io.open_source` reads a fetched folder with no flags.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io as _pyio
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.abc import FileContainer
from rasterio.errors import RasterioError
from rasterio.windows import Window

from campwatch import io, masks
from campwatch._version import __version__
from campwatch.aoi import AOI, resolve_aoi
from campwatch.errors import CampwatchError, FetchError, MissingDependencyError, OutputExistsError
from campwatch.grid import Grid
from campwatch.io.readers import geometry_bounds, lattice_window
from campwatch.io.writers import tiff_profile
from campwatch.params import InvalidParameterError
from campwatch.provenance import FETCH_RECORD

__all__ = ["DEFAULT_STAC_URL", "COLLECTIONS", "Candidate", "FetchError", "FetchResult", "fetch", "period_of"]

log = logging.getLogger(__name__)

#: Earth Search v1 (Element 84): Sentinel-2 L2A and Landsat C2 L2 COGs on AWS, no key needed.
DEFAULT_STAC_URL = "https://earth-search.aws.element84.com/v1"
MANIFEST = "fetch.json"
#: Bands (or candidates' mask windows) read at once, in threads; each one's requests are sequential.
PARALLEL_READS = 4
#: Inside each date folder: what was fetched for it (items, hrefs, ETags, bytes, SHA-256).
DATE_RECORD = FETCH_RECORD

Per = Literal["month", "season", "year", "all"]


@dataclass(frozen=True)
class CollectionSpec:
    """How one STAC collection names its bands, its files and its quality (cloud) band."""

    id: str
    #: common band name -> product band id, per platform ("" = every platform)
    bands: Mapping[str, Mapping[str, str]]
    #: the quality band's asset key (``scl``, ``qa_pixel``)
    mask: str
    default_bands: tuple[str, ...]
    #: asset keys other than the common name (Earth Search's Landsat NIR is ``nir08``)
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: "prefixed": ``<item-id>_<band id>.tif`` (Landsat product names); else ``<band id>.tif``
    file_names: Literal["plain", "prefixed"] = "plain"

    def band_ids(self, platform: str) -> Mapping[str, str]:
        return self.bands.get(platform) or self.bands[""]

    def file_name(self, item_id: str, band_id: str) -> str:
        return f"{item_id}_{band_id}.tif" if self.file_names == "prefixed" else f"{band_id}.tif"

    def quality(self, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(no data, unusable: cloud, shadow, cirrus, snow, defective) for quality-band values."""
        if self.mask == "qa_pixel":
            q = vals.astype(np.uint32)
            return (q & 1) == 1, ~masks.qa_pixel_valid(vals)
        nodata = vals == 0
        return nodata, ~masks.scl_valid(vals) & ~nodata


S2_BANDS = {"coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
            "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "swir16": "B11", "swir22": "B12",
            "scl": "SCL"}
_OLI = {"coastal": "SR_B1", "blue": "SR_B2", "green": "SR_B3", "red": "SR_B4", "nir": "SR_B5", "swir16": "SR_B6",
        "swir22": "SR_B7", "qa_pixel": "QA_PIXEL"}
_TM_ETM = {"blue": "SR_B1", "green": "SR_B2", "red": "SR_B3", "nir": "SR_B4", "swir16": "SR_B5", "swir22": "SR_B7",
           "qa_pixel": "QA_PIXEL"}
COLLECTIONS: dict[str, CollectionSpec] = {
    "sentinel-2-l2a": CollectionSpec("sentinel-2-l2a", {"": S2_BANDS}, "scl", ("blue", "green", "red", "nir")),
    "landsat-c2-l2": CollectionSpec(
        "landsat-c2-l2", {"": _OLI, "landsat-8": _OLI, "landsat-9": _OLI, "landsat-4": _TM_ETM,
                          "landsat-5": _TM_ETM, "landsat-7": _TM_ETM},
        "qa_pixel", ("blue", "green", "red", "nir"), aliases={"nir": "nir08"}, file_names="prefixed"),
}


# --------------------------------------------------------------------------------------
# periods and choice (pure)
# --------------------------------------------------------------------------------------
def period_of(date: dt.date, per: Per) -> str:
    """The ``per`` period a date falls in.

    Seasons are meteorological; December belongs to the next year's winter.

    Examples
    --------
    >>> period_of(dt.date(2019, 6, 3), "month"), period_of(dt.date(2019, 12, 3), "season")
    ('2019-06', '2020-DJF')
    >>> period_of(dt.date(2019, 4, 1), "season"), period_of(dt.date(2019, 4, 1), "year")
    ('2019-MAM', '2019')
    """
    if per == "month":
        return f"{date.year:04d}-{date.month:02d}"
    if per == "season":
        name = ("DJF", "DJF", "MAM", "MAM", "MAM", "JJA", "JJA", "JJA", "SON", "SON", "SON", "DJF")[date.month - 1]
        return f"{date.year + (date.month == 12):04d}-{name}"
    if per == "year":
        return f"{date.year:04d}"
    return "all"


def parse_months(text: str | None) -> tuple[int, ...] | None:
    """``--months 5-10`` or ``11-2`` (wrapping) or ``6,7,8`` as the months kept.

    Examples
    --------
    >>> parse_months("5-10")
    (5, 6, 7, 8, 9, 10)
    >>> parse_months("11-2")
    (1, 2, 11, 12)
    """
    if not text:
        return None
    months: set[int] = set()
    try:
        for part in str(text).split(","):
            a, sep, b = part.strip().partition("-")
            lo, hi = int(a), int(b) if sep else int(a)
            if not (1 <= lo <= 12 and 1 <= hi <= 12):
                raise ValueError
            months.update(range(lo, hi + 1) if lo <= hi else [*range(lo, 13), *range(1, hi + 1)])
    except ValueError:
        raise InvalidParameterError(f"--months {text!r}: give months 1-12 as a range (5-10, 11-2) or a list (6,7,8)") from None
    return tuple(sorted(months))


@dataclass
class Candidate:
    """One acquisition found by the search: the items of one platform on one date."""

    date: dt.date
    platform: str
    items: list[dict[str, Any]]
    tile_cloud: float | None
    period: str = ""
    aoi_cloud: float | None = None     # unusable (cloud, shadow, cirrus, snow) / AOI pixels with data
    aoi_nodata: float | None = None    # AOI pixels without data (outside the tiles, SCL 0) / AOI pixels
    status: Literal["kept", "dropped", "pending"] = "pending"
    reason: str = ""
    dropped_items: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.items[0]["id"])

    @property
    def folder(self) -> str:
        return f"{self.date.isoformat()}_{self.id}"

    def describe(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "period": self.period, "platform": self.platform,
                "items": [it["id"] for it in self.items], "tile_cloud_pct": self.tile_cloud,
                "aoi_cloud_fraction": _round(self.aoi_cloud), "aoi_nodata_fraction": _round(self.aoi_nodata),
                "status": self.status, "reason": self.reason, "duplicate_items_dropped": self.dropped_items}


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def _item_date(item: Mapping[str, Any]) -> dt.date:
    props = item.get("properties", {})
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        raise FetchError(f"STAC item {item.get('id')!r} has no properties.datetime; cannot date it")
    return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).date()


def group_items(items: Sequence[Mapping[str, Any]]) -> list[Candidate]:
    """One :class:`Candidate` per (date, platform); of two items of one tile (reprocessed
    versions) the most recently updated is kept and the other listed in ``dropped_items``."""
    groups: dict[tuple[dt.date, str], dict[str, dict[str, Any]]] = {}
    dropped: dict[tuple[dt.date, str], list[str]] = {}
    for it in items:
        props = it.get("properties", {})
        key = (_item_date(it), str(props.get("platform") or props.get("constellation") or "unknown"))
        tile = str(props.get("grid:code") or props.get("s2:mgrs_tile") or props.get("mgrs:grid_square")
                   or it.get("bbox") or it["id"])
        tiles = groups.setdefault(key, {})
        if tile in tiles:
            a, b = tiles[tile], dict(it)
            newer = max((a, b), key=lambda x: (str(x.get("properties", {}).get("updated") or ""), str(x["id"])))
            older = b if newer is a else a
            tiles[tile] = newer
            dropped.setdefault(key, []).append(f"{older['id']} (another version of {newer['id']}, same tile and date)")
        else:
            tiles[tile] = dict(it)
    out = []
    for (date, platform), tiles in sorted(groups.items()):
        its = sorted(tiles.values(), key=lambda x: str(x["id"]))
        clouds = [x.get("properties", {}).get("eo:cloud_cover") for x in its]
        known = [float(c) for c in clouds if c is not None]
        out.append(Candidate(date, platform, its, min(known) if known else None, dropped_items=dropped.get((date, platform), [])))
    return out


def choose(cands: Sequence[Candidate], *, per: Per, max_cloud_pct: float, max_nodata: float = 0.5) -> list[Candidate]:
    """Mark the best screened candidate of each period ``kept``; give every other its reason.

    Best is the lowest AOI cloud fraction, then the lowest no-data fraction, then the lowest
    tile cloud cover, then the earliest.  A candidate whose AOI cloud could not be read (no
    mask asset) ranks after every measured one.
    """
    for c in cands:
        if c.status == "dropped":
            continue
        c.period = period_of(c.date, per)
        if c.aoi_nodata is not None and c.aoi_nodata > max_nodata:
            c.status, c.reason = "dropped", (f"{c.aoi_nodata:.0%} of the AOI has no data (outside the tiles' "
                                             f"swath), more than {max_nodata:.0%}")
        elif c.aoi_cloud is not None and 100 * c.aoi_cloud > max_cloud_pct:
            c.status, c.reason = "dropped", f"cloud over the AOI {c.aoi_cloud:.0%} > --max-cloud {max_cloud_pct:g}%"

    def rank(c: Candidate) -> tuple[Any, ...]:
        return (c.aoi_cloud is None, c.aoi_cloud or 0.0, c.aoi_nodata or 0.0,
                c.tile_cloud if c.tile_cloud is not None else 101.0, c.date)

    by_period: dict[str, list[Candidate]] = {}
    for c in cands:
        if c.status == "pending":
            by_period.setdefault(c.period, []).append(c)
    for period, group in by_period.items():
        best, *rest = sorted(group, key=rank)
        best.status = "kept"
        best.reason = (f"best of {len(group)} in {period}: cloud over the AOI "
                       f"{'unknown (no cloud-mask asset)' if best.aoi_cloud is None else f'{best.aoi_cloud:.0%}'}")
        for c in rest:
            c.status = "dropped"
            c.reason = (f"another scene already chosen for {period} ({best.folder}, cloud over the AOI "
                        f"{'unknown' if best.aoi_cloud is None else f'{best.aoi_cloud:.0%}'})")
    return list(cands)


# --------------------------------------------------------------------------------------
# HTTP range reads, measured and retried
# --------------------------------------------------------------------------------------
@dataclass
class AssetStats:
    """What was fetched of one asset."""

    href: str
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    bytes_fetched: int = 0
    requests: int = 0
    retries: int = 0


class Http:
    """Range GETs with retries (timeouts, dropped connections, 429 and 5xx, exponential backoff
    with jitter), a per-URL cache of aligned chunks, and byte counts per URL."""

    RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

    def __init__(self, *, retries: int = 5, backoff_s: float = 0.5, timeout_s: float = 30.0,
                 chunk: int = 16384, sign: Callable[[str], str] | None = None) -> None:
        import requests

        self._requests = requests
        self.session = requests.Session()
        self.retries, self.backoff_s, self.timeout_s, self.chunk = retries, backoff_s, timeout_s, chunk
        self.sign = sign
        self.stats: dict[str, AssetStats] = {}
        self._cache: dict[str, dict[int, bytes]] = {}
        self._lock = threading.Lock()

    def stat(self, url: str) -> AssetStats:
        with self._lock:
            return self.stats.setdefault(url, AssetStats(url))

    def _get(self, url: str, start: int, end: int) -> tuple[bytes, Mapping[str, str]]:
        """Bytes ``start..end`` (inclusive) of ``url``, retried; the body length is checked."""
        st = self.stat(url)
        target = self.sign(url) if self.sign else url
        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                st.retries += 1
                time.sleep(self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))
            st.requests += 1
            try:
                r = self.session.get(target, headers={"Range": f"bytes={start}-{end}"}, timeout=self.timeout_s)
            except (self._requests.ConnectionError, self._requests.Timeout,
                    self._requests.exceptions.ChunkedEncodingError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            st.bytes_fetched += len(r.content)
            if r.status_code in self.RETRY_STATUS:
                last = f"HTTP {r.status_code}"
                continue
            if r.status_code == 200:  # the server ignored Range: it sent the whole file
                body = r.content
                total = len(body)
                data = body[start:end + 1]
            elif r.status_code == 206:
                data = r.content
                crange = r.headers.get("Content-Range", "")
                total = int(crange.rsplit("/", 1)[1]) if "/" in crange and not crange.endswith("*") else -1
                expect = (min(end, total - 1) if total > 0 else end) - start + 1
                if len(data) != expect:
                    last = f"short body: {len(data)} of {expect} bytes"
                    continue
            else:
                raise FetchError(f"{url}: HTTP {r.status_code} {r.reason}; check the asset href (and, for a signed "
                                 "catalogue such as Planetary Computer, that the planetary-computer extra is installed)")
            etag, modified = r.headers.get("ETag"), r.headers.get("Last-Modified")
            with self._lock:
                if st.etag and etag and st.etag != etag:
                    raise FetchError(f"{url} changed while it was read (ETag {st.etag} then {etag}); run again")
                st.etag = st.etag or etag
                st.last_modified = st.last_modified or modified
                if total > 0:
                    st.size = total
            return data, r.headers
        raise FetchError(f"{url}: bytes {start}-{end} could not be fetched after {self.retries + 1} attempts ({last}); "
                         "check the network and run again (completed dates are kept)")

    def size(self, url: str) -> int:
        st = self.stat(url)
        if st.size is None:
            self.read(url, 0, 1)
        if st.size is None:
            raise FetchError(f"{url}: the server gave no Content-Range total, so the file size is unknown; "
                             "it must answer HTTP range requests")
        return st.size

    def read(self, url: str, pos: int, n: int) -> bytes:
        """``n`` bytes of ``url`` from ``pos`` (fewer at the end), through the chunk cache."""
        if n <= 0:
            return b""
        cache = self._cache.setdefault(url, {})
        first, last = pos // self.chunk, (pos + n - 1) // self.chunk
        size = self.stats[url].size if url in self.stats else None
        if size is not None:
            last = min(last, (size - 1) // self.chunk)
        missing = [k for k in range(first, last + 1) if k not in cache]
        while missing:  # one request per run of consecutive missing chunks
            run = [missing.pop(0)]
            while missing and missing[0] == run[-1] + 1:
                run.append(missing.pop(0))
            data, _ = self._get(url, run[0] * self.chunk, (run[-1] + 1) * self.chunk - 1)
            for i, k in enumerate(run):
                cache[k] = data[i * self.chunk:(i + 1) * self.chunk]
        buf = b"".join(cache.get(k, b"") for k in range(first, last + 1))
        off = pos - first * self.chunk
        return buf[off:off + n]

    def forget(self, url: str) -> None:
        self._cache.pop(url, None)


class _RemoteFile(_pyio.RawIOBase):
    def __init__(self, http: Http, url: str) -> None:
        self.http, self.url, self.pos = http, url, 0
        self.size = http.size(url)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        data = self.http.read(self.url, self.pos, n)
        self.pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


class _Container(FileContainer):
    """rasterio's opener interface over :class:`Http`: GDAL reads a COG through our range reads.

    It answers only for URLs it was given (never raising), so GDAL's probes for side-car
    files find nothing.
    """

    def __init__(self, http: Http, url: str) -> None:
        self.http, self.url = http, url

    def open(self, path: str, mode: str = "rb", **kwds: Any) -> Any:
        return _RemoteFile(self.http, path)

    def isfile(self, path: str) -> bool:
        return path == self.url

    def isdir(self, path: str) -> bool:
        return False

    def ls(self, path: str) -> list[str]:
        return []

    def mtime(self, path: str) -> int:
        return 0

    def size(self, path: str) -> int:
        if path != self.url:
            return 0
        try:
            return self.http.size(path)
        except CampwatchError:
            return 0

    def rm(self, path: str) -> None:
        raise OSError("read-only")


@contextlib.contextmanager
def open_asset(http: Http, href: str) -> Iterator[rasterio.DatasetReader]:
    """Open a remote COG for windowed reads through :class:`Http` (no GDAL network access)."""
    if not href.lower().startswith(("http://", "https://")):
        raise FetchError(f"asset href {href!r}: only http(s) hrefs are fetched; give a STAC API whose assets are "
                         "served over HTTPS (Earth Search, Planetary Computer)")
    http.size(href)  # fail here, with the URL, rather than inside GDAL
    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), \
                rasterio.open(href, opener=_Container(http, href)) as ds:
            yield ds
    except RasterioError as exc:
        raise FetchError(f"{href}: cannot be read as a raster ({exc})") from exc


# --------------------------------------------------------------------------------------
# assets, grids and windows
# --------------------------------------------------------------------------------------
def find_asset(item: Mapping[str, Any], name: str, band_id: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """The asset of ``item`` holding band ``name``: keyed by the common name (Earth Search),
    by the band id (Planetary Computer: ``B02``, ``SCL``), or naming it in ``eo:bands``."""
    assets: Mapping[str, Any] = item.get("assets", {})
    for key in (name, name.upper(), band_id, band_id.lower() if band_id else None):
        if key and key in assets:
            return key, dict(assets[key])
    for key, a in assets.items():
        for b in a.get("eo:bands") or a.get("bands") or []:
            if name in (b.get("common_name"), b.get("name")) and "jp2" not in str(a.get("type", "")):
                return key, dict(a)
    return None


def aoi_window_grid(native: Grid, geometry: Any, margin_m: float) -> Grid:
    """The AOI's bounds plus ``margin_m``, on ``native``'s pixel lattice, not clipped to it."""
    left, bottom, right, top = geometry_bounds(geometry, native.crs)
    if native.is_geographic:
        lat = (bottom + top) / 2
        mx, my = margin_m / (111_320.0 * max(math.cos(math.radians(lat)), 1e-6)), margin_m / 110_574.0
    else:
        mx = my = margin_m
    win = native.window_of_bounds((left - mx, bottom - my, right + mx, top + my), clip=False)
    return native.window(win)


def _paste(ds: rasterio.DatasetReader, target: Grid, out: np.ndarray, fill: float) -> bool:
    """Read the part of ``target`` inside ``ds`` (same lattice) into ``out`` where ``out`` is
    still ``fill``; return False when ``ds`` is on another CRS or lattice."""
    native = Grid((ds.height, ds.width), ds.transform, ds.crs)
    win = lattice_window(native, target)
    if win is None:
        return False
    r0, c0 = int(win.row_off), int(win.col_off)
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + target.height, native.height), min(c0 + target.width, native.width)
    if rr1 <= rr0 or cc1 <= cc0:
        return True
    data = ds.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
    sub = out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0]
    empty = sub == fill
    sub[empty] = data[empty]
    return True


def read_mosaic(http: Http, hrefs: Sequence[str], geometry: Any, margin_m: float,
                notes: list[str]) -> tuple[np.ndarray, Grid, float]:
    """The AOI window of one band, mosaicked from the tiles ``hrefs`` (first tile first).

    Returns (array, grid on the first tile's lattice, nodata).  A tile on another CRS
    or lattice is left out, with a note.
    """
    with open_asset(http, hrefs[0]) as ds:
        native = Grid((ds.height, ds.width), ds.transform, ds.crs)
        target = aoi_window_grid(native, geometry, margin_m)
        nodata = float(ds.nodata) if ds.nodata is not None else 0.0
        out = np.full(target.shape, nodata, dtype=ds.dtypes[0])
        _paste(ds, target, out, nodata)
    for href in hrefs[1:]:
        if not (out == nodata).any():
            break
        with open_asset(http, href) as ds:
            if not _paste(ds, target, out, nodata):
                notes.append(f"{href}: on another CRS or pixel lattice ({ds.crs}) than the first tile, so it was "
                             "not mosaicked (campwatch does not resample fetched pixels)")
    return out, target, nodata


def screen(cand: Candidate, spec: CollectionSpec, http: Http, geometry: Any) -> None:
    """Set the candidate's AOI cloud and no-data fractions from its mask asset (AOI window only)."""
    hrefs = []
    for it in cand.items:
        hit = find_asset(it, spec.mask, spec.band_ids(cand.platform).get(spec.mask))
        if hit:
            hrefs.append(hit[1]["href"])
    if len(hrefs) < len(cand.items):
        return
    notes: list[str] = []
    mask, grid, _ = read_mosaic(http, hrefs, geometry, 0.0, notes)
    inside = masks.aoi_mask(geometry, grid)
    n = int(inside.sum())
    if n == 0:
        cand.aoi_nodata, cand.aoi_cloud = 1.0, None
        return
    nodata, unusable = spec.quality(mask[inside])
    cand.aoi_nodata = float(nodata.mean())
    with_data = int((~nodata).sum())
    cand.aoi_cloud = float(unusable[~nodata].sum() / with_data) if with_data else 1.0


# --------------------------------------------------------------------------------------
# reflectance scaling
# --------------------------------------------------------------------------------------
def reflectance_scaling(item: Mapping[str, Any], asset: Mapping[str, Any], blue_dn: np.ndarray | None
                        ) -> tuple[float, float, str]:
    """(scale, offset, why): reflectance = DN * scale + offset, for one asset.

    Landsat Collection 2 Level-2 takes its ``raster:bands`` as they are (2.75e-5, -0.2).

    From processing baseline 04.00 (2022-01-25) L2A pixels carry +1000 DN.  Earth Search
    removes it from most such COGs and says so in ``earthsearch:boa_offset_applied``; its
    ``raster:bands`` offset (-0.1) is the same either way, and the flag is known to be wrong
    on some items (Element84/earth-search#66, #71).  So the rule is: offset -0.1 when the
    baseline is >= 04.00 and the flag is not true, else 0; and the pixels overrule it: when
    1 % or more of the valid blue DNs in the window are below 1000, the +1000 cannot be in
    them (it would make them negative reflectance), and the offset is 0.
    """
    props = item.get("properties", {})
    rb = (asset.get("raster:bands") or [{}])[0]
    if str(props.get("platform", "")).startswith("landsat"):
        scale, offset = float(rb.get("scale") or 2.75e-5), float(rb.get("offset", -0.2))
        return scale, offset, f"Landsat Collection 2 Level-2 raster:bands: DN * {scale:g} + {offset:g}"
    scale = float(rb.get("scale") or 1e-4)
    try:
        baseline = float(props.get("s2:processing_baseline") or 0)
    except (TypeError, ValueError):
        baseline = 0.0
    applied = props.get("earthsearch:boa_offset_applied") is True
    if baseline < 4.0:
        return scale, 0.0, f"processing baseline {baseline:05.2f} < 04.00: no BOA offset"
    if applied:
        return scale, 0.0, "earthsearch:boa_offset_applied is true: the pixels are harmonised"
    if blue_dn is not None and blue_dn.size and float(np.mean(blue_dn < 1000)) >= 0.01:
        return scale, 0.0, (f"baseline {baseline:05.2f} without earthsearch:boa_offset_applied, but "
                            f"{np.mean(blue_dn < 1000):.0%} of the blue DNs are < 1000, so the offset is "
                            "already removed (Element84/earth-search#66)")
    return scale, -1000.0 * scale, f"baseline {baseline:05.2f}: BOA offset -1000 DN (reflectance offset {-1000.0 * scale:g})"


# --------------------------------------------------------------------------------------
# search
# --------------------------------------------------------------------------------------
def _signer(stac_url: str) -> tuple[Any, Callable[[str], str] | None]:
    if "planetarycomputer" not in stac_url:
        return None, None
    try:
        import planetary_computer
    except ImportError:
        raise MissingDependencyError("Planetary Computer assets must be signed: pip install 'campwatch[planetary]'") from None
    return planetary_computer.sign_inplace, planetary_computer.sign


def search(geometry: Any, *, start: dt.date, end: dt.date, collection: str, stac_url: str,
           timeout_s: float = 60.0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """STAC items of ``collection`` meeting ``geometry`` in [start, end], and a record of the query.

    The API is asked by bbox, datetime and collection only (the STAC API core); the test
    against the AOI's footprint runs here.
    """
    import pystac_client
    from shapely.geometry import box, shape

    modifier, _ = _signer(stac_url)
    bbox = tuple(float(v) for v in geometry.bounds)
    dates = f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z"
    try:
        from pystac_client.stac_api_io import StacApiIO
        from urllib3.util.retry import Retry

        api_io = StacApiIO(timeout=timeout_s, max_retries=Retry(total=5, backoff_factor=0.5,
                                                                status_forcelist=[429, 500, 502, 503, 504],
                                                                allowed_methods=None))
        client = pystac_client.Client.open(stac_url, modifier=modifier, stac_io=api_io)
        found = client.search(collections=[collection], bbox=bbox, datetime=dates, limit=100)
        raw = list(found.items_as_dicts())
    except pystac_client.exceptions.APIError as exc:
        raise FetchError(f"STAC search at {stac_url} failed: {exc}; fetching needs network access to the STAC API "
                         "(check --stac-url and the connection)") from exc
    except Exception as exc:
        if isinstance(exc, CampwatchError):
            raise
        raise FetchError(f"STAC search at {stac_url} failed ({type(exc).__name__}: {exc}); check --stac-url and "
                         "the network") from exc
    kept = []
    for it in raw:
        if it.get("collection") not in (None, collection):
            continue
        geom = shape(it["geometry"]) if it.get("geometry") else box(*it["bbox"])
        if not geom.intersects(geometry):
            continue
        kept.append(it)
    query = {"stac_url": stac_url, "collections": [collection], "bbox": list(bbox), "datetime": dates,
             "client_filters": {"intersects": "AOI geometry"}, "items_returned": len(raw), "items_kept": len(kept)}
    return kept, query


# --------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_band(path: Path, arr: np.ndarray, grid: Grid, nodata: float, tags: Mapping[str, str],
                scale: float = 1.0, offset: float = 0.0, description: str | None = None) -> None:
    profile = tiff_profile(grid, count=1, dtype=arr.dtype.name, nodata=nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr, 1)
        dst.update_tags(**{k: str(v) for k, v in tags.items()})
        if scale != 1.0 or offset != 0.0:
            dst.scales, dst.offsets = (scale,), (offset,)
        if description:
            dst.set_band_description(1, description)


def download(cand: Candidate, spec: CollectionSpec, http: Http, geometry: Any, outdir: Path, *,
             bands: Sequence[str], margin_m: float) -> dict[str, Any]:
    """Write one chosen acquisition into ``outdir/<date>_<id>/`` atomically; return its record."""
    t0 = time.perf_counter()
    final = outdir / cand.folder
    notes: list[str] = []
    record: dict[str, Any] = {"folder": cand.folder, "date": cand.date.isoformat(), "platform": cand.platform,
                              "items": [it["id"] for it in cand.items], "assets": [], "files": [], "notes": notes}
    first = cand.items[0]
    datetime_text = str(first.get("properties", {}).get("datetime"))
    with io.atomic_dir(final, kind="fetch") as tmp:
        blue: np.ndarray | None = None
        arrays: list[tuple[str, str, np.ndarray, Grid, float, dict[str, Any]]] = []
        ids = spec.band_ids(cand.platform)
        jobs: list[tuple[str, str, list[tuple[str, dict[str, Any]]]]] = []
        for name in [*bands, spec.mask]:
            band_id = ids[name]
            found = [find_asset(it, spec.aliases.get(name, name), band_id) for it in cand.items]
            if any(h is None for h in found):
                missing = [it["id"] for it, h in zip(cand.items, found, strict=True) if h is None]
                if name == spec.mask:
                    notes.append(f"no {spec.mask} asset in {', '.join(missing)}: no cloud mask was fetched")
                    continue
                raise FetchError(f"item {missing[0]} has no asset for band {name} ({band_id}); its assets are "
                                 f"{', '.join(sorted(cand.items[0].get('assets', {})))}")
            jobs.append((name, band_id, [h for h in found if h]))

        def read(job: tuple[str, str, list[tuple[str, dict[str, Any]]]]) -> tuple[np.ndarray, Grid, float, list[str]]:
            job_notes: list[str] = []
            arr, grid, nodata = read_mosaic(http, [a["href"] for _, a in job[2]], geometry, margin_m, job_notes)
            return arr, grid, nodata, job_notes

        # the bands' range requests overlap in time: on a distant server a date costs its slowest band, not their sum
        with ThreadPoolExecutor(max_workers=min(PARALLEL_READS, len(jobs) or 1)) as pool:
            results = list(pool.map(read, jobs))
        for (name, band_id, hits), (arr, grid, nodata, job_notes) in zip(jobs, results, strict=True):
            notes.extend(job_notes)
            if name == "blue":
                blue = arr[arr != nodata]
            arrays.append((name, band_id, arr, grid, nodata, hits[0][1]))
            for (key, asset), it in zip(hits, cand.items, strict=True):
                st = http.stat(asset["href"])
                record["assets"].append({"item": it["id"], "asset": key, "band": name, **dataclasses.asdict(st)})
        for name, band_id, arr, grid, nodata, asset in arrays:
            tags = {"ACQUISITION_DATETIME": datetime_text, "STAC_ITEM": first["id"],
                    "STAC_ASSET_HREF": asset.get("href", ""), "CAMPWATCH_FETCH": __version__}
            fname = spec.file_name(first["id"], band_id)
            if name == spec.mask:
                _write_band(tmp / fname, arr, grid, nodata, tags, description=band_id)
            else:
                scale, offset, why = reflectance_scaling(first, asset, blue if spec.mask == "scl" else None)
                record.setdefault("reflectance", {"scale": scale, "offset": offset, "rule": why})
                _write_band(tmp / fname, arr, grid, nodata, tags, scale, offset, description=name)
        for it in cand.items:
            (tmp / f"{it['id']}.json").write_text(json.dumps(it, indent=1), encoding="utf-8")
        for p in sorted(tmp.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                record["files"].append({"name": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)})
        record["bytes_fetched"] = sum(a["bytes_fetched"] for a in record["assets"])
        record["asset_bytes"] = sum(a["size"] or 0 for a in record["assets"])
        record["seconds"] = round(time.perf_counter() - t0, 3)
        record["candidate"] = cand.describe()
        (tmp / DATE_RECORD).write_text(io.to_json(record), encoding="utf-8")
    for h in {a["href"] for a in record["assets"]}:
        http.forget(h)
    return record


# --------------------------------------------------------------------------------------
# the tool
# --------------------------------------------------------------------------------------
@dataclass
class FetchResult:
    """What :func:`fetch` found, chose and wrote."""

    outdir: Path | None
    candidates: list[Candidate]
    records: list[dict[str, Any]]
    manifest: dict[str, Any]

    @property
    def folders(self) -> list[Path]:
        return [self.outdir / r["folder"] for r in self.records] if self.outdir else []


def _geometry(aoi: Any) -> tuple[Any, dict[str, Any]]:
    a = aoi if isinstance(aoi, AOI) else resolve_aoi(str(aoi))
    return a.geometry, {"id": a.id, "name": a.name, "source": a.source_path,
                        "geometry_quality": a.geometry_quality, "bounds_lonlat": list(a.geometry.bounds)}


def _check_outdir(outdir: Path) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise OutputExistsError(f"{outdir} is a file; give -o a folder for the fetched dates")
    if outdir.is_dir() and any(p for p in outdir.iterdir() if not p.name.startswith(".")) \
            and not (outdir / MANIFEST).is_file():
        raise OutputExistsError(f"{outdir} holds files but no {MANIFEST}, so it is not a campwatch fetch folder; "
                                "give a new or empty folder (campwatch resumes only its own fetches)")


def fetch(aoi: Any, *, start: str | dt.date, end: str | dt.date, outdir: str | os.PathLike[str] | None,
          collection: str = "sentinel-2-l2a", stac_url: str = DEFAULT_STAC_URL, max_cloud_pct: float = 20.0,
          max_tile_cloud_pct: float = 90.0, per: Per = "month", months: str | Sequence[int] | None = None,
          bands: Sequence[str] | None = None, margin_m: float = 200.0, dry_run: bool = False,
          http: Http | None = None, progress: Callable[[str, int, int], None] | None = None) -> FetchResult:
    """Search, screen, choose and download the imagery of ``aoi`` (see the module docstring).

    ``max_cloud_pct`` is the largest cloud cover over the AOI (percent) a kept scene may have;
    ``max_tile_cloud_pct`` is the pre-filter on the tile-wide ``eo:cloud_cover`` (percent).
    With ``dry_run`` nothing is written: the candidates carry their reasons.
    A rerun into the same ``outdir`` skips the dates already there.
    """
    if collection not in COLLECTIONS:
        raise InvalidParameterError(f"collection {collection!r} is not supported by campwatch fetch yet; use "
                         f"{', '.join(sorted(COLLECTIONS))}")
    spec = COLLECTIONS[collection]
    d0 = start if isinstance(start, dt.date) else dt.date.fromisoformat(str(start))
    d1 = end if isinstance(end, dt.date) else dt.date.fromisoformat(str(end))
    if d1 < d0:
        raise InvalidParameterError(f"--end {d1} is before --start {d0}; give the earlier date as --start")
    for opt, v in (("--max-cloud", max_cloud_pct), ("--max-tile-cloud", max_tile_cloud_pct)):
        if not 0.0 <= v <= 100.0:
            raise InvalidParameterError(f"{opt} {v}: give a percentage between 0 and 100")
    month_set = parse_months(months) if isinstance(months, str) or months is None else tuple(months)
    wanted = list(bands or spec.default_bands)
    names = [b for b in spec.band_ids("") if b != spec.mask]
    unknown = [b for b in wanted if b not in names]
    if unknown:
        raise InvalidParameterError(f"--bands {', '.join(unknown)}: {collection} has {', '.join(names)}")
    geometry, aoi_rec = _geometry(aoi)
    out = Path(outdir) if outdir is not None else None
    if out is not None and not dry_run:
        _check_outdir(out)
    items, query = search(geometry, start=d0, end=d1, collection=collection, stac_url=stac_url)
    if http is None:
        http = Http(sign=_signer(stac_url)[1])
    cands = group_items(items)
    done = {p.name for p in out.iterdir() if (p / DATE_RECORD).is_file()} if out is not None and out.is_dir() else set()
    to_screen = []
    for c in cands:
        if month_set and c.date.month not in month_set:
            c.status, c.reason = "dropped", f"month {c.date.month} outside --months {months}"
        elif c.tile_cloud is not None and c.tile_cloud > max_tile_cloud_pct:
            c.status, c.reason = "dropped", (f"tile-wide eo:cloud_cover {c.tile_cloud:g}% > --max-tile-cloud "
                                             f"{max_tile_cloud_pct:g}% (pre-filter; the AOI was not read)")
        elif c.folder in done:
            rec = json.loads((out / c.folder / DATE_RECORD).read_text(encoding="utf-8"))  # type: ignore[operator]
            c.aoi_cloud = rec["candidate"]["aoi_cloud_fraction"]
            c.aoi_nodata = rec["candidate"]["aoi_nodata_fraction"]
        else:
            to_screen.append(c)
    with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:  # each candidate's mask window, several at once
        for i, done_one in enumerate(as_completed([pool.submit(screen, c, spec, http, geometry) for c in to_screen])):
            done_one.result()
            if progress:
                progress("screen", i + 1, len(to_screen))
    choose(cands, per=per, max_cloud_pct=max_cloud_pct)
    manifest: dict[str, Any] = {
        "campwatch_version": __version__, "written_by": "campwatch fetch",
        "query": {**query, "aoi": aoi_rec, "start": d0.isoformat(), "end": d1.isoformat(), "max_cloud_pct": max_cloud_pct,
                  "max_tile_cloud_pct": max_tile_cloud_pct, "per": per, "months": list(month_set or []),
                  "bands": wanted, "mask": spec.mask, "margin_m": margin_m},
        "candidates": [c.describe() for c in cands],
    }
    records: list[dict[str, Any]] = []
    if dry_run or out is None:
        return FetchResult(None, cands, records, manifest)
    out.mkdir(parents=True, exist_ok=True)
    kept = [c for c in cands if c.status == "kept"]

    def write_manifest(complete: bool) -> None:
        fetched = sum(s.bytes_fetched for s in http.stats.values())
        full = sum(s.size or 0 for s in http.stats.values())
        manifest["complete"] = complete
        manifest["dates"] = records
        manifest["totals"] = {"dates": len(records), "resumed": sum(bool(r.get("resumed")) for r in records),
                              "requests_this_run": sum(s.requests for s in http.stats.values()),
                              "retries_this_run": sum(s.retries for s in http.stats.values()),
                              "bytes_fetched_this_run": fetched, "asset_bytes_touched_this_run": full,
                              "fraction_of_asset_bytes": round(fetched / full, 5) if full else None}
        with io.atomic_path(out / MANIFEST, overwrite=True) as tmp:
            tmp.write_text(io.to_json(manifest), encoding="utf-8")

    with io.output_lock(out):
        write_manifest(False)  # first, so that a killed run's folder is still known as a fetch folder
        for i, c in enumerate(kept):
            if progress:
                progress("download", i + 1, len(kept))
            if c.folder in done:
                rec = json.loads((out / c.folder / DATE_RECORD).read_text(encoding="utf-8"))
                rec["resumed"] = True
            else:
                rec = download(c, spec, http, geometry, out, bands=wanted, margin_m=margin_m)
            records.append(rec)
            write_manifest(False)
        write_manifest(True)
    return FetchResult(out, cands, records, manifest)
