"""Evaluation and benchmarks: scores against reference labels, kept out of the pipeline stages.

- :mod:`campwatch.bench.metrics` (pure): confusion counts and the metrics built on them
  (precision, recall, F1, IoU, kappa, overall accuracy), behind ``campwatch evaluate``.
- :mod:`campwatch.bench.oscd`: ``compare`` on each labelled OSCD city, scored
  (``campwatch bench oscd``).
- :mod:`campwatch.bench.vhr`: VHR mode and the naive baseline on LEVIR-CD and xBD
  (``campwatch bench vhr``).

A tool package: ``oscd`` and ``vhr`` run the stages and read named files, and no stage
imports them.  ``metrics`` is pure (numpy and :mod:`campwatch.errors`), so the view may
use it too.  The names of ``oscd`` and ``vhr`` are loaded on first use (:pep:`562`), so
``import campwatch`` and ``campwatch.bench.metrics`` do not pull in ``compare`` or the
VHR readers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from campwatch.bench.metrics import Confusion, confusion, labels_to_bool, require_change_mask

if TYPE_CHECKING:
    from campwatch.bench.oscd import bench_oscd_city, oscd_cities
    from campwatch.bench.vhr import (
        LevirPair,
        XbdPair,
        corner_residual,
        format_protocol,
        format_report,
        known_warp,
        levir_pairs,
        pixel_scores,
        read_xbd_pair,
        run_bench,
        run_levir,
        run_protocol,
        run_unlabelled,
        run_xbd,
        transform_error,
        vhr_datasets,
        xbd_building_scores,
        xbd_buildings,
        xbd_pairs,
        xbd_roof_corners,
    )

__all__ = [
    "Confusion",
    "confusion",
    "labels_to_bool",
    "require_change_mask",
    "bench_oscd_city",
    "oscd_cities",
    "LevirPair",
    "XbdPair",
    "corner_residual",
    "format_protocol",
    "format_report",
    "known_warp",
    "levir_pairs",
    "pixel_scores",
    "read_xbd_pair",
    "run_bench",
    "run_levir",
    "run_protocol",
    "run_unlabelled",
    "run_xbd",
    "transform_error",
    "vhr_datasets",
    "xbd_building_scores",
    "xbd_buildings",
    "xbd_pairs",
    "xbd_roof_corners",
]


#: Re-exported names loaded on first use, and the submodule each lives in.
_LAZY = {
    **dict.fromkeys(("bench_oscd_city", "oscd_cities"), "campwatch.bench.oscd"),
    **dict.fromkeys(("LevirPair", "XbdPair", "corner_residual", "format_protocol", "format_report", "known_warp",
                     "levir_pairs", "pixel_scores", "read_xbd_pair", "run_bench", "run_levir", "run_protocol",
                     "run_unlabelled", "run_xbd", "transform_error", "vhr_datasets", "xbd_building_scores",
                     "xbd_buildings", "xbd_pairs", "xbd_roof_corners"), "campwatch.bench.vhr"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
