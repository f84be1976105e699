"""Bad values and hostile input never become a number, a traceback or an "internal error" (issue 21,
items 6-9): every option and config value is checked at parse time, write failures name the output,
remote sources and formula cells are refused, and reruns write the same bytes."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from campwatch.cli.main import main
from campwatch.params import InvalidParameterError

RENNES = "data/sample_tiles/rennes"
PAIR = [f"{RENNES}/imgs_1", f"{RENNES}/imgs_2"]


@pytest.mark.parametrize("option", [
    ["--threshold", "nan"], ["--threshold", "inf"], ["--threshold", "lots"], ["--alpha", "0"], ["--alpha", "2"],
    ["--alpha", "nan"], ["--opening", "-1"], ["--min-area", "-5"], ["--min-area", "nan"], ["--workers", "0"],
    ["--min-observed", "nan"], ["--min-observed", "1.5"],
])
def test_compare_refuses_bad_numbers_before_any_work(option, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compare", *PAIR, "-o", str(out), *option]) == 2
    err = capsys.readouterr().err
    assert option[0] in err and "internal error" not in err
    assert ("finite" in err or "range" in err or "give" in err) and not out.exists()


@pytest.mark.parametrize("option", [["--misregistration-px", "nan"], ["--misregistration-px", "-1"],
                                    ["--min-object-m2", "nan"], ["--max-cloud", "nan"], ["--min-valid", "inf"]])
def test_track_refuses_bad_numbers(option, tmp_path, capsys):
    assert main(["track", *PAIR, "-o", str(tmp_path / "t"), *option]) == 2
    err = capsys.readouterr().err
    assert option[0] in err and "internal error" not in err


@pytest.mark.parametrize("option", [["--max-shift", "-1"], ["--min-reliability", "5"], ["--max-shift", "nan"]])
def test_coregister_refuses_bad_numbers(option, capsys):
    assert main(["coregister", *PAIR, *option]) == 2
    assert option[0] in capsys.readouterr().err


def test_the_library_refuses_nan_too():
    from campwatch.compare import compare_files
    from campwatch.track import track

    with pytest.raises(InvalidParameterError, match="min_area_m2 = nan"):
        compare_files(*PAIR, min_area_m2=float("nan"))
    with pytest.raises(InvalidParameterError, match="misregistration_px = nan"):
        track(PAIR, misregistration_px=float("nan"))


def _cfg(tmp_path, options: str, date: str = '"2017-06-21"') -> Path:
    root = Path(RENNES).resolve()
    p = tmp_path / "c.toml"
    p.write_text(f"""[options]
{options}
[[site]]
name = "a"
scenes = [{{ path = "{root}/imgs_1" }}, {{ path = "{root}/imgs_2", date = {date} }}]
""")
    return p


@pytest.mark.parametrize(("options", "expect"), [
    ('method = "bogus"', "choose one of"), ('min_area_m2 = "lots"', "is not a number"),
    ('coregister = "no"', "is not a boolean"), ('structures = 1', "is not a boolean"),
    ('min_area_m2 = nan', "not a finite number"), ('threshold = "nan"', "not a finite number"),
    ('threshold = "fixed"', "needs value"), ('min_observed_fraction = 2.0', "out of range"),
])
def test_report_config_has_one_schema(options, expect, tmp_path, capsys):
    assert main(["report", str(_cfg(tmp_path, options)), "-o", str(tmp_path / "r"), "--scheduler", "sync",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert expect in err and "internal error" not in err and not (tmp_path / "r").exists()


def test_a_toml_datetime_is_refused_at_parse_time(tmp_path, capsys):
    cfg = _cfg(tmp_path, "", date="2017-06-21T10:00:00")
    assert main(["report", str(cfg), "-o", str(tmp_path / "r"), "--scheduler", "sync", "--quiet"]) == 2
    assert "date = 2017-06-21" in capsys.readouterr().err


def _limited(limit_bytes: int):
    def pre() -> None:  # a full disk for this process: writes past the limit fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return pre


@pytest.mark.parametrize("limit", [20_000, 300_000])
@pytest.mark.parametrize("command", ["compare", "report"])
def test_a_full_disk_names_the_output_and_replaces_nothing(command, limit, tmp_path):
    out = tmp_path / "out"
    args = ([*PAIR] if command == "compare" else ["examples/demo.toml", "--scheduler", "sync", "--quiet"])
    r = subprocess.run([sys.executable, "-m", "campwatch", command, *args, "-o", str(out)], preexec_fn=_limited(limit),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert f"{out} could not be written" in r.stderr and "internal error" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no .part left


def test_a_read_only_output_folder_is_refused_before_the_work(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = False
    if os.geteuid() == 0:  # root writes through file modes: use a read-only file system instead
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(ro)]).returncode == 0
        assert mounted, "could not mount a read-only tmpfs as root"
    else:
        ro.chmod(0o555)
    try:
        assert main(["compare", *PAIR, "-o", str(ro / "x")]) == 2
        err = capsys.readouterr().err
        assert "is not writable" in err and "internal error" not in err
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=True)
        ro.chmod(0o755)


def test_an_existing_file_as_output_is_refused(tmp_path, capsys):
    f = tmp_path / "evidence.jpg"
    f.write_bytes(b"x")
    assert main(["compare", *PAIR, "-o", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err and f.read_bytes() == b"x"


# ---- 7. security -------------------------------------------------------------------------------------
def test_a_vrt_with_a_remote_source_is_refused(tmp_path, capsys):
    band = next(Path(RENNES, "imgs_1").glob("*B04*")).resolve()
    vrt = tmp_path / "scene.vrt"
    vrt.write_text(f"""<VRTDataset rasterXSize="10" rasterYSize="10">
  <VRTRasterBand dataType="UInt16" band="1"><SimpleSource>
    <SourceFilename relativeToVRT="0">/vsicurl/http://127.0.0.1:9/x.tif</SourceFilename><SourceBand>1</SourceBand>
  </SimpleSource></VRTRasterBand>
  <VRTRasterBand dataType="UInt16" band="2"><SimpleSource>
    <SourceFilename relativeToVRT="0">{band}</SourceFilename><SourceBand>1</SourceBand>
  </SimpleSource></VRTRasterBand>
</VRTDataset>""")
    assert main(["info", str(vrt)]) == 2
    assert "is remote" in capsys.readouterr().err
    nested = tmp_path / "outer.vrt"
    nested.write_text(vrt.read_text().replace("/vsicurl/http://127.0.0.1:9/x.tif", "scene.vrt")
                      .replace('relativeToVRT="0">scene.vrt', 'relativeToVRT="1">scene.vrt'))
    assert main(["compare", str(nested), f"{RENNES}/imgs_2", "-o", str(tmp_path / "o")]) == 2
    assert "is remote" in capsys.readouterr().err


def test_report_links_only_http_and_neutralises_formulas(tmp_path):
    from shapely.geometry import box, mapping

    from campwatch.io import read_scene

    g = read_scene(f"{RENNES}/imgs_1", bands=["red"]).grid
    from rasterio.warp import transform_bounds

    left, top = g.transform * (0, 0)
    right, bottom = g.transform * (g.width, g.height)
    w, s, e, n = transform_bounds(g.crs, "EPSG:4326", left, bottom, right, top)
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "id": "=HYPERLINK(\"http://evil\",\"x\")", "name": "camp",
        "sources": [{"title": "click me", "url": "javascript:alert(1)"},
                    {"title": "HRNK", "url": "https://www.hrnk.org/"}]},
        "geometry": mapping(box(w, s, e, n))}]}))
    root = Path(RENNES).resolve()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""[[site]]
name = "=1+1"
aoi = "{aoi}"
scenes = [{{ path = "{root}/imgs_1" }}, {{ path = "{root}/imgs_2" }}]
""")
    out = tmp_path / "r"
    assert main(["report", str(cfg), "-o", str(out), "--scheduler", "sync", "--quiet"]) == 0
    page = (out / "index.html").read_text()
    assert "javascript:" not in page and 'href="https://www.hrnk.org/"' in page
    csv_text = (out / "summary.csv").read_text()
    assert "\n'=1+1," in csv_text and "'=HYPERLINK" in csv_text


# ---- 8. user text never reaches rich as markup ---------------------------------------------------------
@pytest.mark.filterwarnings("ignore::campwatch.errors.CampwatchWarning")
def test_a_site_name_with_brackets_does_not_lose_the_batch(tmp_path):
    root = Path(RENNES).resolve()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""[[site]]
name = "Camp [/bold] 15"
scenes = [{{ path = "{root}/imgs_1" }}, {{ path = "{tmp_path}/missing" }}]
[[site]]
name = "ok"
scenes = [{{ path = "{root}/imgs_1" }}, {{ path = "{root}/imgs_2" }}]
""")
    out = tmp_path / "r"
    r = subprocess.run([sys.executable, "-m", "campwatch", "report", str(cfg), "-o", str(out), "--scheduler", "sync"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "Camp [/bold] 15" in r.stderr and "MarkupError" not in r.stderr
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert [row["status"] for row in rows] == ["failed", "ok"]


# ---- 9. reruns write the same bytes --------------------------------------------------------------------
def test_geopackages_and_geojson_are_byte_identical_on_rerun(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["compare", *PAIR, "-o", str(out)]) == 0
    for name in ("changes.gpkg", "structures.geojson"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    stamp = sqlite3.connect(a / "changes.gpkg").execute("select last_change from gpkg_contents").fetchone()[0]
    assert stamp.startswith("2017-06-21")  # the later acquisition date, not the clock
    assert json.loads((a / "structures.geojson").read_text())["name"] == "structures"
    t = tmp_path / "t"
    assert main(["track", *PAIR, "--aoi", "sample-rennes", "-o", str(t)]) == 0
    (gj,) = t.glob("growth_*.geojson")
    assert json.loads(gj.read_text())["name"] == gj.stem


# ---- 10. smaller -----------------------------------------------------------------------------------------
def test_a_plain_polygon_file_takes_its_stem_as_id(tmp_path):
    import warnings

    from campwatch.aoi import resolve_aoi
    from campwatch.errors import AOIDefaultIdWarning

    p = tmp_path / "my camp.geojson"
    p.write_text(json.dumps({"type": "Polygon", "coordinates": [[[-1.68, 48.10], [-1.64, 48.10], [-1.64, 48.12],
                                                                 [-1.68, 48.12], [-1.68, 48.10]]]}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aoi = resolve_aoi(str(p))
    assert aoi.id == "my-camp" and any(issubclass(w.category, AOIDefaultIdWarning) for w in caught)
    r = subprocess.run([sys.executable, "-m", "campwatch", "compare", *PAIR, "--aoi", str(p), "-o", str(tmp_path / "o"),
                        "--no-structures"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "using the file name, id 'my-camp'" in r.stderr
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["aoi"]["id"] == "my-camp"


def test_evaluate_refuses_a_band_as_a_prediction(capsys):
    band = next(Path(RENNES, "imgs_1").glob("*B04*"))
    assert main(["evaluate", str(band), f"{RENNES}/cm/rennes-cm.tif"]) == 2
    assert "not a change mask" in capsys.readouterr().err


def test_korean_site_names_get_distinct_anchors_and_their_glyphs(tmp_path):
    import warnings

    root = Path(RENNES).resolve()
    cfg = tmp_path / "k.toml"
    cfg.write_text(f"""[[site]]
name = "요덕 15"
aoi = "sample-rennes"
scenes = [{{ path = "{root}/imgs_1" }}, {{ path = "{root}/imgs_2" }}]
[[site]]
name = "화성 16"
aoi = "sample-rennes"
scenes = [{{ path = "{root}/imgs_1" }}, {{ path = "{root}/imgs_2" }}]
""")
    from campwatch.report import read_config, run_report, write_report

    run = run_report(read_config(cfg), scheduler="sync")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of every glyph its fonts lack
        write_report(run, tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_text()
    assert 'id="요덕-15"' in page and 'id="화성-16"' in page and 'href="#요덕-15"' in page


def test_a_truncated_band_is_named(tmp_path, capsys):
    folder = tmp_path / "imgs_1"
    shutil.copytree(Path(RENNES, "imgs_1"), folder)
    band = next(folder.glob("*B04*"))
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])
    assert main(["info", str(folder)]) == 2
    err = capsys.readouterr().err
    assert band.name in err and "truncated" in err
