"""OSCD benchmark: run :func:`campwatch.compare.compare_files` on each labelled OSCD city and score it.

A tool module: it finds the city folders under an OSCD root, compares ``imgs_1`` with
``imgs_2`` and reads ``cm/<city>-cm.tif`` (1 no change, 2 change) only afterwards, to
score the mask with :mod:`campwatch.bench.metrics`.  ``campwatch bench oscd`` pools the
counts over cities.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from campwatch.bench.metrics import Confusion, confusion, labels_to_bool
from campwatch.compare import compare_files
from campwatch.detect import ChangeResult
from campwatch.errors import InvalidSceneError
from campwatch.io import read_raster

__all__ = ["bench_oscd_city", "oscd_cities"]


def oscd_cities(root: str | os.PathLike[str]) -> list[Path]:
    """The labelled OSCD city folders under ``root`` (those with ``cm/<city>-cm.tif``)."""
    r = Path(root)
    if not r.is_dir():
        raise InvalidSceneError(f"{r}: no such folder; give the OSCD folder holding <city>/imgs_1, imgs_2 and cm/")
    cities = sorted(p for p in r.iterdir() if (p / "cm" / f"{p.name}-cm.tif").is_file()
                    and (p / "imgs_1").is_dir() and (p / "imgs_2").is_dir())
    if not cities:
        raise InvalidSceneError(f"{r}: no labelled OSCD city (<city>/cm/<city>-cm.tif with imgs_1/ and imgs_2/)")
    return cities


def bench_oscd_city(city: str | os.PathLike[str], **options: Any) -> tuple[Confusion, ChangeResult]:
    """Compare one OSCD city with ``options`` and score it against ``cm/<city>-cm.tif`` (1 no change, 2 change).

    The labels are read only after the comparison, to score it.  Pixels that are no data
    in the prediction count as predicted no change, so every labelled pixel is scored.
    """
    c = Path(city)
    result = compare_files(c / "imgs_1", c / "imgs_2", **options)
    labels, _ = read_raster(c / "cm" / f"{c.name}-cm.tif", grid=result.grid)
    truth, ok = labels_to_bool(labels)
    return confusion(result.mask == 1, truth, valid=ok), result
