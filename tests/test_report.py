import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

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

    polys = gpd.read_file(out / "changes.gpkg")
    assert set(polys["class"]) >= {"change"} and (polys["site"] == "Rennes <b>&</b>").all()


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
