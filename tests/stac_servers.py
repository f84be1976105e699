"""Real servers for the fetch tests, on 127.0.0.1: a STAC API (``rustac serve``) and a
range-capable HTTP server (werkzeug) holding COGs made from real pixels in ``../shared/data``.

- The items copy the shape of real Earth Search v1 ``sentinel-2-l2a`` items: asset keys
  (``blue``, ``nir``, ``scl`` ...), ``eo:bands``, ``raster:bands``, ``proj:*``, ``s2:*`` and
  ``earthsearch:*`` properties.  Their ids follow Earth Search's pattern; they are test
  fixtures, not catalogue entries.
- **Slovenia** (5 dates, 2 fully cloudy): the eo-learn patch, DN = reflectance * 10000, with
  an SCL band at 20 m made from each date's cloud mask (9 = cloud high probability, 4 = clear).
- **Las Vegas** (OSCD, 2 dates): the 10 m bands; the first date is cut into two overlapping
  tiles on one lattice, as two items of one acquisition, so an AOI across the seam needs both.
- The HTTP server answers Range requests, logs every request with the bytes it sent, and
  injects faults on request: a 503, or a body dropped half-way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping

SHARED = Path(os.environ.get("CAMPWATCH_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
SLOVENIA = SHARED / "s2-timeseries-slovenia"
LASVEGAS = SHARED / "oscd-unlabelled" / "lasvegas"
TAIZHOU = SHARED / "landsat-taizhou"
#: Landsat C2 L2 QA_PIXEL values for Landsat 4-7: clear (5440), fill (1: also SLC-off gaps)
QA_CLEAR, QA_FILL = 5440, 1

BANDS = {"blue": ("B02", "Blue (band 2)", 0.49, 0.098), "green": ("B03", "Green (band 3)", 0.56, 0.045),
         "red": ("B04", "Red (band 4)", 0.665, 0.038), "nir": ("B08", "NIR 1 (band 8)", 0.842, 0.145),
         "swir16": ("B11", "SWIR 1 (band 11)", 1.61, 0.143), "swir22": ("B12", "SWIR 2 (band 12)", 2.19, 0.242)}
SLOVENIA_INDEX = {"B02": 1, "B03": 2, "B04": 3, "B08": 7, "B11": 11, "B12": 12}  # 0-based bands of the patch


def _cog(path: Path, arr: np.ndarray, transform: Any, crs: Any, nodata: int = 0, blocksize: int = 128) -> None:
    profile = {"driver": "COG", "dtype": arr.dtype.name, "count": 1, "height": arr.shape[0], "width": arr.shape[1],
               "crs": crs, "transform": transform, "nodata": nodata, "compress": "deflate", "blocksize": blocksize}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr, 1)


def _asset(href: str, key: str, arr_shape: tuple[int, int], transform: Any, gsd: float) -> dict[str, Any]:
    if key == "scl":
        return {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "title": "Scene classification map (SCL)", "proj:shape": list(arr_shape),
                "proj:transform": list(transform)[:6],
                "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": gsd, "unit": "1"}],
                "roles": ["data", "reflectance"]}
    _band_id, desc, cw, fwhm = BANDS[key]
    return {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": f"{desc} - {gsd:g}m",
            "eo:bands": [{"name": key, "common_name": key, "description": desc, "center_wavelength": cw,
                          "full_width_half_max": fwhm}],
            "gsd": gsd, "proj:shape": list(arr_shape), "proj:transform": list(transform)[:6],
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": gsd,
                              "scale": 0.0001, "offset": -0.1}],
            "roles": ["data", "reflectance"]}


def _item(item_id: str, datetime: str, tile: str, epsg: int, footprint: Any, cloud: float,
          assets: dict[str, Any], platform: str = "sentinel-2a") -> dict[str, Any]:
    zone, band, square = tile[:2], tile[2], tile[3:]
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": "sentinel-2-l2a",
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
        "bbox": list(footprint.bounds), "geometry": mapping(footprint),
        "properties": {
            "created": "2023-06-28T15:42:10.537Z", "platform": platform, "constellation": "sentinel-2",
            "instruments": ["msi"], "eo:cloud_cover": cloud, "proj:epsg": epsg, "mgrs:utm_zone": int(zone),
            "mgrs:latitude_band": band, "mgrs:grid_square": square, "grid:code": f"MGRS-{tile}",
            "s2:processing_baseline": "02.01", "s2:product_type": "S2MSI2A", "datetime": datetime,
            "s2:sequence": "0", "earthsearch:boa_offset_applied": False,
            "updated": "2023-06-28T15:42:10.537Z"},
        "links": [], "assets": assets,
    }


def _footprint(transform: Any, shape: tuple[int, int], crs: Any) -> Any:
    left, top = transform.c, transform.f
    right, bottom = left + transform.a * shape[1], top + transform.e * shape[0]
    geom = transform_geom(crs, "EPSG:4326", mapping(box(left, bottom, right, top)))
    from shapely.geometry import shape as to_shape

    return to_shape(geom)


def build(root: Path, base_url: str) -> dict[str, Any]:
    """Write the COGs under ``root/assets`` and the items under ``root/stac``; return what was made."""
    assets_dir, stac_dir = root / "assets", root / "stac"
    assets_dir.mkdir(parents=True, exist_ok=True)
    stac_dir.mkdir(parents=True, exist_ok=True)
    items: list[dict[str, Any]] = []
    scenes = json.loads((SLOVENIA / "scenes.json").read_text())
    for sc in scenes:
        date = sc["date"].replace("-", "")
        item_id = f"S2A_33TVL_{date}_0_L2A"
        d = assets_dir / item_id
        d.mkdir(exist_ok=True)
        with rasterio.open(SLOVENIA / sc["image"]) as ds:
            refl, transform, crs = ds.read(), ds.transform, ds.crs
        with rasterio.open(SLOVENIA / sc["cloud_mask"]) as ds:
            cloud = ds.read(1) > 0
        assets = {}
        for key, (band, *_rest) in BANDS.items():
            dn = np.clip(np.round(refl[SLOVENIA_INDEX[band]] * 10000), 1, 65535).astype(np.uint16)
            _cog(d / f"{band}.tif", dn, transform, crs)
            assets[key] = _asset(f"{base_url}/{item_id}/{band}.tif", key, dn.shape, transform, 10)
        # SCL at 20 m, as in the product: a 2x2 block is cloud when any of its pixels is
        rows, cols = (cloud.shape[0] + 1) // 2, (cloud.shape[1] + 1) // 2
        pad = np.zeros((rows * 2, cols * 2), bool)
        pad[:cloud.shape[0], :cloud.shape[1]] = cloud
        scl = np.where(pad.reshape(rows, 2, cols, 2).any(axis=(1, 3)), 9, 4).astype(np.uint8)
        t20 = transform * rasterio.Affine.scale(2)
        _cog(d / "SCL.tif", scl, t20, crs)
        assets["scl"] = _asset(f"{base_url}/{item_id}/SCL.tif", "scl", scl.shape, t20, 20)
        items.append(_item(item_id, sc["datetime"] + ".000000Z", "33TVL", 32633,
                           _footprint(transform, refl.shape[1:], crs), round(100 * float(cloud.mean()), 4), assets))
    # Las Vegas: date 1 as two overlapping tiles of one acquisition, date 2 as one tile
    dates = dict(line.split(": ") for line in (LASVEGAS / "dates.txt").read_text().split("\n") if ": " in line)
    tiles = {"imgs_1": [("11SPA", slice(0, 450)), ("11SQA", slice(380, None))], "imgs_2": [("11SPA", slice(None))]}
    for folder, cuts in tiles.items():
        ymd = dates["date_1" if folder == "imgs_1" else "date_2"].strip()
        for tile, cols in cuts:
            item_id = f"S2A_{tile}_{ymd}_0_L2A"
            d = assets_dir / item_id
            d.mkdir(exist_ok=True)
            assets = {}
            for key in ("blue", "green", "red", "nir"):
                band = BANDS[key][0]
                src = next((LASVEGAS / folder).glob(f"*_{band}.tif"))
                with rasterio.open(src) as ds:
                    arr, transform, crs = ds.read(1), ds.transform, ds.crs
                c0 = cols.start or 0
                arr = np.ascontiguousarray(arr[:, cols])
                t = transform * rasterio.Affine.translation(c0, 0)
                # 128 px blocks (the COG driver's smallest) on a 716 px tile; Earth Search has 1024 px on 10980 px
                _cog(d / f"{band}.tif", arr, t, crs, blocksize=128)
                assets[key] = _asset(f"{base_url}/{item_id}/{band}.tif", key, arr.shape, t, 10)
            items.append(_item(item_id, f"{ymd[:4]}-{ymd[4:6]}-{ymd[6:]}T18:30:00.000000Z", tile, 4326,
                               _footprint(t, arr.shape, crs), 1.0, assets))
    items += _landsat_items(assets_dir, base_url)
    (stac_dir / "landsat.json").write_text(json.dumps({
        "type": "Collection", "stac_version": "1.0.0", "id": "landsat-c2-l2", "title": "Landsat Collection 2 Level-2",
        "description": "test copy of Earth Search's landsat-c2-l2, real pixels from ../shared/data",
        "license": "proprietary", "links": [],
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                   "temporal": {"interval": [["1982-08-22T00:00:00Z", None]]}}}))
    collection = {
        "type": "Collection", "stac_version": "1.0.0", "id": "sentinel-2-l2a", "title": "Sentinel-2 Level-2A",
        "description": "test copy of Earth Search's sentinel-2-l2a, real pixels from ../shared/data",
        "license": "proprietary", "links": [],
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                   "temporal": {"interval": [["2015-06-27T10:25:31.456000Z", None]]}},
    }
    (stac_dir / "collection.json").write_text(json.dumps(collection))
    (stac_dir / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return {"items": {it["id"]: it for it in items}, "assets": assets_dir, "stac": stac_dir}


def slc_off_gaps(shape: tuple[int, int]) -> np.ndarray:
    """Diagonal stripes 3 px wide every 14 px, like Landsat 7's SLC-off gaps (for the QA fill bit)."""
    r, c = np.indices(shape)
    return ((r + c // 4) % 14) < 3


def _landsat_items(assets_dir: Path, base_url: str) -> list[dict[str, Any]]:
    """Taizhou's two Landsat 7 ETM+ dates as Collection 2 Level-2 items.

    The 8-bit values v become DN = 100 v + 7273, so that DN * 2.75e-5 - 0.2 = 0.00275 v: the
    pixels are Taizhou's, carried in C2 L2's encoding.  The 2003 date gets SLC-off-like gaps
    (QA fill bit, DN 0), as Landsat 7 has after 2003-05-31, to test that they become nodata.
    """
    items = []
    keys = ("blue", "green", "red", "nir08", "swir16", "swir22")
    ids = ("SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7")
    for date in ("2000-03-17", "2003-02-06"):
        item_id = f"LE07_L2SP_118038_{date.replace('-', '')}_02_T1"
        d = assets_dir / item_id
        d.mkdir(exist_ok=True)
        with rasterio.open(TAIZHOU / f"taizhou_{date}.tif") as ds:
            v, transform, crs = ds.read(), ds.transform, ds.crs
        gaps = slc_off_gaps(v.shape[1:]) if date.startswith("2003") else np.zeros(v.shape[1:], bool)
        assets = {}
        for i, (key, band) in enumerate(zip(keys, ids, strict=True)):
            dn = np.where(gaps, 0, v[i].astype(np.uint16) * 100 + 7273).astype(np.uint16)
            _cog(d / f"{item_id}_{band}.tif", dn, transform, crs, blocksize=128)
            assets[key] = {"href": f"{base_url}/{item_id}/{item_id}_{band}.tif",
                           "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                           "title": f"{key} ({band})", "eo:bands": [{"name": band, "common_name": key}],
                           "proj:shape": list(dn.shape), "proj:transform": list(transform)[:6],
                           "raster:bands": [{"nodata": 0, "data_type": "uint16", "spatial_resolution": 30,
                                             "scale": 2.75e-05, "offset": -0.2}], "roles": ["data"]}
        qa = np.where(gaps, QA_FILL, QA_CLEAR).astype(np.uint16)
        _cog(d / f"{item_id}_QA_PIXEL.tif", qa, transform, crs, nodata=1, blocksize=128)
        assets["qa_pixel"] = {"href": f"{base_url}/{item_id}/{item_id}_QA_PIXEL.tif",
                              "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                              "title": "Pixel Quality Assessment Band (QA_PIXEL)", "proj:shape": list(qa.shape),
                              "proj:transform": list(transform)[:6],
                              "raster:bands": [{"nodata": 1, "data_type": "uint16", "spatial_resolution": 30,
                                                "unit": "bit index"}], "roles": ["cloud", "cloud-shadow", "snow-ice"]}
        fp = _footprint(transform, v.shape[1:], crs)
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": "landsat-c2-l2",
            "bbox": list(fp.bounds), "geometry": mapping(fp), "links": [], "assets": assets,
            "properties": {"datetime": f"{date}T02:20:00.000000Z", "platform": "landsat-7", "instruments": ["etm+"],
                           "eo:cloud_cover": 0.0, "proj:epsg": 32651, "landsat:wrs_path": "118",
                           "landsat:wrs_row": "038", "landsat:collection_category": "T1",
                           "landsat:correction": "L2SP"}})
    return items


def taizhou_aoi() -> Any:
    with rasterio.open(TAIZHOU / "taizhou_2000-03-17.tif") as ds:
        left, bottom = ds.bounds.left, ds.bounds.bottom
        crs = ds.crs
    from shapely.geometry import shape as to_shape

    inner = box(left + 3000, bottom + 3000, left + 6000, bottom + 6000)
    return to_shape(transform_geom(crs, "EPSG:4326", mapping(inner)))


def lasvegas_seam_aoi(root: Path) -> Any:
    """A ~600 x 500 m AOI across the seam of the two Las Vegas tiles (column 450 of date 1)."""
    src = next((LASVEGAS / "imgs_1").glob("*_B02.tif"))
    with rasterio.open(src) as ds:
        t = ds.transform
    x0, y0 = t * (420, 400)
    x1, y1 = t * (480, 450)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def slovenia_aoi() -> Any:
    with rasterio.open(SLOVENIA / "slovenia_2015-07-11.tif") as ds:
        left, bottom, right, top = ds.bounds
        crs = ds.crs
    inner = box(left + 150, bottom + 150, right - 150, top - 150)
    from shapely.geometry import shape as to_shape

    return to_shape(transform_geom(crs, "EPSG:4326", mapping(inner)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RangeServer:
    """werkzeug serving ``root`` on 127.0.0.1 with Range support, a request log and faults.

    ``faults[path]`` is a list consumed one per request to that path: ``503`` answers
    "Service Unavailable"; ``"drop"`` sends the headers and half the body, then closes.
    """

    def __init__(self, root: Path, port: int) -> None:
        from werkzeug.serving import make_server
        from werkzeug.utils import send_file
        from werkzeug.wrappers import Request, Response

        self.root, self.port = root, port
        self.faults: dict[str, list[Any]] = {}
        self.log: list[tuple[str, str | None, int, int]] = []
        self.delay_s = 0.0
        self._lock = threading.Lock()

        @Request.application
        def app(req: Any) -> Any:
            if self.delay_s:
                time.sleep(self.delay_s)
            path = req.path
            with self._lock:
                fault = self.faults[path].pop(0) if self.faults.get(path) else None
            rng = req.headers.get("Range")
            if fault == 503:
                self.log.append((path, rng, 503, 0))
                return Response("busy", status=503)
            f = (root / path.lstrip("/")).resolve()
            if root.resolve() not in f.parents or not f.is_file():
                self.log.append((path, rng, 404, 0))
                return Response("not found", status=404)
            if fault == "drop":  # the right status and headers, then half the body, then the connection closes
                size = f.stat().st_size
                r = req.range.range_for_length(size) if req.range else (0, size)
                start, stop = r if r else (0, size)
                with open(f, "rb") as fh:
                    fh.seek(start)
                    body = fh.read(stop - start)
                half = body[: len(body) // 2]

                def broken() -> Any:
                    yield half
                    raise ConnectionAbortedError("test: connection dropped mid-body")

                headers = {"Content-Length": str(len(body)), "Content-Range": f"bytes {start}-{stop - 1}/{size}"}
                self.log.append((path, rng, 206, len(half)))
                return Response(broken(), status=206, headers=headers)
            resp = send_file(f, req.environ, conditional=True, etag=True)
            sent = int(resp.headers.get("Content-Length", 0))
            self.log.append((path, rng, resp.status_code, sent))
            return resp

        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bytes_sent(self, path_part: str) -> int:
        return sum(n for p, _, _, n in self.log if path_part in p)

    def close(self) -> None:
        self.server.shutdown()


class StacServer:
    """``rustac serve`` (an in-memory STAC API) on 127.0.0.1, loaded with the test items."""

    def __init__(self, stac_dir: Path, port: int) -> None:
        exe = shutil.which("rustac", path=str(Path(sys.executable).parent)) or shutil.which("rustac")
        if exe is None:
            raise RuntimeError("rustac is not installed; `make test` installs it (the dev extra)")
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([exe, "serve", str(stac_dir / "collection.json"), str(stac_dir / "landsat.json"),
                                      str(stac_dir / "items.json"),
                                      "--addr", f"127.0.0.1:{port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/collections/sentinel-2-l2a/items?limit=1", timeout=2) as r:
                    if json.load(r).get("features"):
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.close()
                raise RuntimeError(f"rustac serve did not start: {err[-2000:]}")
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stderr:
            self.proc.stderr.close()


