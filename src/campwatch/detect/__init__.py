"""Change detection: where two co-registered dates differ in a way that matters.

Pure package: arrays and :class:`~campwatch.scene.Scene` objects in, a :class:`ChangeResult`
out; it never opens a file.  One module per job, each importing only the ones before it:

1. :mod:`campwatch.detect.components` — a window's hits, bit-packed masks (:class:`BitRows`),
   connected components and the minimum mapping unit (:class:`Components`, :class:`HitMask`,
   :func:`clean_mask`), the region peak (:func:`region_peak`, :func:`region_seeds`);
2. :mod:`campwatch.detect.methods` — the change-score methods (``method=``: their global fit,
   a window's score, the threshold, the ``params`` block) and, in its docstring, why the default
   is what it is, measured on the labelled OSCD cities;
3. :mod:`campwatch.detect.confirm` — the deep confirmation of the default's regions
   (:func:`confirm_regions`);
4. :mod:`campwatch.detect.passes` — the passes over the windows of a :class:`WindowSource`
   (:func:`run_passes`), in memory (:class:`SceneWindows`, :func:`detect_change`) or streamed;

and :mod:`campwatch.detect.quicklook` (true-colour composites and the change overlay).  Every
name below is importable as ``campwatch.detect.<name>``.
"""

from __future__ import annotations

from campwatch.detect.components import (
    COMPONENT_STRIP,
    NODATA,
    REGION_PEAK_SIGMA,
    BitRows,
    Components,
    HitMask,
    WindowChange,
    clean_mask,
    inner_slices,
    region_peak,
    region_seeds,
    score_hits,
    threshold_open,
    to_mask,
    window_core,
    window_hits,
    window_slices,
)
from campwatch.detect.confirm import DEEP_CONFIRMED, DEEP_HALO, DEEP_TILE, DeepStats, confirm_regions, deep_stats
from campwatch.detect.methods import (
    FIT_ALL_PIXELS,
    FIT_INSET,
    FIT_WINDOW,
    METHOD_BANDS,
    METHODS,
    MIN_VALID_FRACTION,
    FitContext,
    Method,
    WindowSource,
    changed_area_m2,
    check_method,
    choose_threshold,
    detect_window,
    detection_bands,
    detection_params,
    fit_context,
    fit_windows,
    increase_mask,
    new_histogram,
    resolve_threshold,
    score_halo,
    warn_low_valid,
    window_score,
)
from campwatch.detect.passes import ChangeResult, Passes, SceneWindows, change_figures, detect_change, run_passes
from campwatch.detect.quicklook import QUICKLOOK_LEGEND, change_overlay, rgb_composite

__all__ = ["ChangeResult", "detect_change", "Method", "METHODS", "METHOD_BANDS", "clean_mask",
           "rgb_composite", "NODATA", "MIN_VALID_FRACTION", "Components", "fit_windows", "threshold_open", "change_overlay",
           "QUICKLOOK_LEGEND", "REGION_PEAK_SIGMA", "region_peak", "region_seeds", "FitContext", "window_slices",
           "WindowChange", "detect_window", "window_hits", "to_mask", "change_figures", "check_method",
           "BitRows", "HitMask", "Passes", "SceneWindows", "score_hits", "WindowSource", "inner_slices", "run_passes",
           # also used by campwatch.engine, campwatch.compare and the docs (not in the curated list before the split)
           "COMPONENT_STRIP", "DEEP_CONFIRMED", "DEEP_HALO", "DEEP_TILE", "DeepStats", "FIT_ALL_PIXELS", "FIT_INSET",
           "FIT_WINDOW", "changed_area_m2", "choose_threshold", "confirm_regions", "deep_stats", "detection_bands",
           "detection_params", "fit_context", "increase_mask", "new_histogram", "resolve_threshold", "score_halo",
           "warn_low_valid", "window_core", "window_score"]
