import json
import subprocess
import sys

import pytest

from campwatch.cli.main import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "campwatch", *args], capture_output=True, text=True)


def test_info_json_lists_13_common_names(samples, capsys):
    assert main(["info", "--json", str(samples / "paris" / "imgs_1")]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert [b["name"] for b in desc["bands"]][:4] == ["coastal", "blue", "green", "red"]
    assert len(desc["bands"]) == 13 and desc["date"] == "2016-11-30" and desc["crs"] == "EPSG:4326"


def test_info_table(samples):
    r = run("info", str(samples / "rennes" / "imgs_1"))
    assert r.returncode == 0
    for name in ("swir16", "nir08", "rededge3", "2015-08-21", "EPSG:4326"):
        assert name in r.stdout


def test_info_piped_keeps_long_paths_whole(samples, tmp_path):
    """Not on a terminal, a narrow COLUMNS must not break a path mid-name (issue 20)."""
    import os
    import shutil

    deep = tmp_path / ("a-long-folder-name-for-a-camp-acquisition-" * 2) / "imgs_1"
    shutil.copytree(samples / "rennes" / "imgs_1", deep)
    r = subprocess.run([sys.executable, "-m", "campwatch", "info", str(deep)], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "40"})
    assert r.returncode == 0, r.stderr
    assert str(deep) in r.stdout.splitlines()[0]


@pytest.mark.parametrize("kind", ["missing", "not-raster", "empty-folder", "mixed-folder"])
def test_bad_input_one_line_exit_2(tmp_path, kind):
    path = tmp_path / kind
    if kind == "not-raster":
        path = tmp_path / "notes.txt"
        path.write_text("hello")
    elif kind == "empty-folder":
        path.mkdir()
    elif kind == "mixed-folder":
        path.mkdir()
        (path / "a.tif").write_bytes(b"II*\x00garbage")
        (path / "b.tif").write_bytes(b"II*\x00garbage")
        (path / "readme.txt").write_text("x")
    r = run("info", str(path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and path.name in lines[0]
    assert "Traceback" not in r.stderr
    debug = run("--debug", "info", str(path))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and "campwatch" in r.stdout
    for cmd in ([], ["info"]):
        h = run(*cmd, "--help")
        assert h.returncode == 0 and "Usage" in h.stdout
