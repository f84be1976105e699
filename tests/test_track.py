"""campwatch.track and ``campwatch track``: dates, clouds, timelines and outputs on real scenes."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner

from campwatch.cli.main import cli, main
from campwatch.errors import InvalidSceneError
from campwatch.track import TrackInput, parse_scene_arg, track, write_structures, write_timeline

SLOVENIA_DATES = ("2015-07-11", "2015-07-31", "2015-08-20", "2015-08-30", "2015-09-09")


def test_parse_scene_arg():
    assert parse_scene_arg("a/b.tif@2015-08-21") == TrackInput("a/b.tif", dt.date(2015, 8, 21))
    assert parse_scene_arg("a/b@x.tif") == TrackInput("a/b@x.tif")
    with pytest.raises(InvalidSceneError, match="YYYY-MM-DD"):
        parse_scene_arg("a.tif@2015-13-40")


@pytest.mark.shared
def test_cli_slovenia_skips_cloudy_dates(shared_data, tmp_path):
    folder = shared_data / "s2-timeseries-slovenia"
    scenes = sorted(str(p) for p in folder.glob("slovenia_*.tif"))  # includes the *_cloudmask.tif files
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["track", *reversed(scenes), "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "timeline.json").read_text())
    assert [d["date"] for d in doc["dates"]] == list(SLOVENIA_DATES)
    skipped = {d["date"]: d for d in doc["dates"] if d["status"] == "skipped"}
    assert set(skipped) == {"2015-07-31", "2015-08-20"}
    for d in skipped.values():
        assert "cloud fraction" in d["reason"] and d["cloud_fraction"] > 0.5
    expected = {e["date"]: e["cloud_fraction"] for e in json.loads((folder / "scenes.json").read_text())}
    for d in doc["dates"]:
        assert d["cloud_fraction"] == pytest.approx(expected[d["date"]], abs=0.01)
    # growth only between the clear dates, none of it significant (rural land over two months)
    assert [(p["date_before"], p["date_after"]) for p in doc["pairs"]] == [("2015-07-11", "2015-08-30"),
                                                                        ("2015-08-30", "2015-09-09")]
    for p in doc["pairs"]:
        assert p["significance"] != "significant"
        for key in ("pixel_size_m", "observed_fraction", "cloud_fraction_before", "geometry_quality", "limits"):
            assert key in p
    assert doc["aoi"]["geometry_quality"] == "none"
    assert len(doc["provenance"]["inputs"]) >= 3 and all(len(r["sha256"]) == 64 for r in doc["provenance"]["inputs"])
    rows = (out / "timeline.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[0].startswith("date,status,reason")
    assert (out / "footprint.png").stat().st_size > 1000
    for pair in doc["pairs"]:
        stem = f"growth_{pair['date_before']}_{pair['date_after']}"
        assert (out / f"{stem}.gpkg").is_file() and (out / f"{stem}.geojson").is_file()
    # refuses to overwrite; then replaces with --overwrite
    assert main(["track", *scenes, "-o", str(out)]) == 2
    assert main(["track", *scenes, "-o", str(out), "--overwrite"]) == 0


@pytest.mark.shared
def test_spectral_cloud_test_without_mask_files(shared_data, tmp_path):
    folder = shared_data / "s2-timeseries-slovenia"
    links = []
    for day in SLOVENIA_DATES:
        link = tmp_path / f"slovenia_{day}.tif"
        os.symlink(folder / f"slovenia_{day}.tif", link)
        links.append(str(link))
    t = track(links)
    status = {d.date.isoformat(): d for d in t.dates}
    assert status["2015-07-31"].status == status["2015-08-20"].status == "skipped"
    assert "spectral cloud test" in status["2015-07-31"].reason
    assert [d.date.isoformat() for d in t.used] == ["2015-07-11", "2015-08-30", "2015-09-09"]


@pytest.mark.shared
def test_missing_date_is_an_error_with_the_fix(shared_data, tmp_path):
    src = shared_data / "s2-timeseries-slovenia" / "slovenia_2015-07-11.tif"
    undated = tmp_path / "scene_a.tif"
    with rasterio.open(src) as ds:
        profile, data, desc = ds.profile, ds.read(), ds.descriptions
    with rasterio.open(undated, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = desc
    other = shared_data / "s2-timeseries-slovenia" / "slovenia_2015-09-09.tif"
    with pytest.raises(InvalidSceneError, match=r"scene_a.tif@YYYY-MM-DD"):
        track([str(undated), str(other)])
    t = track([f"{undated}@2015-07-11", str(other)])
    assert [d.date.isoformat() for d in t.dates] == ["2015-07-11", "2015-09-09"]
    assert t.dates[0].cloud_source.startswith("spectral") or t.dates[0].cloud_source.startswith("not assessed")


def test_track_sample_aoi_and_cloud_mask_option(samples, tmp_path):
    """Explicit per-date cloud mask and a catalogue-style AOI file, on the Rennes sample pair."""
    from campwatch.aoi import resolve_aoi
    from campwatch.io import read_scene, write_raster

    aoi = resolve_aoi("aois/samples/sample-rennes.geojson")
    first = samples / "rennes" / "imgs_1"
    ref = read_scene(first, aoi=aoi.geometry, bands=["red"])
    clouds = np.zeros(ref.grid.shape, np.uint8)
    clouds[: ref.grid.height // 5] = 1  # a fifth of the AOI's rows under "cloud"
    mask = write_raster(tmp_path / "clouds.tif", clouds, ref.grid)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["track", str(samples / "rennes" / "imgs_2"), str(first), "--aoi",
                                   "aois/samples/sample-rennes.geojson", "--cloud-mask", f"{first}={mask}",
                                   "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "timeline.json").read_text())
    assert doc["aoi"]["id"] == aoi.id and doc["aoi"]["geometry_quality"] == aoi.geometry_quality
    d0 = doc["dates"][0]
    assert d0["status"] == "used" and "mask file clouds.tif" in d0["cloud_source"]
    assert 0.1 < d0["cloud_fraction"] < 0.3 and d0["valid_fraction"] == pytest.approx(1 - d0["cloud_fraction"], abs=0.01)
    pair = doc["pairs"][0]
    assert pair["observed_fraction"] < 0.85 and pair["geometry_quality"] == aoi.geometry_quality
    a = pair["areas_m2"]
    assert a["new"] - a["demolished"] + a["expanded"] - a["shrunk"] + a["unchanged_net"] == pytest.approx(
        pair["net_m2"], abs=0.5)
    gpkg = out / f"growth_{pair['date_before']}_{pair['date_after']}.gpkg"
    assert {name for name, _ in pyogrio.list_layers(gpkg)} == {"structures", "objects_before", "objects_after",
                                                               "layer_styles"}
    growth = gpd.read_file(gpkg, layer="structures")
    assert {"class", "area_before_m2", "area_after_m2", "delta_m2", "significant", "area_m2"} <= set(growth.columns)
    assert len(growth) == sum(pair["counts"].values())
    gj = gpd.read_file(gpkg.with_suffix(".geojson"))
    assert gj.crs.to_epsg() == 4326 and len(gj) == len(growth)


def test_write_structures_refuses_existing(samples, tmp_path):
    t = track([samples / "bercy" / "imgs_1", samples / "bercy" / "imgs_2"])
    g, j = write_structures(t.pairs[0], tmp_path / "s.gpkg", tmp_path / "s.geojson")
    from campwatch.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        write_structures(t.pairs[0], g, tmp_path / "other.geojson")
    assert not (tmp_path / "other.geojson").exists()
    write_structures(t.pairs[0], g, j, overwrite=True)
    with pytest.raises(OutputExistsError):
        write_timeline(t, tmp_path)
    assert isinstance(Path(g), Path)


def test_too_few_scenes(samples):
    with pytest.raises(InvalidSceneError, match="two or more"):
        track([samples / "bercy" / "imgs_1"])


def test_timeline_and_growth_render_html_tables():
    from campwatch.track import track

    t = track(["data/sample_tiles/bercy/imgs_1", "data/sample_tiles/bercy/imgs_2"], aoi="sample-bercy")
    page = t._repr_html_()
    assert "<table" in page and "2016-11-30" in page and "2017-08-29" in page
    growth_page = t.pairs[0]._repr_html_()
    assert "<table" in growth_page and "demolished" in growth_page


def test_two_scenes_on_one_date_and_bad_date_suffix_are_refused():
    from campwatch.errors import InvalidSceneError
    from campwatch.track import parse_scene_arg, track

    with pytest.raises(InvalidSceneError, match="both dated 2017-06-21"):
        track(["data/sample_tiles/rennes/imgs_1@2017-06-21", "data/sample_tiles/rennes/imgs_2"])
    with pytest.raises(InvalidSceneError, match="PATH@YYYY-MM-DD"):
        parse_scene_arg("data/sample_tiles/rennes/imgs_2@21-06-2017")
