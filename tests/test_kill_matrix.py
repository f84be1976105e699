"""The kill matrix of issue 21: ``compare``, ``track`` and ``report`` are stopped by SIGKILL or
SIGINT at several points of a run, with and without ``--overwrite``.  Afterwards the output
folder is either the previous complete run or the new complete one, never a mixture, and a
rerun after a SIGKILL completes and leaves nothing behind (no ``.part``, ``.old`` or ``.lock``).

Real processes (``python -m campwatch``) on the sample tiles; each point is reached by watching
the files the run writes, so the kill lands where it says.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from campwatch.io import OUTPUT_MARKER

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RENNES = ROOT / "data" / "sample_tiles" / "rennes"


def _report_config(tmp: Path, new: bool) -> Path:
    p = tmp / f"cfg-{'new' if new else 'old'}.toml"
    p.write_text(f"""[options]
{'threshold = "fixed"' if new else 'threshold = "auto"'}
{'value = 20.0' if new else ''}
[[site]]
name = "Rennes"
aoi = "sample-rennes"
scenes = [{{ path = "{RENNES}/imgs_1" }}, {{ path = "{RENNES}/imgs_2" }}]
[[site]]
name = "Paris"
aoi = "sample-paris"
scenes = [{{ path = "{ROOT}/data/sample_tiles/paris/imgs_1" }}, {{ path = "{ROOT}/data/sample_tiles/paris/imgs_2" }}]
""")
    return p


def _args(tool: str, out: Path, variant: str, tmp: Path) -> list[str]:
    """The command of run ``variant`` ('old' or 'new': they differ in a parameter the outputs record)."""
    if tool == "compare":
        return ["compare", str(RENNES / "imgs_1"), str(RENNES / "imgs_2"), "-o", str(out),
                *(["--threshold", "20"] if variant == "new" else [])]
    if tool == "track":
        return ["track", str(RENNES / "imgs_1"), str(RENNES / "imgs_2"), "--aoi", "sample-rennes", "-o", str(out),
                *(["--misregistration-px", "1.5"] if variant == "new" else [])]
    return ["report", str(_report_config(tmp, variant == "new")), "-o", str(out),
            "--scheduler", "sync", "--quiet"]


#: Files each tool's folder holds when complete, and the ones whose appearance (inside the
#: temporary folder) marks the kill points "mid" and "late".
EXPECTED = {
    "compare": ({"change_mask.tif", "change_score.tif", "changes.gpkg", "summary.json", "quicklook.png",
                 "structures.geojson"}, "changes.gpkg", "summary.json"),
    "track": ({"timeline.csv", "timeline.json", "footprint.png", "growth_2015-08-21_2017-06-21.gpkg",
               "growth_2015-08-21_2017-06-21.geojson"}, "timeline.csv", "footprint.png"),
    "report": ({"index.html", "summary.json", "summary.csv", "changes.gpkg", "manifest.json", "assets",  # assets/leaflet
                "map-1-1-before.png", "map-1-1-after.png", "map-2-1-before.png", "map-2-1-after.png"}, "summary.csv",
               "index.html"),
}


def _run_variant(tool: str, folder: Path) -> str:
    """Which run wrote this complete folder ('old' or 'new'), read from the parameters it records."""
    if tool == "compare":
        value = json.loads((folder / "summary.json").read_text())["threshold"]["value"]
        return "new" if value == 20 else "old"
    if tool == "track":
        m = json.loads((folder / "timeline.json").read_text())["parameters"]["misregistration_px"]
        return "new" if m == 1.5 else "old"
    thresholds = [r["threshold"] for r in json.loads((folder / "summary.json").read_text())["rows"]]
    new = json.loads((folder / "manifest.json").read_text())["parameters"]["value"] == 20.0
    assert [t == 20.0 for t in thresholds] == [new] * len(thresholds), thresholds  # summary and manifest agree
    return "new" if new else "old"


def _hashes(folder: Path) -> dict[str, str]:
    """Every file in the folder and its subfolders (the report's assets/), by path inside it."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_complete(tool: str, folder: Path) -> str:
    names = {p.name for p in folder.iterdir()}
    expected, _, _ = EXPECTED[tool]
    assert names == expected | {OUTPUT_MARKER}, sorted(names ^ (expected | {OUTPUT_MARKER}))
    return _run_variant(tool, folder)


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def _reached(parent: Path, name: str, point: str, tool: str) -> bool:
    parts = list(parent.glob(f".{name}.part-*"))
    if point == "start":
        return bool(parts)
    _, mid, late = EXPECTED[tool]
    wanted = mid if point == "mid" else late
    return any((p / wanted).exists() for p in parts if p.is_dir())


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """A complete 'old' folder of each tool, to copy for the --overwrite cases."""
    base = tmp_path_factory.mktemp("previous")
    out = {}
    for tool in EXPECTED:
        folder = base / tool
        r = subprocess.run([sys.executable, "-m", "campwatch", *_args(tool, folder, "old", base)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert _check_complete(tool, folder) == "old"
        out[tool] = folder
    return out


@pytest.mark.parametrize("overwrite", [False, True], ids=["new-folder", "overwrite"])
@pytest.mark.parametrize("point", ["start", "mid", "late"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("tool", ["compare", "track", "report"])
def test_a_killed_run_leaves_the_old_or_the_new_folder(tool, sig, point, overwrite, previous, tmp_path):
    out = tmp_path / "out"
    old = None
    if overwrite:
        shutil.copytree(previous[tool], out)
        old = _hashes(out)
    cmd = [sys.executable, "-m", "campwatch", *_args(tool, out, "new", tmp_path), *(["--overwrite"] if overwrite else [])]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    killed = False
    while proc.poll() is None and time.monotonic() < deadline:
        if _reached(tmp_path, "out", point, tool):
            proc.send_signal(sig)
            killed = True
            break
        time.sleep(0.003)
    _, err = proc.communicate(timeout=300)
    if killed and sig == signal.SIGINT and proc.returncode not in (0, 130):
        pytest.fail(f"SIGINT ended {tool} with exit {proc.returncode}: {err}")
    if not killed:  # the run ended before the point was seen: only "late" may be missed that way
        assert point == "late" and proc.returncode == 0, (point, proc.returncode, err)
    # the folder is the previous complete one or the new complete one, never a mixture
    if out.exists():
        variant = _check_complete(tool, out)
        if variant == "old":
            assert _hashes(out) == old
    else:
        assert not overwrite, "the previous folder was lost"
    if sig == signal.SIGINT:  # an interrupted run cleans up after itself
        assert _leftovers(tmp_path, "out") == []
        return
    # a rerun after SIGKILL completes and clears what the killed run left
    rerun = subprocess.run([*cmd, *(["--overwrite"] if out.exists() and not overwrite else [])], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert _check_complete(tool, out) == "new"
    assert _leftovers(tmp_path, "out") == []
