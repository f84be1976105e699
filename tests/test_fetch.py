"""``campwatch fetch`` against real servers on 127.0.0.1: a STAC API (``rustac serve``) and a
range-capable HTTP server holding COGs made from real pixels of ``../shared/data``
(see ``tests/stac_servers.py``).  Nothing here touches the internet."""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from shapely.geometry import box, mapping

import stac_servers as S
from campwatch.aoi import AOI
from campwatch.io import open_source, read_scene

F = importlib.import_module("campwatch.fetch")  # the module (campwatch.fetch is also the function)

pytestmark = pytest.mark.shared
ROOT = Path(__file__).resolve().parents[1]
#: the Slovenia dates fetch keeps, one per month (07-31 and 08-20 are fully cloudy)
SLOVENIA_KEPT = ["2015-07-11_S2A_33TVL_20150711_0_L2A", "2015-08-30_S2A_33TVL_20150830_0_L2A",
                 "2015-09-09_S2A_33TVL_20150909_0_L2A"]


@pytest.fixture(scope="module")
def servers(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("stac")
    port = S.free_port()
    built = S.build(root, f"http://127.0.0.1:{port}")
    http = S.RangeServer(built["assets"], port)
    stac = S.StacServer(built["stac"], S.free_port())
    yield SimpleNamespace(http=http, stac=stac, url=stac.url, assets=built["assets"], items=built["items"])
    stac.close()
    http.close()


@pytest.fixture(autouse=True)
def _clean_faults(servers):
    servers.http.faults.clear()
    servers.http.delay_s = 0.0
    yield
    servers.http.faults.clear()
    servers.http.delay_s = 0.0


def _aoi_file(tmp_path: Path, geom, aoi_id: str) -> Path:
    p = tmp_path / f"{aoi_id}.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": aoi_id, "properties": {"id": aoi_id, "name": aoi_id}, "geometry": mapping(geom)}]}))
    return p


def _fast_http() -> F.Http:
    return F.Http(backoff_s=0.01, retries=3)


def test_cloudy_dates_are_dropped_with_their_reason(servers, tmp_path):
    aoi = AOI("slovenia", "Slovenia patch", S.slovenia_aoi())
    # the tile-wide pre-filter drops the two fully cloudy dates without reading them
    pre = F.fetch(aoi, start="2015-07-01", end="2015-09-30", outdir=None, stac_url=servers.url, dry_run=True)
    reasons = {c.date.isoformat(): (c.status, c.reason) for c in pre.candidates}
    assert len(reasons) == 5
    assert reasons["2015-07-31"][0] == reasons["2015-08-20"][0] == "dropped"
    assert "tile-wide eo:cloud_cover 100%" in reasons["2015-07-31"][1]
    # without it, the SCL over the AOI decides: 100 % cloud, from the cloud masks
    res = F.fetch(aoi, start="2015-07-01", end="2015-09-30", outdir=tmp_path / "out", stac_url=servers.url,
                  max_tile_cloud_pct=100, dry_run=True)
    by_date = {c.date.isoformat(): c for c in res.candidates}
    for d in ("2015-07-31", "2015-08-20"):
        assert by_date[d].status == "dropped" and by_date[d].aoi_cloud == 1.0
        assert by_date[d].reason == "cloud over the AOI 100% > --max-cloud 20%"
    assert [d for d, c in by_date.items() if c.status == "kept"] == ["2015-07-11", "2015-08-30", "2015-09-09"]
    assert by_date["2015-07-11"].aoi_cloud == 0.0
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    # one per season: the clear July date is kept over the cloudy one of the same period
    one = F.fetch(aoi, start="2015-07-01", end="2015-09-30", outdir=None, stac_url=servers.url, per="season",
                  max_tile_cloud_pct=100, dry_run=True)
    kept = [c for c in one.candidates if c.status == "kept"]
    assert [(c.period, c.date.isoformat()) for c in kept] == [("2015-JJA", "2015-07-11"), ("2015-SON", "2015-09-09")]
    assert "another scene already chosen for 2015-JJA" in {c.date.isoformat(): c for c in one.candidates}["2015-08-30"].reason


def test_tile_edge_mosaic_equals_a_direct_read_pixel_for_pixel(servers, tmp_path):
    seam = S.lasvegas_seam_aoi(tmp_path)
    res = F.fetch(AOI("lv", "Las Vegas seam", seam), start="2015-08-01", end="2015-08-31", outdir=tmp_path / "out",
                  stac_url=servers.url, http=_fast_http())
    (rec,) = res.records
    assert rec["items"] == ["S2A_11SPA_20150820_0_L2A", "S2A_11SQA_20150820_0_L2A"]
    folder = res.folders[0]
    src = S.LASVEGAS / "imgs_1"
    for band in ("B02", "B03", "B04", "B08"):
        with rasterio.open(folder / f"{band}.tif") as got:
            arr, bounds = got.read(1), got.bounds
        original = next(src.glob(f"*_{band}.tif"))
        with rasterio.open(original) as ds:
            win = ds.window(*bounds).round_offsets().round_lengths()
            want = ds.read(1, window=win, boundless=True, fill_value=0)
        assert arr.shape == want.shape
        np.testing.assert_array_equal(arr, want)  # both tiles were needed: the AOI spans the seam
        # and each tile's part equals a windowed read of that tile's COG
        tile = servers.assets / "S2A_11SQA_20150820_0_L2A" / f"{band}.tif"
        with rasterio.open(tile) as ds:
            inter = (max(bounds.left, ds.bounds.left), bounds.bottom, bounds.right, bounds.top)
            part = ds.read(1, window=ds.window(*inter).round_offsets().round_lengths())
        assert np.array_equal(arr[:, -part.shape[1]:], part)
    # the folder reads with no flags, on the tile's own grid, reflectance from the item's scaling
    src_scene = open_source(folder)
    assert src_scene.profile.scale == pytest.approx(1e-4) and src_scene.date.isoformat() == "2015-08-20"
    scene = read_scene(folder, aoi=seam)
    assert 0.0 < float(np.nanmedian(scene.data)) < 0.6


def test_a_small_aoi_fetches_under_a_tenth_of_the_asset(servers, tmp_path):
    # about 330 x 440 m, plus 100 m of margin: 53 x 64 px, inside one of the test COG's 128 px blocks (on a
    # 716 x 824 px asset a block is 1/30 of it; on Earth Search's 10980 px assets a 1024 px block is 1/115)
    with rasterio.open(servers.assets / "S2A_11SPA_20180205_0_L2A" / "B02.tif") as ds:
        cx, cy = ds.transform * (3.5 * 128, 4.5 * 128)
    small = box(cx - 0.002, cy - 0.002, cx + 0.002, cy + 0.002)
    before = len(servers.http.log)
    res = F.fetch(AOI("lv-small", "Las Vegas small", small), start="2018-02-01", end="2018-02-28",
                  outdir=tmp_path / "out", stac_url=servers.url, margin_m=100)
    (rec,) = res.records
    for a in rec["assets"]:
        path = "/" + a["href"].split("/", 3)[3]
        size = (servers.assets / path.lstrip("/")).stat().st_size
        sent = sum(n for p, _, _, n in servers.http.log[before:] if p == path)
        assert a["size"] == size
        assert a["bytes_fetched"] == sent  # the manifest's count is what the server sent
        assert sent < 0.10 * size, (a["band"], sent, size)
    assert rec["bytes_fetched"] < 0.10 * rec["asset_bytes"]
    manifest = json.loads((tmp_path / "out" / "fetch.json").read_text())
    assert manifest["totals"]["fraction_of_asset_bytes"] < 0.10
    assert all(a["etag"] for a in rec["assets"]) and all(a["last_modified"] for a in rec["assets"])
    for f in rec["files"]:
        import hashlib

        assert hashlib.sha256((res.folders[0] / f["name"]).read_bytes()).hexdigest() == f["sha256"]


def test_a_503_and_a_dropped_body_are_retried(servers, tmp_path):
    aoi = AOI("slovenia", "Slovenia patch", S.slovenia_aoi())
    servers.http.faults["/S2A_33TVL_20150711_0_L2A/B03.tif"] = [503, 503]
    servers.http.faults["/S2A_33TVL_20150711_0_L2A/B04.tif"] = ["drop"]
    res = F.fetch(aoi, start="2015-07-01", end="2015-07-15", outdir=tmp_path / "out", stac_url=servers.url,
                  http=_fast_http())
    assets = {a["band"]: a for a in res.records[0]["assets"]}
    assert assets["green"]["retries"] == 2 and assets["red"]["retries"] == 1 and assets["blue"]["retries"] == 0
    statuses = [s for p, _, s, _ in servers.http.log if p.endswith("20150711_0_L2A/B03.tif")]
    assert statuses.count(503) == 2
    with rasterio.open(res.folders[0] / "B04.tif") as got, \
            rasterio.open(servers.assets / "S2A_33TVL_20150711_0_L2A" / "B04.tif") as ds:
        want = ds.read(1, window=ds.window(*got.bounds).round_offsets().round_lengths(), boundless=True, fill_value=0)
        assert np.array_equal(got.read(1), want)


def test_a_failed_date_leaves_no_partial_folder_and_the_rerun_completes(servers, tmp_path):
    aoi = AOI("slovenia", "Slovenia patch", S.slovenia_aoi())
    out = tmp_path / "out"
    servers.http.faults["/S2A_33TVL_20150830_0_L2A/B08.tif"] = ["drop"] * 10
    with pytest.raises(F.FetchError, match=r"B08\.tif"):
        F.fetch(aoi, start="2015-07-01", end="2015-09-30", outdir=out, stac_url=servers.url, http=_fast_http())
    names = sorted(p.name for p in out.iterdir())
    # the date done before the failure, and the manifest of what is there; nothing partial
    assert names == ["2015-07-11_S2A_33TVL_20150711_0_L2A", "fetch.json"], names
    assert json.loads((out / "fetch.json").read_text())["complete"] is False
    servers.http.faults.clear()
    before = len(servers.http.log)
    res = F.fetch(aoi, start="2015-07-01", end="2015-09-30", outdir=out, stac_url=servers.url)
    assert [r.get("resumed", False) for r in res.records] == [True, False, False]
    assert not [p for p, *_ in servers.http.log[before:] if "20150711_0_L2A/B0" in p]  # not fetched again
    assert sorted(p.name for p in out.iterdir()) == [*SLOVENIA_KEPT, "fetch.json"]


def test_a_killed_fetch_leaves_no_partial_date_folder(servers, tmp_path):
    aoi = _aoi_file(tmp_path, S.slovenia_aoi(), "slovenia")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "campwatch", "fetch", str(aoi), "--start", "2015-07-01", "--end", "2015-09-30",
           "--stac-url", servers.url, "-o", str(out)]
    servers.http.delay_s = 0.05
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out.is_dir() and any(p.name.startswith(".2015-08-30") for p in out.iterdir())):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    for p in out.iterdir():
        if p.is_dir() and not p.name.startswith("."):
            assert (p / F.DATE_RECORD).is_file(), p  # a visible date folder is always complete
    assert not (out / "2015-08-30_S2A_33TVL_20150830_0_L2A").exists()
    servers.http.delay_s = 0.0
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "already there (resumed)" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == [*SLOVENIA_KEPT, "fetch.json"]


def test_fetch_then_track_then_report(servers, tmp_path):
    aoi = _aoi_file(tmp_path, S.slovenia_aoi(), "slovenia")
    out = tmp_path / "imagery"
    r = subprocess.run([sys.executable, "-m", "campwatch", "fetch", str(aoi), "--start", "2015-07-01",
                        "--end", "2015-09-30", "--max-tile-cloud", "100", "--stac-url", servers.url, "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "cloud over the AOI 100% > --max-cloud 20%" in r.stdout
    folders = sorted(str(p) for p in out.iterdir() if p.is_dir())
    assert len(folders) == 3
    t = subprocess.run([sys.executable, "-m", "campwatch", "track", *folders, "--aoi", str(aoi), "-o",
                        str(tmp_path / "track")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert t.returncode == 0, t.stderr
    timeline = json.loads((tmp_path / "track" / "timeline.json").read_text())
    assert [d["status"] for d in timeline["dates"]] == ["used"] * 3
    fetched = timeline["provenance"]["fetched"]
    assert [f["items"] for f in fetched] == [["S2A_33TVL_20150711_0_L2A"], ["S2A_33TVL_20150830_0_L2A"],
                                             ["S2A_33TVL_20150909_0_L2A"]]
    cfg = tmp_path / "report.toml"
    cfg.write_text(f'[[site]]\nname = "Slovenia"\naoi = "{aoi}"\nscenes = [\n'
                   + "".join(f'  {{ path = "{f}" }},\n' for f in folders) + "]\n")
    rep = subprocess.run([sys.executable, "-m", "campwatch", "report", str(cfg), "-o", str(tmp_path / "report")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rep.returncode in (0, 1), rep.stderr
    manifest = json.loads((tmp_path / "report" / "manifest.json").read_text())
    assert {f["date"] for f in manifest["fetched"]} == {"2015-07-11", "2015-08-30", "2015-09-09"}
    rows = json.loads((tmp_path / "report" / "summary.json").read_text())["rows"]
    assert len(rows) == 2 and all(row["status"] != "failed" for row in rows), rows


def test_landsat_c2l2_scale_factors_and_qa_gaps(servers, tmp_path):
    aoi = AOI("taizhou", "Taizhou", S.taizhou_aoi())
    res = F.fetch(aoi, start="2000-01-01", end="2003-12-31", outdir=tmp_path / "out", collection="landsat-c2-l2",
                  stac_url=servers.url, per="year")
    assert [c.status for c in res.candidates] == ["kept", "kept"]
    gapped = res.candidates[1]
    # the AOI's no-data fraction is read from the QA fill bit: the SLC-off-like stripes
    with rasterio.open(servers.assets / gapped.id / f"{gapped.id}_QA_PIXEL.tif") as ds:
        qa = ds.read(1)
    from campwatch.grid import Grid
    from campwatch.masks import aoi_mask

    inside = aoi_mask(S.taizhou_aoi(), Grid(qa.shape, ds.transform, ds.crs))
    assert gapped.aoi_nodata == pytest.approx(float((qa[inside] == S.QA_FILL).mean()), abs=1e-4)
    assert 0.15 < gapped.aoi_nodata < 0.3
    folder = res.folders[1]
    assert (folder / f"{gapped.id}_SR_B1.tif").is_file() and (folder / f"{gapped.id}_QA_PIXEL.tif").is_file()
    src = open_source(folder)
    assert src.profile.name == "landsat-c2l2-tm-etm" and src.band("blue").band_id == "SR_B1"
    assert src.scl is not None and src.scl.band_id == "QA_PIXEL"
    scene = read_scene(folder, aoi=aoi.geometry)
    with rasterio.open(S.TAIZHOU / "taizhou_2003-02-06.tif") as ds:
        v = ds.read(1, window=ds.window(*scene.grid.bounds).round_offsets().round_lengths(), boundless=True)
    gaps = ~scene.valid
    assert 0.15 < gaps.mean() < 0.3  # the gaps are nodata ...
    blue = scene.band("blue")
    np.testing.assert_allclose(blue[~gaps], (v[~gaps] * 100.0 + 7273) * 2.75e-5 - 0.2, atol=1e-6)  # ... and the rest is DN * 2.75e-5 - 0.2


def test_the_boa_offset_rule_is_overruled_by_the_pixels(servers):
    item = servers.items["S2A_33TVL_20150711_0_L2A"]
    with rasterio.open(servers.assets / item["id"] / "B02.tif") as ds:
        dn = ds.read(1).ravel()
    new = {**item, "properties": {**item["properties"], "s2:processing_baseline": "04.00",
                                  "earthsearch:boa_offset_applied": False}}
    # these blue DNs (dark vegetation, 0.06-0.08 reflectance) cannot carry +1000: the flag is wrong
    scale, offset, why = F.reflectance_scaling(new, item["assets"]["blue"], dn)
    assert (scale, offset) == (1e-4, 0.0) and "already removed" in why
    # the same pixels with the +1000 of baseline 04.00 in them
    scale, offset, why = F.reflectance_scaling(new, item["assets"]["blue"], dn + 1000)
    assert offset == pytest.approx(-0.1)
    flagged = {**new, "properties": {**new["properties"], "earthsearch:boa_offset_applied": True}}
    assert F.reflectance_scaling(flagged, item["assets"]["blue"], dn + 1000)[1] == 0.0
    assert F.reflectance_scaling(item, item["assets"]["blue"], dn)[1] == 0.0  # baseline 02.01


def test_a_report_site_can_fetch_its_imagery(servers, tmp_path):
    aoi = _aoi_file(tmp_path, S.slovenia_aoi(), "slovenia")
    cfg = tmp_path / "camp.toml"
    cfg.write_text(f'[[site]]\nname = "Slovenia"\naoi = "{aoi}"\n'
                   f'fetch = {{ start = 2015-07-01, end = 2015-09-30, stac_url = "{servers.url}", max_tile_cloud = 100 }}\n')
    cmd = [sys.executable, "-m", "campwatch", "report", str(cfg), "-o", str(tmp_path / "out"), "--quiet"]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode in (0, 1), first.stderr
    cache = tmp_path / "out-fetch-cache" / "slovenia"
    assert sorted(p.name[:10] for p in cache.iterdir() if p.is_dir()) == ["2015-07-11", "2015-08-30", "2015-09-09"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(manifest["fetched"]) == 3 and manifest["sites"][0]["fetch"]["start"] == "2015-07-01"
    assert len(json.loads((tmp_path / "out" / "summary.json").read_text())["rows"]) == 2
    before = len(servers.http.log)
    again = subprocess.run([*cmd, "--overwrite"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == first.returncode, again.stderr
    assert not [p for p, *_ in servers.http.log[before:] if "/B0" in p]  # the cached dates were reused
