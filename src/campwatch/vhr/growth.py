"""Stage 5 of VHR mode: growth classes per building (new, demolished, expanded, shrunk,
unchanged) from both dates' buildings, the change score and the rubble test, as polygons
with counts: :func:`vhr_change` runs every stage."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import ndimage

from campwatch.coregister import coregister_local
from campwatch.errors import CampwatchWarning, GridMismatchError, MisregistrationWarning
from campwatch.grid import Grid
from campwatch.scene import Scene
from campwatch.vectorize import mask_to_polygons
from campwatch.vhr.buildings import building_objects
from campwatch.vhr.change import (
    PAIR_SEGMENT_M2,
    pair_segments,
    segment_mean,
    smoothed_grey,
    structure_similarity,
    tolerant_difference,
)
from campwatch.vhr.common import GROWTH_CLASSES, SMALL_DEMOLITION_M2, otsu_cut, to_px
from campwatch.vhr.deep import deep_change
from campwatch.vhr.normalise import normalise_to, rgb_stack
from campwatch.vhr.rubble import debris_objects, deep_confirmed

__all__ = ["COARSE_VHR_M", "VHRChangeResult", "VHRLowConfidenceWarning", "add_rubble", "classify_buildings",
           "drop_same_structure", "vhr_change"]

#: Above this pixel size (m) a VHR result is flagged low-confidence and its change mask also holds
#: pixel change (Otsu on the score): a 20 m² house is under 20 px there.  Measured on DSIFN (~2 m)
#: and SZTAKI AirChange (1.5 m), building objects alone recalled 4-8% of the change (``docs/vhr.md``).
COARSE_VHR_M = 1.0


class VHRLowConfidenceWarning(CampwatchWarning):
    """A VHR change result carries low-confidence flags (see ``VHRChangeResult.flags``)."""


@dataclass(frozen=True, eq=False)
class VHRChangeResult:
    """Building-level change between two VHR dates, on the BEFORE grid.

    Attributes
    ----------
    grid : Grid
        BEFORE's grid; every array below is on it.
    score : (M, N) float32 ndarray
        Tolerant colour difference after normalisation, smoothed over ~2 m.
    threshold : float
        Global Otsu threshold on ``score`` (or the one given).
    mask : (M, N) bool ndarray
        Pixels of new, demolished, expanded or shrunk polygons: building change.  On pixels
        coarser than :data:`COARSE_VHR_M` also the pixel change, attributed to no building: the
        segments (:func:`pair_segments`) where the mean of three kinds of evidence, each over its
        scene's Otsu cut (``params["pixel_change_threshold"]``, ``"raw_change_threshold"``,
        ``"deep_change_threshold"``), is above 1.
    buildings_before, buildings_after : (M, N) int32 ndarray
        Building object labels per date (0 = none).
    growth : GeoDataFrame
        One polygon per building change, columns ``growth_class`` (one of
        :data:`GROWTH_CLASSES`), ``area_m2`` (geodesic), ``changed_fraction``,
        ``low_confidence`` and ``reason``, plus :func:`campwatch.vectorize.mask_to_polygons`'s.
    counts : dict
        Number of buildings per growth class.
    flags : list of str
        Scene-level low-confidence flags, each a sentence naming the value that tripped it.
    params, coregistration, normalisation : dict
        Provenance of the run.
    """

    grid: Grid
    score: np.ndarray
    threshold: float
    mask: np.ndarray
    buildings_before: np.ndarray
    buildings_after: np.ndarray
    growth: gpd.GeoDataFrame
    counts: dict[str, int]
    flags: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    coregistration: dict[str, Any] = field(default_factory=dict)
    normalisation: dict[str, Any] = field(default_factory=dict)

    @property
    def low_confidence(self) -> bool:
        return bool(self.flags)

    def sentence(self) -> str:
        """A report line, such as ``"14 buildings demolished, 6 built, 2 expanded, 0 shrunk"``."""
        c = self.counts

        def n(k: int) -> str:
            return f"{k} building{'s' if k != 1 else ''}"

        return (f"{n(c['demolished'])} demolished, {c['new']} built, {c['expanded']} expanded, "
                f"{c['shrunk']} shrunk, {c['unchanged']} unchanged")

    def summary(self) -> dict[str, Any]:
        """JSON-ready record: counts, areas per class, flags and provenance (no pixels)."""
        g = self.growth
        area = {k: round(float(g.loc[g["growth_class"] == k, "area_m2"].sum()), 1) for k in GROWTH_CLASSES}
        return {
            "mode": "vhr",
            "sentence": self.sentence(),
            "counts": dict(self.counts),
            "area_m2": area,
            "changed_fraction": round(float(self.mask.mean()), 6),
            "threshold": round(float(self.threshold), 6),
            "buildings_before": int(self.buildings_before.max()),
            "buildings_after": int(self.buildings_after.max()),
            "low_confidence": self.low_confidence,
            "flags": list(self.flags),
            "low_confidence_polygons": int(g["low_confidence"].sum()) if len(g) else 0,
            "pixel_size_m": round(self.grid.pixel_size_m(), 3),
            "params": dict(self.params),
            "coregistration": dict(self.coregistration),
            "normalisation": dict(self.normalisation),
        }


def _object_fractions(labels: np.ndarray, *masks: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pixel count per label and, for each mask, the fraction of each label's pixels in it."""
    n = int(labels.max()) + 1
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n)
    fracs = [np.bincount(flat, weights=m.ravel().astype(np.float64), minlength=n) / np.maximum(counts, 1)
             for m in masks]
    return counts, fracs


def _polygons(labels: np.ndarray, grid: Grid, growth_class: str, changed: np.ndarray,
              low: dict[int, str]) -> gpd.GeoDataFrame:
    gdf = mask_to_polygons(labels > 0, grid, labels=labels, values={"changed": changed.astype(np.float32)})
    gdf = gdf.rename(columns={"mean_changed": "changed_fraction"})
    gdf.insert(0, "growth_class", growth_class)
    gdf["reason"] = [low.get(int(i), "") for i in gdf["object_id"]]
    gdf["low_confidence"] = gdf["reason"] != ""
    return gdf


def classify_buildings(lab_b: np.ndarray, lab_a: np.ndarray, changed: np.ndarray, valid: np.ndarray, *,
                       pixel_size_m: float, tolerance_m: float = 0.5, min_fraction: float = 0.2,
                       whole_fraction: float = 0.7, lost_fraction: float = 0.7, min_area_m2: float = 20.0,
                       ) -> tuple[dict[str, np.ndarray], dict[str, dict[int, str]], np.ndarray, np.ndarray]:
    """Post-classification comparison: each date's buildings against the changed pixels and
    the other date's buildings (:func:`vhr_change` gives the rules and the parameters).

    Returns
    -------
    parts : dict
        Per growth class, an (M, N) int32 label image (ids of ``lab_b`` or ``lab_a``).
    low : dict
        Per growth class, ``{object id: reason}`` of the low-confidence objects.
    near_a : (M, N) bool ndarray
        Within ``tolerance_m`` of a building of the second date.
    touches_gap : (M, N) bool ndarray
        Within ``tolerance_m`` of the image edge or of an invalid pixel.
    """
    px = pixel_size_m
    near = to_px(tolerance_m, px, minimum=1)
    near_b = ndimage.binary_dilation(lab_b > 0, iterations=near)
    near_a = ndimage.binary_dilation(lab_a > 0, iterations=near)
    edge = np.zeros(valid.shape, bool)
    edge[:near, :], edge[-near:, :], edge[:, :near], edge[:, -near:] = True, True, True, True
    touches_gap = ndimage.binary_dilation(~valid | edge, iterations=near)

    empty = np.zeros(valid.shape, np.int32)
    parts: dict[str, np.ndarray] = {k: empty.copy() for k in GROWTH_CLASSES}
    low: dict[str, dict[int, str]] = {k: {} for k in GROWTH_CLASSES}
    min_px = min_area_m2 / px**2

    def reason_for(gap_frac: float, other_near_frac: float, frac: float) -> str:
        why = []
        if other_near_frac >= 0.3 and frac >= whole_fraction:
            why.append("a building stands here on both dates: re-roofed or replaced cannot be told apart")
        if gap_frac > 0:
            why.append("touches the image edge or invalid pixels")
        return "; ".join(why)

    # after-date objects: new (whole) or expanded (changed part)
    counts_a, (chg_a, old_a, gap_a) = _object_fractions(lab_a, changed, near_b, touches_gap)
    for i in range(1, counts_a.size):
        if chg_a[i] < min_fraction:
            continue
        if old_a[i] < 0.3 or chg_a[i] >= whole_fraction:  # nothing there before, or all of it changed
            parts["new"][lab_a == i] = i
            r = reason_for(gap_a[i], old_a[i], chg_a[i])
            if r:
                low["new"][i] = r
        else:
            part = (lab_a == i) & changed & ~near_b
            if part.sum() >= min_px:
                parts["expanded"][part] = i
                if gap_a[i] > 0:
                    low["expanded"][i] = "touches the image edge or invalid pixels"
    # before-date objects: demolished (whole), shrunk (changed part) or unchanged
    counts_b, (chg_b, new_b, gap_b) = _object_fractions(lab_b, changed, near_a, touches_gap)
    for i in range(1, counts_b.size):
        if chg_b[i] < min_fraction:
            parts["unchanged"][lab_b == i] = i
            continue
        if (new_b[i] < 0.3 and chg_b[i] >= lost_fraction) or chg_b[i] >= whole_fraction:
            parts["demolished"][lab_b == i] = i
            r = reason_for(gap_b[i], new_b[i], chg_b[i])
            if r:
                low["demolished"][i] = r
        elif new_b[i] < 0.3:
            parts["unchanged"][lab_b == i] = i
            low["unchanged"][i] = "not found on the second date, but its colour barely changed"
        else:
            part = (lab_b == i) & changed & ~near_a
            if part.sum() >= min_px:
                parts["shrunk"][part] = i
                if gap_b[i] > 0:
                    low["shrunk"][i] = "touches the image edge or invalid pixels"
            else:
                parts["unchanged"][lab_b == i] = i

    return parts, low, near_a, touches_gap


def drop_same_structure(parts: dict[str, np.ndarray], low: dict[str, dict[int, str]], lab_b: np.ndarray,
                        before: np.ndarray, after: np.ndarray, *, pixel_size_m: float, max_similarity: float,
                        grey: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Drop, in place, each new, demolished, expanded or shrunk building (or part) whose grey
    levels over it and a 2 m rim correlate with the other date's at ``max_similarity`` or more
    (:func:`structure_similarity`): the same structure on both dates, its outline, ridge and
    shadow in place, whatever the colour balance.  A dropped before-date building is unchanged."""
    px, xb, xa_n = pixel_size_m, before, after
    for k in ("new", "demolished", "expanded", "shrunk"):
        if not parts[k].any():
            continue
        same = structure_similarity(parts[k], xb, xa_n, pixel_size_m=px, grey=grey) >= max_similarity
        same[0] = False
        if not same.any():
            continue
        drop = same[parts[k]]
        if k in ("demolished", "shrunk"):  # a before-date building still standing
            for i in np.unique(parts[k][drop]):
                parts["unchanged"][lab_b == i] = i
                low["unchanged"].pop(int(i), None)
        parts[k][drop] = 0
        for j in np.flatnonzero(same):
            low[k].pop(int(j), None)


def add_rubble(parts: dict[str, np.ndarray], low: dict[str, dict[int, str]], lab_b: np.ndarray, lab_d: np.ndarray,
               touches_gap: np.ndarray, *, pixel_size_m: float, min_area_m2: float) -> None:
    """Add, in place, the rubble test's segments (``lab_d`` from :func:`debris_objects`) to the
    demolished class, where no demolished or shrunk building already covers half of one.
    Segments less than about 1 m apart are one demolition (one ``object_id``, one count); each
    is low-confidence, with a reason saying it is a segment and not a detected building."""
    px = pixel_size_m
    min_px = min_area_m2 / px**2
    taken = (parts["demolished"] > 0) | (parts["shrunk"] > 0)
    counts_d, (taken_d, gap_d) = _object_fractions(lab_d, taken, touches_gap)
    rubble = np.zeros(lab_d.shape, np.int32)
    small = counts_d < min_px  # from the small-object test
    for i in range(1, counts_d.size):
        if counts_d[i] == 0 or taken_d[i] >= 0.5:
            continue
        part = (lab_d == i) & ~taken
        if part.sum() >= (SMALL_DEMOLITION_M2 / px**2 if small[i] else min_px):
            rubble[part] = i
    # segments less than about 1 m apart are one demolition: a roof cut by its ridge shadow,
    # a tree or a strip of lawn is one building (one object_id, one count, a MultiPolygon)
    where = rubble > 0
    comp = ndimage.label(ndimage.binary_dilation(where, iterations=to_px(0.5, px)))[0][where]
    segs = rubble[where]
    offset = int(lab_b.max())
    parts["demolished"][where] = offset + comp
    nc = int(comp.max()) + 1 if comp.size else 1
    regular = np.bincount(comp, weights=~small[segs], minlength=nc) > 0
    gap = np.bincount(comp, weights=gap_d[segs] > 0, minlength=nc) > 0
    n_segs = np.bincount(np.unique(np.stack([comp, segs]), axis=1)[0], minlength=nc)
    for c in np.unique(comp):
        if regular[c]:
            why = "roof-like before, rubble-like texture after"
        else:
            why = "small compact object before, its outline and cast shadow gone after"
        what = "segment" if n_segs[c] == 1 else f"{n_segs[c]} segments"
        why += f" ({what}, not a detected building"
        why += ")" if regular[c] else "; under the building size, may be a car or clutter)"
        if gap[c]:
            why += "; touches the image edge or invalid pixels"
        low["demolished"][offset + int(c)] = why



def vhr_change(before: Scene, after: Scene, *, coregister: bool = True, tolerance_m: float = 0.5,
               smooth_m: float = 2.0, threshold: float | None = None, min_fraction: float = 0.2,
               whole_fraction: float = 0.7, lost_fraction: float = 0.7, min_area_m2: float = 20.0, building_threshold: float = 0.45,
               min_shadow_fraction: float = 0.12, debris: bool = True,
               max_similarity: float = 0.6, otsu_fraction: float = 0.5,
               rubble: Mapping[str, Any] | None = None) -> VHRChangeResult:
    """Building-level change between two sub-metre RGB(N) dates, with growth classes.

    Parameters
    ----------
    before, after : Scene
        Two VHR dates on one grid (read ``after`` with ``grid=before.grid``).
    coregister : bool
        Fit and correct a shift model of ``after`` (local shifts over a grid of windows,
        a translation or affine transform by RANSAC, :func:`campwatch.coregister.coregister_local`)
        before comparing.
    tolerance_m : float
        Shifts up to this are forgiven pixel by pixel (:func:`tolerant_difference`):
        residual misregistration and the lean of a house seen from another angle.
    smooth_m : float
        Box filter on the difference before thresholding.
    threshold : float, optional
        Change threshold on the score; by default ``otsu_fraction`` (a half) of Otsu's
        threshold over all valid pixels (one global histogram).  Otsu's cut alone misses grey roofs built on grey
        soil, whose colour barely changes; the building logic below supplies the rest.
    min_fraction, whole_fraction : float
        A building on one date with no building within ``tolerance_m`` on the other
        (post-classification comparison) is new or demolished when at least
        ``min_fraction`` of its pixels changed colour.  One that overlaps a building on
        the other date is new or demolished only when ``whole_fraction`` changed (and
        flagged low-confidence: re-roofed and rebuilt look alike), otherwise its changed
        part outside the other date's building is expanded or shrunk.
    lost_fraction : float
        ``min_fraction`` for demolition: a building missing on the second date must also
        have changed colour over this share of its footprint, because the per-date
        detector misses buildings (odd roof colours, tree cover) more often than it
        invents them.
    min_area_m2, building_threshold, min_shadow_fraction : float
        Passed to :func:`building_objects` for both dates; ``min_area_m2`` also to
        :func:`debris_objects` (below it, only its small-object test applies).
    debris : bool
        Also report as demolished the roof-like segments of the first date, of any roof
        colour, that turned into rubble-like texture and hold no building on the second
        date (:func:`debris_objects`), each confirmed by its mean deep change above the scene's
        Otsu cut (:func:`deep_confirmed`; ``params["rubble_deep_confirmation"]``).  The per-date
        building detector misses most brown and red roofs, so without this test few destroyed
        houses are found.
    max_similarity : float
        A new, demolished, expanded or shrunk building (or part) whose grey levels, over it
        and a 2 m rim, correlate with the other date's at least this much
        (:func:`structure_similarity`) is the same structure on both dates: it is dropped
        (a before-date building is then unchanged).  This removes roofs that only changed
        colour under the other date's colour balance and that the per-date detector saw on
        one date only.  1 turns the test off.  Not applied to the rubble test.

    Returns
    -------
    VHRChangeResult

    Examples
    --------
    >>> from affine import Affine
    >>> from campwatch.grid import Grid
    >>> g = Grid((120, 120), Affine(0.5, 0, 500000, 0, -0.5, 4000000), "EPSG:32652")
    >>> d0 = np.full((3, 120, 120), 25.0, np.float32); d0[1] = 100; d0[:, 5:15, 5:115] = 90  # grass, a path
    >>> d1 = d0.copy(); d1[:, 30:60, 30:60] = 128; d1[:, 60:66, 30:60] = 5               # a new roof, its shadow
    >>> v = np.ones((120, 120), bool)
    >>> r = vhr_change(Scene(d0, ("red", "green", "blue"), g, v), Scene(d1, ("red", "green", "blue"), g, v),
    ...                coregister=False)
    >>> r.counts["new"], r.counts["demolished"], bool(r.mask[45, 45]), bool(r.mask[100, 100])
    (1, 0, True, False)
    """
    if not before.grid.same_as(after.grid):
        raise GridMismatchError(f"vhr_change needs both dates on one grid; before is {before.grid}, after is "
                                f"{after.grid}; read the second date with read_scene(..., grid=before.grid)")
    px = before.grid.pixel_size_m()
    if px >= 5.0:
        raise ValueError(f"vhr_change needs sub-5 m pixels, but {before.label} has {px:.1f} m pixels; "
                         "use the Sentinel-2 / Landsat change detection (campwatch compare) instead")
    flags: list[str] = []
    coarse = px > COARSE_VHR_M
    if coarse:
        flags.append(f"pixels of {px:.1f} m: the building detector needs sub-metre pixels (a 20 m² house is "
                     f"{20 / px**2:.0f} px here), so building counts are unreliable; the change mask also holds "
                     "pixel change (the colour score, the raw colour difference and a pretrained network's feature "
                     "change, each over the scene's own Otsu cut, averaging above 1 over segments of about "
                     f"{PAIR_SEGMENT_M2:.0f} m²), not attributed to any building "
                     "(docs/vhr.md); check every figure by eye")
    shift_record: dict[str, Any] = {}
    if coregister:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MisregistrationWarning)
            after, shift = coregister_local(before, after, max_shift_px=max(10.0, 10.0 / px))
        shift_record = shift.to_dict()
        for w in caught:
            if issubclass(w.category, MisregistrationWarning):
                flags.append(f"misregistration: {w.message}")
            else:  # pragma: no cover - re-raise anything else
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        residual = shift.residual_px if shift.applied and shift.residual_px is not None else 0.0
        if residual * px > tolerance_m:
            flags.append(f"residual shift {residual * px:.2f} m exceeds the {tolerance_m:g} m tolerance; "
                         "expect false change along building edges")
    valid = before.valid & after.valid
    xb, xa = rgb_stack(before), rgb_stack(after)
    xa_n, fit = normalise_to(xb, xa, valid)
    gains = np.asarray(fit["gain"])
    if np.any(gains > 1.5) or np.any(gains < 1 / 1.5):
        flags.append(f"colour balance differs strongly between dates (band gains {np.round(gains, 2).tolist()}); "
                     "different sensors or seasons, change of roof colour is less certain")
    radius = to_px(tolerance_m, px, minimum=0)
    score = tolerant_difference(xb[:3], xa_n[:3], radius_px=radius)
    score = ndimage.uniform_filter(score, size=to_px(smooth_m, px) | 1, mode="nearest")
    score = np.where(valid, score, 0.0).astype(np.float32)
    otsu = otsu_cut(score[valid])
    if threshold is None:
        threshold = otsu_fraction * otsu
    changed = (score > threshold) & valid
    # at coarse pixels buildings are a few pixels each and the object logic misses most change:
    # report the pixel change too, so detection degrades to a pixel method instead of going silent.
    # Three kinds of evidence, each in units of the scene's own Otsu cut of it: the score above, the
    # plain colour difference of the pair before normalisation (which a wrong normalisation cannot
    # flatten) and the change of a pretrained network's features (deep_change). Their mean is averaged
    # over segments of both dates (pair_segments); a segment changed when that is above 1
    pixel_cut = raw_cut = deep_cut = None
    rubble_record: dict[str, int] | None = None
    pixel_change = np.zeros(valid.shape, bool)
    deep: np.ndarray | None = None
    if coarse:
        deep = deep_change(xb, xa, valid)
        deep_cut = otsu_cut(deep[valid])
        raw = np.sqrt(np.square(np.nan_to_num(xa[:3] - xb[:3])).sum(axis=0))
        pixel_cut, raw_cut = otsu, otsu_cut(raw[valid])
        evidence = (score / max(pixel_cut, 1e-9) + raw / max(raw_cut, 1e-9) + deep / max(deep_cut, 1e-9)) / 3
        segments = pair_segments(xb, xa_n, valid, pixel_size_m=px)
        pixel_change = (segment_mean(evidence, segments, valid) > 1.0) & valid

    kw = {"pixel_size_m": px, "threshold": building_threshold, "min_area_m2": min_area_m2,
          "min_shadow_fraction": min_shadow_fraction}
    lab_b = building_objects(xb, before.valid, **kw)
    lab_a = building_objects(xa, after.valid, **kw)
    # shadows: dark in one date only, over a large share of the scene, means other sun or season
    vb, va = xb[:3].mean(axis=0), xa_n[:3].mean(axis=0)
    dark_cut = np.percentile(vb[valid], 20) if valid.any() else 0.0
    shadow_change = float(((vb < dark_cut) != (va < dark_cut))[valid].mean()) if valid.any() else 0.0
    if shadow_change > 0.35:
        flags.append(f"shadows differ on {shadow_change:.0%} of the scene (sun angle or season); "
                     "changes next to tall objects are less certain")

    parts, low, near_a, touches_gap = classify_buildings(
        lab_b, lab_a, changed, valid, pixel_size_m=px, tolerance_m=tolerance_m, min_fraction=min_fraction,
        whole_fraction=whole_fraction, lost_fraction=lost_fraction, min_area_m2=min_area_m2)
    # both dates' smoothed grey levels, made once for every similarity test below
    grey = smoothed_grey(xb, xa_n, pixel_size_m=px) if max_similarity < 1.0 or debris else None
    if max_similarity < 1.0:
        drop_same_structure(parts, low, lab_b, xb, xa_n, pixel_size_m=px, max_similarity=max_similarity, grey=grey)
    if debris:
        # roof-like segments of any colour that became rubble, where no building stands after
        lab_d = debris_objects(xb, xa_n, valid, pixel_size_m=px, exclude=near_a, grey=grey,
                               **{"min_area_m2": min_area_m2, **(rubble or {})})
        # each rubble segment must also have changed in a pretrained network's features: its mean
        # deep change above the scene's own Otsu cut of it (the 10 m default confirms its regions
        # the same way). The network runs only when the test found a segment.
        if lab_d.any():
            if deep is None:
                deep = deep_change(xb, xa, valid)
                deep_cut = otsu_cut(deep[valid])
            lab_d, rubble_record = deep_confirmed(lab_d, deep / max(deep_cut or 0.0, 1e-9), valid)
        else:
            rubble_record = {"segments": 0, "confirmed": 0}
        add_rubble(parts, low, lab_b, lab_d, touches_gap, pixel_size_m=px, min_area_m2=min_area_m2)
    empty = np.zeros(valid.shape, np.int32)
    frames = [_polygons(parts[k], before.grid, k, changed, low[k]) for k in GROWTH_CLASSES]
    frames = [f for f in frames if len(f)]
    if frames:
        growth = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=before.grid.crs)
    else:
        growth = _polygons(empty, before.grid, "unchanged", changed, {})
    counts = {k: int(np.unique(parts[k][parts[k] > 0]).size) for k in GROWTH_CLASSES}
    mask = (parts["new"] > 0) | (parts["demolished"] > 0) | (parts["expanded"] > 0) | (parts["shrunk"] > 0) | pixel_change
    params = {"tolerance_m": tolerance_m, "smooth_m": smooth_m, "threshold": threshold, "min_fraction": min_fraction,
              "whole_fraction": whole_fraction, "lost_fraction": lost_fraction, "min_area_m2": min_area_m2, "building_threshold": building_threshold,
              "min_shadow_fraction": min_shadow_fraction, "coregister": coregister, "debris": debris,
              "max_similarity": max_similarity, "otsu_fraction": otsu_fraction, "pixel_change_threshold": pixel_cut,
              "raw_change_threshold": raw_cut, "deep_change_threshold": deep_cut,
              "pixel_change_segment_m2": PAIR_SEGMENT_M2 if coarse else None, "rubble": dict(rubble or {}),
              "rubble_deep_confirmation": rubble_record}
    return VHRChangeResult(before.grid, score, float(threshold), mask & valid, lab_b, lab_a, growth, counts,
                           flags, params, shift_record, fit)
