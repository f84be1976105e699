"""Outputs never state more than was measured (issue 21): coverage of the AOI, empty pairs,
date order, whole-folder atomic outputs, and ``--overwrite`` that only replaces campwatch's own
folders.  Every case runs on real pixels (``data/sample_tiles``, ``../shared/data``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyogrio
import pytest
from shapely.geometry import box, mapping

from campwatch.cli.main import main
from campwatch.compare import compare_files
from campwatch.errors import (
    DateOrderError,
    InsufficientDataError,
    LowValidDataWarning,
    OutputExistsError,
    OutputLockedError,
)
from campwatch.io import OUTPUT_MARKER, output_lock, read_scene

RENNES = "data/sample_tiles/rennes"


def _bounds_ll(path: str) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    g = read_scene(path, bands=["red"]).grid
    left, top = g.transform * (0, 0)
    right, bottom = g.transform * (g.width, g.height)
    return transform_bounds(g.crs, "EPSG:4326", left, bottom, right, top)


def _aoi_file(tmp_path, geom, name="edge"):
    p = tmp_path / f"{name}.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": name, "name": name}, "geometry": mapping(geom)}]}))
    return p


def _edge_aoi(tmp_path):
    """A box whose western fifth overlaps Rennes' eastern edge: about 20% of it is inside the scene."""
    w, s, e, n = _bounds_ll(f"{RENNES}/imgs_1")
    dx, dy = 0.3 * (e - w), 0.3 * (n - s)
    cy = (s + n) / 2
    return _aoi_file(tmp_path, box(e - 0.2 * dx, cy - dy, e + 0.8 * dx, cy + dy))


# ---- 1. coverage ---------------------------------------------------------------------------------
def test_an_aoi_mostly_outside_the_scene_is_reported_as_mostly_unobserved(tmp_path):
    from campwatch.aoi import resolve_aoi

    aoi = resolve_aoi(str(_edge_aoi(tmp_path)))
    with pytest.warns(LowValidDataWarning):
        r = compare_files(f"{RENNES}/imgs_1", f"{RENNES}/imgs_2", aoi=aoi, min_observed_fraction=0.0,
                          structures=True)
    cov = r.params["coverage"]
    assert cov["reference"] == "aoi"
    assert cov["reference_area_m2"] == pytest.approx(aoi.area_m2(), rel=1e-6)
    assert 0.1 < cov["observed_fraction"] < 0.3  # it was written as 1.0 before
    assert r.structures.summary()["observed_fraction_of_aoi"] == pytest.approx(cov["observed_fraction"], abs=1e-6)
    with pytest.raises(InsufficientDataError, match=r"of the AOI .* below the minimum 50%"):
        compare_files(f"{RENNES}/imgs_1", f"{RENNES}/imgs_2", aoi=aoi)


@pytest.mark.filterwarnings("ignore::campwatch.errors.LowValidDataWarning")
def test_a_continent_sized_aoi_is_almost_unobserved(tmp_path):
    aoi = _aoi_file(tmp_path, box(-10.0, 35.0, 30.0, 60.0), name="europe")
    out = tmp_path / "out"
    assert main(["compare", f"{RENNES}/imgs_1", f"{RENNES}/imgs_2", "--aoi", str(aoi), "-o", str(out),
                 "--min-observed", "0", "--no-structures"]) == 0
    cov = json.loads((out / "summary.json").read_text())["coverage"]
    assert cov["observed_fraction"] < 1e-5  # it read 0.9966 before


@pytest.mark.filterwarnings("ignore::campwatch.errors.LowValidDataWarning")
def test_report_flags_partial_coverage(tmp_path):
    aoi = _edge_aoi(tmp_path)
    root = str(__import__("pathlib").Path(RENNES).resolve())
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f"""[options]
min_observed_fraction = 0.1
[[site]]
name = "edge"
aoi = "{aoi}"
scenes = [{{ path = "{root}/imgs_1" }}, {{ path = "{root}/imgs_2" }}]
""")
    out = tmp_path / "rep"
    assert main(["report", str(cfg), "-o", str(out), "--scheduler", "sync", "--quiet"]) == 0
    (row,) = json.loads((out / "summary.json").read_text())["rows"]
    assert row["status"] == "ok" and 0.1 < row["valid_fraction"] < 0.3
    page = (out / "index.html").read_text()
    assert "PARTIAL COVERAGE" in page and "partial coverage" in page


# ---- 2. an empty pair is insufficient data, never "no change" --------------------------------------
@pytest.mark.shared
@pytest.mark.filterwarnings("ignore::campwatch.errors.CampwatchWarning")
def test_an_all_cloud_pair_states_no_figure(shared_data, tmp_path, capsys):
    ts = shared_data / "s2-timeseries-slovenia"
    out = tmp_path / "out"
    code = main(["compare", str(ts / "slovenia_2015-07-11.tif"), str(ts / "slovenia_2015-07-31.tif"), "-o", str(out)])
    assert code == 3
    err = capsys.readouterr().err
    assert "no figure is stated" in err and "1.9%" in err
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.filterwarnings("ignore::campwatch.errors.CampwatchWarning")
def test_a_band_from_another_place_is_insufficient_data(tmp_path, samples):
    after = tmp_path / "imgs_2"
    shutil.copytree(samples / "rennes" / "imgs_2", after)
    red = next(after.glob("*B04*"))
    shutil.copy(next((samples / "paris" / "imgs_2").glob("*B04*")), red)
    assert main(["compare", f"{RENNES}/imgs_1", str(after), "-o", str(tmp_path / "out"), "--no-coregister"]) == 3
    assert not (tmp_path / "out").exists()


@pytest.mark.shared
@pytest.mark.filterwarnings("ignore::campwatch.errors.CampwatchWarning")
def test_report_skips_a_cloudy_date_and_pairs_the_usable_ones(shared_data, tmp_path):
    ts = shared_data / "s2-timeseries-slovenia"
    cfg = tmp_path / "slo.toml"
    cfg.write_text(f"""[[site]]
name = "Camp [/bold] 15"
scenes = [{{ path = "{ts}/slovenia_2015-07-11.tif" }}, {{ path = "{ts}/slovenia_2015-07-31.tif" }},
          {{ path = "{ts}/slovenia_2015-08-30.tif" }}]
[[site]]
name = "cloudy pair"
scenes = [{{ path = "{ts}/slovenia_2015-07-11.tif" }}, {{ path = "{ts}/slovenia_2015-07-31.tif" }}]
""")
    out = tmp_path / "rep"
    assert main(["report", str(cfg), "-o", str(out), "--scheduler", "sync"]) == 3
    doc = json.loads((out / "summary.json").read_text())
    rows = {r["site"]: r for r in doc["rows"]}
    used = rows["Camp [/bold] 15"]
    assert (used["date_before"], used["date_after"], used["status"]) == ("2015-07-11", "2015-08-30", "ok")
    assert used["valid_fraction"] > 0.5 and used["changed_area_m2"] is not None
    short = rows["cloudy pair"]
    assert short["status"] == "insufficient-data" and short["changed_area_m2"] is None
    assert short["net_growth_m2"] is None and short["growth_significant"] is None
    assert [g["date"] for g in doc["skipped_dates"]["Camp [/bold] 15"]] == ["2015-07-31"]
    page = (out / "index.html").read_text()
    assert "2015-07-31" in page and "was skipped: cloud fraction 1.00" in page
    # the site header brackets the change by the usable dates, and says the skipped one does not narrow it
    camp = page[:page.index('id="cloudy-pair"')]
    assert ("after <b>2015-07-11</b> (last image before) and by <b>2015-08-30</b> (first image after): a 50-day "
            "window; 2015-07-31 skipped in between") in camp
    assert "centre of the scenes&#39; overlap (no AOI)" in camp
    cloudy = page[page.index('id="cloudy-pair"'):]
    assert "insufficient-data" in cloudy and "fewer than two usable dates" in cloudy
    assert "NOT significant" not in cloudy and "m²" not in cloudy.split("Caveats")[0]


# ---- 5. date order ----------------------------------------------------------------------------------
def test_before_dated_after_after_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compare", f"{RENNES}/imgs_2", f"{RENNES}/imgs_1", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2017-06-21" in err and "2015-08-21" in err and "swap BEFORE and AFTER" in err
    assert not out.exists()
    with pytest.raises(DateOrderError):
        compare_files(f"{RENNES}/imgs_2", f"{RENNES}/imgs_1")


def test_streamed_compare_refuses_reversed_dates(tmp_path):
    out = tmp_path / "out"
    assert main(["compare", f"{RENNES}/imgs_2", f"{RENNES}/imgs_1", "-o", str(out), "--stream"]) == 2
    assert not out.exists()


# ---- 3, 4, 9: one folder is one run; --overwrite replaces only campwatch's folders ------------------
def _compare(out, *extra):
    return main(["compare", f"{RENNES}/imgs_1", f"{RENNES}/imgs_2", "-o", str(out), *extra])


def test_overwrite_with_fewer_outputs_leaves_no_old_file(tmp_path):
    out = tmp_path / "out"
    assert _compare(out) == 0
    assert (out / "structures.geojson").exists() and (out / OUTPUT_MARKER).is_file()
    assert "structures" in {name for name, _ in pyogrio.list_layers(out / "changes.gpkg")}
    assert _compare(out, "--overwrite", "--no-structures") == 0
    assert {name for name, _ in pyogrio.list_layers(out / "changes.gpkg")} == {"changes", "layer_styles"}
    assert not (out / "structures.geojson").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no .part, .old or .lock left


@pytest.mark.parametrize("command", ["compare", "track", "report"])
def test_overwrite_never_deletes_a_users_folder_or_file(tmp_path, command, capsys):
    mine = tmp_path / "evidence"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    photo = tmp_path / "evidence.jpg"
    photo.write_bytes(b"\xff\xd8 not really a jpeg")
    args = {"compare": ["compare", f"{RENNES}/imgs_1", f"{RENNES}/imgs_2"],
            "track": ["track", f"{RENNES}/imgs_1", f"{RENNES}/imgs_2"],
            "report": ["report", "examples/demo.toml", "--scheduler", "sync", "--quiet"]}[command]
    assert main([*args, "-o", str(mine), "--overwrite"]) == 2
    assert "not a folder campwatch wrote" in capsys.readouterr().err
    assert main([*args, "-o", str(photo), "--overwrite"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "my notes" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert photo.read_bytes() == b"\xff\xd8 not really a jpeg"


def test_a_locked_output_is_refused_at_once(tmp_path, capsys):
    out = tmp_path / "out"
    with output_lock(out):
        assert _compare(out) == 2
    assert "being written by another campwatch run" in capsys.readouterr().err
    assert not out.exists()
    with output_lock(out), pytest.raises(OutputLockedError):
        from campwatch.io import atomic_dir

        with atomic_dir(out):
            pass


def test_the_next_run_restores_a_folder_left_between_the_two_renames(tmp_path):
    """A kill between 'old folder away' and 'new folder in' leaves only .NAME.old: the next run restores it."""
    out = tmp_path / "out"
    assert _compare(out, "--no-structures") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    out.rename(tmp_path / ".out.old")
    (tmp_path / ".out.part-abc123").mkdir()  # and a temporary folder of a killed run
    (tmp_path / ".out.part-abc123" / "change_mask.tif").write_bytes(b"half")
    with pytest.raises(OutputExistsError):  # the restored folder exists: no --overwrite, no replacement
        from campwatch.io import atomic_dir

        with atomic_dir(out):
            pass
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_two_concurrent_reports_without_overwrite_do_not_both_claim_success(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "rep"
    cmd = [sys.executable, "-m", "campwatch", "report", "examples/demo.toml", "-o", str(out), "--scheduler", "sync",
           "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        results.append((p.returncode, err))
    codes = sorted(c for c, _ in results)
    assert codes == [0, 2], results
    loser = next(e for c, e in results if c == 2)
    assert "exists already" in loser or "being written by another" in loser
    assert (out / OUTPUT_MARKER).is_file() and json.loads((out / "summary.json").read_text())["n_pairs"] == 3


def test_rerun_of_compare_is_byte_identical_apart_from_nothing(tmp_path):
    """summary.json, the rasters and the quicklook of a rerun equal the first run's bytes."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert _compare(a, "--no-structures") == 0
    assert _compare(b, "--no-structures") == 0
    for name in ("summary.json", "change_mask.tif", "change_score.tif", "quicklook.png", OUTPUT_MARKER):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    s = json.loads((a / "summary.json").read_text())
    assert np.isfinite(s["changed_area_m2"]) and s["coverage"]["observed_fraction"] > 0.9


# ---- the doubt compare measured travels into the report (issue 20, confidence first) -------------------
@pytest.mark.shared
def test_a_low_confidence_vhr_pair_is_badged_and_keeps_its_reasons(low_confidence_report):
    import sqlite3

    # the after image's georeference off by 40 px (18 m) east (conftest.low_confidence_report)
    out = low_confidence_report
    (row,) = json.loads((out / "summary.json").read_text())["rows"]
    assert row["status"] == "ok" and row["confidence"] == "low" and "misregistration" in row["confidence_reasons"]
    assert row["growth_significant"] is None and row["net_growth_m2"] is None  # not computed: empty, not False
    assert row["demolished_significant"] < row["demolished_count"]
    page = (out / "index.html").read_text()
    assert "LOW CONFIDENCE" in page and "low-confidence candidates" in page
    assert "16 × 7 m hut" not in page and "within the measurement uncertainty" not in page
    assert "new structure" not in page.split("Overlay:")[1].split("</p>")[0]  # VHR overlay draws change only
    con = sqlite3.connect(out / "changes.gpkg")
    types = {r[1]: r[2] for r in con.execute("pragma table_info(structures)")}
    assert types["significant"] == types["low_confidence"] == "BOOLEAN" and types["area_before_m2"] == "REAL"
    n_low, n_reason = con.execute("select sum(low_confidence), count(reason) from structures").fetchone()
    assert n_low > 0 and n_reason == n_low
    # the change polygons carry the pair's doubt too: every one low confidence, with the badge's reasons
    n, n_low, reasons = con.execute("select count(*), sum(low_confidence), group_concat(distinct reason) "
                                    "from changes").fetchone()
    assert n > 0 and n_low == n and reasons == row["confidence_reasons"]


@pytest.mark.filterwarnings("ignore::campwatch.errors.LowValidDataWarning")
def test_compare_puts_the_pairs_confidence_on_every_change_polygon(tmp_path, capsys):
    import sqlite3

    # partial coverage (about 20% of the AOI observed) makes the pair low confidence
    out = tmp_path / "edge"
    assert main(["compare", f"{RENNES}/imgs_1", f"{RENNES}/imgs_2", "--aoi", str(_edge_aoi(tmp_path)),
                 "--min-observed", "0", "-o", str(out)]) == 0
    assert "LOW CONFIDENCE: only 2" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert s["confidence"] == "low" and s["confidence_reasons"][0].endswith("of the area observed on both dates")
    with sqlite3.connect(out / "changes.gpkg") as con:
        n, n_low, reasons = con.execute("select count(*), sum(low_confidence), group_concat(distinct reason) "
                                        "from changes").fetchone()
    assert n > 0 and n_low == n and reasons == "; ".join(s["confidence_reasons"])
    # the whole tile, fully observed and well registered: ok, and no polygon says otherwise
    ok = tmp_path / "whole"
    assert main(["compare", f"{RENNES}/imgs_1", f"{RENNES}/imgs_2", "-o", str(ok)]) == 0
    assert "LOW CONFIDENCE" not in capsys.readouterr().out
    assert json.loads((ok / "summary.json").read_text())["confidence"] == "ok"
    with sqlite3.connect(ok / "changes.gpkg") as con:
        assert con.execute("select count(*), sum(low_confidence), count(reason) from changes").fetchone()[1:] == (0, 0)


def test_every_footprint_figure_carries_its_uncertainty(demo_report):
    out = demo_report
    rows = json.loads((out / "summary.json").read_text())["rows"]
    for r in rows:
        assert r["net_growth_uncertainty_m2"] > 0 and r["footprint_before_uncertainty_m2"] > 0
        assert r["confidence"] in ("ok", "low")
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert "net_growth_uncertainty_m2" in header and "confidence" in header
    page = (out / "index.html").read_text()
    assert page.count(" ± ") >= 3 * len(rows)
