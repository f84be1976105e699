import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from campwatch import ConfigError, OutputExistsError
from campwatch.cli.main import main
from campwatch.report import SUMMARY_FIELDS, config_from_dict, read_config, run_report, write_report

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path, sites_toml: str, options: str = "") -> Path:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f"[options]\nbase_dir = {json.dumps(str(ROOT))}\n{options}\n{sites_toml}")
    return cfg


RENNES = """
[[site]]
name = "Rennes <b>&</b>"
aoi = "sample-rennes"
scenes = [
  { date = "2015-08-21", path = "data/sample_tiles/rennes/imgs_1" },
  { date = "2017-06-21", path = "data/sample_tiles/rennes/imgs_2" },
]
"""
BROKEN = """
[[site]]
name = "broken"
scenes = [
  { date = "2016-11-30", path = "data/sample_tiles/paris/imgs_1" },
  { date = "2017-11-07", path = "data/sample_tiles/paris/no_such_folder" },
]
"""


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    cfg = _config(tmp, RENNES)
    out = tmp / "out"
    run = run_report(read_config(cfg), scheduler="sync")
    write_report(run, out)
    return cfg, out


def test_report_outputs_rows_and_escaping(local_run):
    _cfg, out = local_run
    for name in ("index.html", "summary.json", "summary.csv", "changes.gpkg", "manifest.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    (row,) = summary["rows"]
    assert list(row) == list(SUMMARY_FIELDS) and row["status"] == "ok"
    assert row["date_before"] == "2015-08-21" and row["geometry_quality"] == "sample"
    # the growth accounting adds up in the row too (unchanged groups carry the rest)
    assert row["footprint_after_m2"] - row["footprint_before_m2"] == pytest.approx(row["net_growth_m2"], abs=0.2)
    assert 0 < row["changed_area_m2"] < 2.5e6
    page = (out / "index.html").read_text()
    assert "Rennes &lt;b&gt;&amp;&lt;/b&gt;" in page and "Rennes <b>&</b>" not in page
    assert page.count("data:image/png;base64,") >= 4 and "geometry quality" in page.lower()
    manifest = json.loads((out / "manifest.json").read_text())
    shas = {r["path"].rsplit("/", 1)[-1]: r["sha256"] for r in manifest["inputs"]}
    assert any(n.endswith("_B04.tif") for n in shas) and "sample-rennes.geojson" in shas
    assert manifest["versions"]["campwatch"] and manifest["started"] <= manifest["finished"]
    import geopandas as gpd

    for layer, classes in (("changes", {"change"}), ("structures", {"new", "demolished"})):
        polys = gpd.read_file(out / "changes.gpkg", layer=layer)
        assert set(polys["class"]) >= classes and (polys["site"] == "Rennes <b>&</b>").all()


def test_rerun_gives_byte_identical_summary(local_run, tmp_path):
    cfg, out = local_run
    run = run_report(read_config(cfg), scheduler="sync")
    write_report(run, tmp_path / "again")
    assert (tmp_path / "again" / "summary.json").read_bytes() == (out / "summary.json").read_bytes()


def test_broken_site_is_reported_and_exit_nonzero(tmp_path, capsys):
    cfg = _config(tmp_path, RENNES + BROKEN)
    out = tmp_path / "out"
    code = main(["report", str(cfg), "-o", str(out), "--scheduler", "sync", "--quiet"])
    assert code == 1
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert "no_such_folder" in rows[1]["error"]
    assert "no_such_folder" in (out / "index.html").read_text()
    # existing output refused without --overwrite, and nothing is lost
    before = (out / "summary.json").read_bytes()
    assert main(["report", str(cfg), "-o", str(out), "--scheduler", "sync", "--quiet"]) == 2
    assert (out / "summary.json").read_bytes() == before
    # --fail-fast stops at the first failure
    cfg2 = _config(tmp_path, BROKEN + RENNES)
    assert main(["report", str(cfg2), "-o", str(tmp_path / "ff"), "--scheduler", "sync", "--quiet", "--fail-fast"]) == 1
    assert len(json.loads((tmp_path / "ff" / "summary.json").read_text())["rows"]) == 1


@pytest.mark.parametrize("text, match", [
    ("[[site]]\nscenes = [{path = 'a'}]\n", "two or more"),
    ("[options]\nmethd = 'x'\n[[site]]\nscenes = ['a', 'b']\n", "unknown option"),
    ("[[site]]\nscenes = [{path='a', date='21/08/2015'}, {path='b'}]\n", "YYYY-MM-DD"),
    ("site = [\n", "not valid TOML"),
    ("", "no \\[\\[site\\]\\]"),
])
def test_bad_configs_name_the_problem(tmp_path, text, match):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_config(cfg)


def test_config_paths_relative_to_file():
    cfg = config_from_dict({"site": [{"scenes": ["x/1", "x/2"]}]}, base_dir="/data")
    assert [s.path for s in cfg.sites[0].scenes] == ["/data/x/1", "/data/x/2"] and cfg.sites[0].name == "site-1"


def test_write_report_refuses_existing(local_run):
    cfg, out = local_run
    run = {"config": read_config(cfg), "results": [], "started": "", "finished": ""}
    with pytest.raises(OutputExistsError):
        write_report(run, out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_scheduler_and_worker_processes_match_local(local_run, tmp_path):
    """A real `dask scheduler` and `dask worker`, as separate processes on 127.0.0.1."""
    cfg, out = local_run
    port = _free_port()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    sched = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    worker = None
    try:
        address = f"tcp://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        worker = subprocess.Popen([str(bindir / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                   "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        from dask.distributed import Client

        with Client(address, timeout="60s") as c:
            c.wait_for_workers(1, timeout=60)
        code = main(["report", str(cfg), "-o", str(tmp_path / "dist"), "--scheduler", address, "--quiet"])
        assert code == 0
        assert (tmp_path / "dist" / "summary.json").read_bytes() == (out / "summary.json").read_bytes()
    finally:
        for p in (worker, sched):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


def test_vhr_site_reports_building_counts(shared_data, tmp_path):
    crop = shared_data / "vhr-levircd" / "crop256"
    name = "test_2_0000_0000.tif"
    cfg = tmp_path / "vhr.toml"
    cfg.write_text(f"""[[site]]
name = "levir"
scenes = [{{ date = "2012-01-01", path = "{crop / 'A' / name}" }}, {{ date = "2016-01-01", path = "{crop / 'B' / name}" }}]
""")
    assert main(["report", str(cfg), "-o", str(tmp_path / "out"), "--scheduler", "sync", "--quiet"]) == 0
    (row,) = json.loads((tmp_path / "out" / "summary.json").read_text())["rows"]
    assert row["method"] == "vhr" and row["new_count"] >= 1 and row["footprint_before_m2"] is None
    assert "VHR mode counts buildings" in (tmp_path / "out" / "index.html").read_text()


def test_pairs_follow_file_dates_when_config_has_none(tmp_path):
    """Scenes listed after-first with no config dates still give BEFORE = the earlier date."""
    cfg = _config(tmp_path, """
[[site]]
name = "reversed"
scenes = ["data/sample_tiles/rennes/imgs_2", "data/sample_tiles/rennes/imgs_1"]
""")
    out = tmp_path / "out"
    assert main(["report", str(cfg), "-o", str(out), "--scheduler", "sync", "--quiet"]) == 0
    (row,) = json.loads((out / "summary.json").read_text())["rows"]
    assert (row["date_before"], row["date_after"]) == ("2015-08-21", "2017-06-21")


def test_config_date_contradicting_the_files_fails_the_pair(tmp_path):
    """A config date that contradicts the files' own date fails the pair, naming both (issue 21.5)."""
    cfg = _config(tmp_path, """
[[site]]
name = "redated"
scenes = [
  { date = "2015-08-21", path = "data/sample_tiles/rennes/imgs_1" },
  { date = "2019-01-01", path = "data/sample_tiles/rennes/imgs_2" },
]
""")
    out = tmp_path / "out"
    assert main(["report", str(cfg), "-o", str(out), "--scheduler", "sync", "--quiet"]) == 1
    (row,) = json.loads((out / "summary.json").read_text())["rows"]
    assert row["status"] == "failed" and row["changed_area_m2"] is None
    assert "DateOrderError" in row["error"] and "2019-01-01" in row["error"] and "2017-06-21" in row["error"]


# ---- the interactive map (issue 20): vendored Leaflet, per-date images, the GeoPackage's polygons ----------
def _map_data(page: str) -> list[dict]:
    import re

    return [json.loads(m) for m in re.findall(r'<script type="application/json" id="map-[\d-]+-data">(.*?)</script>',
                                              page, re.S)]


def _png(path: Path):
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read().transpose(1, 2, 0)


def test_map_is_offline_and_draws_every_geopackage_row(demo_report):
    import re

    import geopandas as gpd

    out = demo_report
    lic = out / "assets" / "leaflet" / "LICENSE"
    assert "BSD 2-Clause" in lic.read_text() and (out / "assets" / "leaflet" / "images" / "layers.png").is_file()
    assert "Leaflet 1.9.4" in (out / "assets" / "leaflet" / "leaflet.js").read_text()[:200]
    page = (out / "index.html").read_text()
    assert 'src="assets/leaflet/leaflet.js"' in page and 'href="assets/leaflet/leaflet.css"' in page
    assert not re.search(r'<(?:script|link|img)[^>]*(?:src|href)="(?:https?:)?//', page)  # no CDN, no tiles
    assert "fetch(" not in page  # fetch() fails on file://: the data is embedded
    maps = _map_data(page)
    polys = pd.concat([gpd.read_file(out / "changes.gpkg", layer=k) for k in ("changes", "structures")])
    assert len(maps) == 3 and sum(len(m["polygons"]["features"]) for m in maps) == len(polys) > 0
    for m in maps:
        rows = polys[(polys["date_before"] == m["date_before"]) & (polys["date_after"] == m["date_after"])]
        feats = m["polygons"]["features"]
        assert len(feats) == len(rows)
        assert sorted(f["properties"]["class"] for f in feats) == sorted(rows["class"])
        assert sum(f["properties"]["area_m2"] for f in feats) == pytest.approx(rows["area_m2"].sum(), abs=0.1 * len(rows))
        # the legend names exactly the classes drawn, in the colours drawn
        drawn = {(f["properties"]["colour"], f["properties"]["class"]) for f in feats}
        assert drawn == {tuple(item) for item in m["legend"] if item[1] in set(rows["class"])}
        assert m["aoi"]["type"] == "Polygon"


def test_map_images_keep_the_source_resolution_and_mask_what_was_not_seen(demo_report):
    """Each date's PNG: at least the source grid's pixels; outside the AOI a grey mask (R = G = B);
    violet (no data) and pink (cloud) only where the legend says they are drawn."""
    from rasterio import features
    from rasterio.transform import from_bounds
    from scipy import ndimage

    from campwatch.webmap import RASTER_COLOURS

    out = demo_report
    for m in _map_data((out / "index.html").read_text()):
        (s, w), (n, e) = m["bounds"]
        seen = {label: False for label in RASTER_COLOURS}
        for name in (m["before"], m["after"]):
            img = _png(out / name)
            h, wd = img.shape[:2]
            assert h >= m["source_shape"][0] and wd >= m["source_shape"][1], (name, img.shape, m["source_shape"])
            assert h * wd <= 3 * m["source_shape"][0] * m["source_shape"][1]  # display-sized, not inflated
            # the AOI outline rasterised on the image's own Web Mercator grid
            from pyproj import Transformer

            (x0, x1), (y0, y1) = Transformer.from_crs(4326, 3857, always_xy=True).transform([w, e], [s, n])
            inside = features.geometry_mask([_to_3857(m["aoi"])], out_shape=(h, wd),
                                            transform=from_bounds(x0, y0, x1, y1, wd, h), invert=True)
            opaque = img[..., 3] == 255
            far_out = ~ndimage.binary_dilation(inside, iterations=2) & opaque
            far_in = ndimage.binary_erosion(inside, iterations=2) & opaque
            grey = (img[..., 0] == img[..., 1]) & (img[..., 1] == img[..., 2])
            assert far_out.sum() > 100 and grey[far_out].all()
            assert grey[far_in].mean() < 0.2  # inside: the colour image
            for label, colour in RASTER_COLOURS.items():
                rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
                hit = (img[..., :3] == rgb).all(-1)
                assert not hit[far_out].any()
                seen[label] |= bool(hit.any())
        legend = {label for _, label in m["legend"]}
        assert {label for label, s_ in seen.items() if s_} == legend & set(RASTER_COLOURS), m["date_before"]


def _to_3857(geom: dict) -> dict:
    from rasterio.warp import transform_geom

    return transform_geom("EPSG:4326", "EPSG:3857", geom)


@pytest.mark.shared
def test_map_draws_no_data_violet_where_a_date_has_no_pixels(low_confidence_report):
    """The after image's georeference is 40 px east of its pixels: on BEFORE's grid its western
    40 px (of 1024) have no value, and only there the after image is violet."""
    from campwatch.webmap import RASTER_COLOURS

    out = low_confidence_report
    (m,) = _map_data((out / "index.html").read_text())
    violet = tuple(int(RASTER_COLOURS["no data"][i:i + 2], 16) for i in (1, 3, 5))
    before, after = _png(out / m["before"]), _png(out / m["after"])
    assert not (before[..., :3] == violet).all(-1).any()
    is_violet = (after[..., :3] == violet).all(-1)
    assert is_violet.any()
    for r in range(50, after.shape[0] - 50, 25):  # the tile's transform is slightly rotated: row by row
        opaque = np.flatnonzero(after[r, :, 3] == 255)
        v = np.flatnonzero(is_violet[r])
        assert v.min() == opaque.min() and v.max() - v.min() + 1 == len(v)  # one run, on the western edge
        assert abs(len(v) - 40 * len(opaque) / 1024) <= 2, (r, len(v), len(opaque))
    assert "no data" in {label for _, label in m["legend"]} and m["aoi"] is None


# ---- the site header (issue 20): where, how big, how sure the outline is, which images, which dates ---------
def _header(page: str, anchor: str) -> str:
    section = page[page.index(f'id="{anchor}"'):]
    return section[:section.index("</table>")]


def test_site_header_states_place_area_imagery_and_the_change_window(demo_report):
    import datetime as dt
    import re

    import geopandas as gpd
    from pyproj import Geod

    page = (demo_report / "index.html").read_text()
    aoi = gpd.read_file(ROOT / "aois" / "samples" / "sample-rennes.geojson")
    head = _header(page, "rennes-sample")
    # coordinates: the AOI's centroid, computed here independently (in its UTM zone, EPSG:32630)
    c = aoi.to_crs(32630).centroid.to_crs(4326).iloc[0]
    lat, lon = (float(v) for v in re.search(r"([\d.]+)° N, ([\d.]+)° W", head).groups())
    assert lat == pytest.approx(c.y, abs=2e-5) and -lon == pytest.approx(c.x, abs=2e-5)
    # area: geodesic on WGS84, to the m²
    area = abs(Geod(ellps="WGS84").geometry_area_perimeter(aoi.geometry.iloc[0])[0])
    km2, m2 = re.search(r"([\d.]+) km² \(([\d,]+) m²\)", head).groups()
    assert float(km2) == pytest.approx(area / 1e6, abs=5e-4) and int(m2.replace(",", "")) == pytest.approx(area, abs=1)
    # the AOI's geometry quality and every source it cites
    assert '<b class="cw-geometry-quality">sample</b>' in head
    for title in aoi["sources"].iloc[0]:
        assert title["title"].replace("&", "&amp;") in head
    # imagery: both dates, the sensor and the pixel size; the change window between them
    imagery = head[head.index('class="cw-imagery"'):head.index('class="cw-brackets"')]
    assert imagery.count("<li>") == 2 and imagery.count("sentinel2-l1c (Sentinel-2 MSI Level-1C") == 2
    assert "<b>2015-08-21</b>" in imagery and "<b>2017-06-21</b>" in imagery and " m pixels" in imagery
    days = (dt.date(2017, 6, 21) - dt.date(2015, 8, 21)).days
    assert (f"after <b>2015-08-21</b> (last image before) and by <b>2017-06-21</b> (first image after): "
            f"a {days}-day window") in head
