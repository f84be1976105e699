"""Shared fixtures: the repo's sample tiles and ``../shared/data``.

Tests marked ``shared`` need ``../shared/data``. On a user's machine they skip when it is
missing; when ``CI`` is set they fail instead, so a CI run can never pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "sample_tiles"
SHARED = Path(os.environ.get("CAMPWATCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLE_CITIES = ("bercy", "paris", "rennes")


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skip without it, but fail under CI."""
    if not (SHARED / "README.md").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the shared data is missing at {SHARED}")
        pytest.skip(f"needs {SHARED} (the project's shared test data)")
    return SHARED


@pytest.fixture(autouse=True)
def _chdir_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Doctests and relative sample paths resolve from the repo root."""
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="session")
def low_confidence_report(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report on a VHR pair that compare flags LOW CONFIDENCE: xBD Joplin tile 0, with the after
    image's georeference moved 40 px (18 m) east after the fact, more than VHR mode corrects (22 px),
    so no shift model fits ("misregistration").  Built once per session (about 30 s): the report
    tests and the browser tests read the same folder."""
    import warnings

    import rasterio
    from rasterio.transform import Affine

    from campwatch.cli.main import main
    from campwatch.errors import CampwatchWarning

    tmp = tmp_path_factory.mktemp("low-confidence")
    img = shared_data / "vhr-xbd-joplin" / "images"
    post = tmp / "joplin-tornado_00000000_post_disaster.tif"
    with rasterio.open(img / post.name) as src:
        prof, data, tags = src.profile, src.read(), src.tags()
        prof["transform"] = src.transform * Affine.translation(40, 0)
    with rasterio.open(post, "w", **prof) as dst:
        dst.write(data)
        dst.update_tags(**tags)
    cfg = tmp / "jop.toml"
    cfg.write_text(f"""[[site]]
name = "Joplin tile 0"
scenes = [{{ path = "{img}/joplin-tornado_00000000_pre_disaster.tif" }},
          {{ path = "{post}" }}]
""")
    out = tmp / "r"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CampwatchWarning)
        assert main(["report", str(cfg), "-o", str(out), "--scheduler", "sync", "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``campwatch report examples/demo.toml`` (the three sample pairs), built once per session."""
    from campwatch.cli.main import main

    out = tmp_path_factory.mktemp("demo") / "r"
    assert main(["report", str(ROOT / "examples" / "demo.toml"), "-o", str(out), "--scheduler", "sync", "--quiet"]) == 0
    return out
