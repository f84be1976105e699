"""Bytes and seconds per date of ``campwatch fetch``, against the test servers on 127.0.0.1.

Starts the same real servers as ``tests/test_fetch.py`` (rustac serve, a werkzeug range
server holding COGs made from ``../shared/data``) and fetches:

- a camp-sized AOI, 2 x 2 km (the catalogue's default box for a camp without a published
  size), on the Las Vegas tiles (4 bands at 10 m, 2 dates, one of them two tiles);
- the 1 km² Slovenia patch (4 bands + SCL, 3 of 5 dates kept).

Each is run with no added latency and with 30 ms per request (a rough stand-in for a
distant server: the time then follows the number of requests, printed too).

    .venv/bin/python benchmarks/fetch_local.py
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import rasterio
from shapely.geometry import box

import stac_servers as S
from campwatch.aoi import AOI

F = importlib.import_module("campwatch.fetch")  # the module (campwatch.fetch is also the function)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = S.free_port()
        built = S.build(root / "srv", f"http://127.0.0.1:{port}")
        http = S.RangeServer(built["assets"], port)
        stac = S.StacServer(built["stac"], S.free_port())
        try:
            with rasterio.open(built["assets"] / "S2A_11SPA_20180205_0_L2A" / "B02.tif") as ds:
                cx, cy = ds.transform * (ds.width / 2, ds.height / 2)
            dlon, dlat = 1000 / 87_000, 1000 / 111_000  # 2 km at 36 N
            cases = [("camp-sized 2 x 2 km, Las Vegas", AOI("lv-2km", "2 km", box(cx - dlon, cy - dlat, cx + dlon, cy + dlat)),
                      dict(start="2015-01-01", end="2018-12-31")),
                     ("Slovenia 1 km², with SCL", AOI("slovenia", "Slovenia", S.slovenia_aoi()),
                      dict(start="2015-07-01", end="2015-09-30", max_tile_cloud_pct=100))]
            print(f"{'case':34} {'latency':>8} {'date folder':44} {'requests':>8} {'kB fetched':>10} "
                  f"{'of kB':>8} {'share':>6} {'s':>6}")
            for delay in (0.0, 0.03):
                http.delay_s = delay
                for name, aoi, kw in cases:
                    out = root / f"out-{aoi.id}-{delay}"
                    t0 = time.perf_counter()
                    res = F.fetch(aoi, outdir=out, stac_url=stac.url, **kw)
                    total = time.perf_counter() - t0
                    for r in res.records:
                        reqs = sum(a["requests"] for a in r["assets"])
                        print(f"{name:34} {delay * 1000:6.0f}ms {r['folder']:44} {reqs:8d} {r['bytes_fetched'] / 1e3:10.1f} "
                              f"{r['asset_bytes'] / 1e3:8.0f} {r['bytes_fetched'] / r['asset_bytes']:6.1%} {r['seconds']:6.2f}")
                    t = res.manifest["totals"]
                    print(f"{'':34} {'':8} whole run (search + screening + download): {total:.2f} s, "
                          f"{t['requests_this_run']} requests, {t['bytes_fetched_this_run'] / 1e3:.1f} kB")
        finally:
            stac.close()
            http.close()


if __name__ == "__main__":
    main()
