"""``campwatch aois list|show|check|export``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from campwatch import read_aoi_file
from campwatch.cli.main import main
from test_aoi import BAD_CASES, KWANLISO, write_case

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "campwatch", *args], capture_output=True, text=True, cwd=cwd,
                          env=env)


def test_list_table_shows_catalogue(capsys):
    assert main(["aois", "list"]) == 0
    out = capsys.readouterr().out
    for word in (*KWANLISO, "restricted-choma-bong", "kyohwaso-12", "sample-rennes", "approximate", "area km²"):
        assert word in out


def test_list_json_areas_are_geodesic(capsys):
    assert main(["aois", "list", "--json", "--no-samples"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert "sample-paris" not in rows and set(KWANLISO) <= set(rows)
    assert rows["kwanliso-15"]["area_km2"] == pytest.approx(378, rel=0.02)
    assert {r["geometry_quality"] for r in rows.values()} == {"approximate"}


def test_list_from_a_fresh_clone(tmp_path):
    """The committed catalogue alone is enough: clone HEAD, run from the clone's own sources."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("needs git and a git checkout to test a fresh clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "HEAD", "--", "src", "aois"], check=True)
    env = {k: v for k, v in os.environ.items() if k != "CAMPWATCH_AOIS"}
    env["PYTHONPATH"] = str(clone / "src")
    r = subprocess.run([sys.executable, "-c", "import campwatch.aoi as a; print(a.catalogue_dir()); "
                        "from campwatch.cli.main import main; raise SystemExit(main(['aois', 'list', '--json']))"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    first, rest = r.stdout.split("\n", 1)
    assert Path(first) == clone / "aois"
    assert set(KWANLISO) <= {row["id"] for row in json.loads(rest)}


def test_show_has_everything(capsys):
    assert main(["aois", "show", "Yodok"]) == 0
    out = capsys.readouterr().out
    for text in ("kwanliso-15", "요덕", "caveat:", "contested", "expected changes (8)", "38 housing units razed",
                 "2016-06-02 .. 2017-02-19", "sources (", "https://en.wikipedia.org/wiki/Yodok_concentration_camp",
                 "population_estimates", "46500", "status_detail", "coordinate_candidates", "EPSG:32652"):
        assert text in out, text


def test_show_unknown_is_one_line_exit_2():
    r = run("aois", "show", "yodock")
    assert r.returncode == 2
    assert r.stderr.startswith("error: unknown AOI 'yodock'") and "kwanliso-15" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_check_catalogue_is_clean():
    r = run("aois", "check", str(ROOT / "aois"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "" and "27 file(s) valid" in r.stderr


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_check_reports_bad_file_without_traceback(tmp_path, case, capsys):
    path, feature, reason = write_case(tmp_path, case)
    assert main(["aois", "check", str(path)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert any(line.startswith(f"{path}: feature {feature}: ") and reason in line for line in lines), lines
    assert "Traceback" not in captured.out + captured.err


def test_check_reports_every_problem_in_every_file(tmp_path):
    paths = [write_case(tmp_path, c)[0] for c in sorted(BAD_CASES)]
    good = ROOT / "aois" / "kwanliso-14.geojson"
    r = run("aois", "check", str(good), *map(str, paths))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == len(BAD_CASES)               # one problem per bad file, none for the good one
    assert {line.split(": feature ")[0] for line in lines} == {str(p) for p in paths}
    assert f"in {len(paths)} of {len(paths) + 1} file(s)" in r.stderr


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "kml"])
def test_export_atomic_and_refuses_existing(tmp_path, fmt):
    out = tmp_path / f"camps.{fmt}"
    assert main(["aois", "export", "15", "camp 22", "sample-bercy", "--format", fmt, "-o", str(out)]) == 0
    assert [a.id for a in read_aoi_file(out)] == ["kwanliso-15", "kwanliso-22", "sample-bercy"]
    before = out.read_bytes()
    r = run("aois", "export", "yodok", "-o", str(out), "--format", fmt)
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    assert out.read_bytes() == before
    assert main(["aois", "export", "yodok", "-o", str(out), "--format", fmt, "--overwrite"]) == 0
    assert [a.id for a in read_aoi_file(out)] == ["kwanliso-15"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_export_format_from_suffix(tmp_path):
    out = tmp_path / "one.gpkg"
    assert main(["aois", "export", "kwanliso-25", "-o", str(out)]) == 0
    import pyogrio

    assert pyogrio.read_info(out)["driver"] == "GPKG"
