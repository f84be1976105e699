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
