"""Compare two dates: the tool layer behind ``campwatch compare``.

- :func:`compare_scenes` (pure): cloud masks, co-registration, AOI mask, then
  :func:`campwatch.detect.detect_change`.
- :func:`read_pair` / :func:`compare_files`: read BEFORE (its grid is the output grid;
  for Sentinel-2 the 10 m grid) and AFTER aligned onto it by georeferencing.
- :func:`build_summary` makes the ``summary.json`` dict in one place, so later blocks
  (structures, provenance) are added there.
- :func:`write_compare_outputs` writes ``change_mask.tif`` (uint8: 1 change, 0 no
  change, 255 no data), ``change_score.tif`` (float32), ``changes.gpkg`` (layer
  ``changes``; with structures also ``structures`` and, at 10 m, ``objects_before`` and
  ``objects_after``, in the schema of :mod:`campwatch.layers`, with their QGIS styles),
  ``structures.geojson`` (the ``structures`` rows in EPSG:4326), ``summary.json`` and
  ``quicklook.png``, in one folder swapped in atomically, refusing existing outputs
  unless ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from campwatch._version import __version__
from campwatch.aoi import resolve_aoi
from campwatch.coregister import coregister as _coregister
from campwatch.detect import (
    METHOD_BANDS,
    NODATA,
    QUICKLOOK_LEGEND,
    ChangeResult,
    Method,
    change_overlay,
    detect_change,
    rgb_composite,
    to_mask,
)
from campwatch.errors import DateOrderError
from campwatch.io import (
    atomic_dir,
    atomic_path,
    open_source,
    read_scene,
    read_source,
    scene_grid,
    vector_stamp,
    write_json,
    write_layers,
    write_raster,
    write_vector,
)
from campwatch.layers import structure_layers, to_layer
from campwatch.masks import MIN_OBSERVED_FRACTION, aoi_mask, coverage, mask_clouds, require_coverage
from campwatch.params import check_all
from campwatch.plot import quicklook_png as render_quicklook
from campwatch.scene import Scene
from campwatch.structures import footprint_growth
from campwatch.threshold import Histogram, ThresholdChoice, ThresholdMethod
from campwatch.vectorize import mask_to_polygons
from campwatch.vhr import vhr_change

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "FLAG_COVERAGE",
    "NO_COREGISTER_NOTE",
    "OUTPUTS",
    "aoi_mask",
    "bands_for_method",
    "build_summary",
    "clouds_block",
    "date_block",
    "compare_files",
    "compare_scenes",
    "changes_layer",
    "confidence_columns",
    "histogram_summary",
    "pair_flags",
    "pair_params",
    "summary_head",
    "with_coverage",
    "result_flags",
    "quicklook",
    "quicklook_panels",
    "quicklook_png",
    "read_pair",
    "write_compare_outputs",
]

OUTPUTS = ("change_mask.tif", "change_score.tif", "changes.gpkg", "summary.json", "quicklook.png")
#: Written beside them when ``result.structures`` is set.
STRUCTURE_OUTPUTS = ("structures.geojson",)

#: A pair whose observed share of the AOI is below this is low confidence (partial coverage: its
#: figures describe only the observed part); below ``min_observed_fraction`` it has no figures.
FLAG_COVERAGE = 0.9


def pair_flags(summary: dict[str, Any]) -> list[str]:
    """Why a compared pair is LOW CONFIDENCE (empty: ok), from its summary (``build_summary``,
    ``compare_streaming``'s, or ``ChangeResult.summary()`` with ``params``).

    - VHR mode's own flags (``summary["structures"]["flags"]``);
    - a shift estimate that was not trusted (``coregistration.flagged``: unreliable, too
      large to correct, or no local model fits), so the dates may be misregistered;
    - an observed share of the AOI below :data:`FLAG_COVERAGE`.

    The same reasons go into the report's badge and into every ``changes`` polygon's
    ``reason`` and ``low_confidence`` columns.

    Examples
    --------
    >>> pair_flags({"coverage": {"observed_fraction": 0.5}})
    ['only 50% of the area observed on both dates']
    >>> pair_flags({"coregistration": {"flagged": False}, "coverage": {"observed_fraction": 1.0}})
    []
    """
    out = [str(f) for f in (summary.get("structures") or {}).get("flags") or []]
    shift = summary.get("coregistration") or {}
    if shift.get("flagged") and not any(str(shift.get("reason")) in f for f in out):
        out.append(f"misregistration: {shift.get('reason')}")
    cov = summary.get("coverage") or (summary.get("params") or {}).get("coverage") or {}
    if cov.get("observed_fraction") is not None and cov["observed_fraction"] < FLAG_COVERAGE:
        out.append(f"only {cov['observed_fraction']:.0%} of the area observed on both dates")
    return list(dict.fromkeys(out))


def result_flags(result: ChangeResult) -> list[str]:
    """:func:`pair_flags` of a :class:`~campwatch.detect.ChangeResult` (before its summary is built)."""
    g = result.structures.summary() if result.structures is not None else None
    return pair_flags({"structures": g, "coregistration": result.coregistration, "params": result.params})


def confidence_columns(reasons: list[str]) -> dict[str, Any]:
    """The ``low_confidence`` and ``reason`` columns every ``changes`` polygon of a pair carries,
    from its :func:`pair_flags` (joined by "; "; None when ok)."""
    return {"low_confidence": bool(reasons), "reason": "; ".join(reasons) or None}


def changes_layer(polygons: gpd.GeoDataFrame, summary: dict[str, Any], **kw: Any) -> gpd.GeoDataFrame:
    """The ``changes`` layer of a pair: ``polygons`` with the :func:`pair_flags` of ``summary`` on every row.

    ``summary`` gains ``polygons``, ``confidence`` ("ok" or "low") and ``confidence_reasons``; ``kw`` are
    :func:`campwatch.layers.to_layer`'s (site, dates)."""
    reasons = pair_flags(summary)
    layer = to_layer(polygons.assign(**confidence_columns(reasons)), "changes", **kw)
    summary.update(polygons=len(layer), confidence="low" if reasons else "ok", confidence_reasons=reasons)
    return layer


def _is_sentinel2(scene: Scene) -> bool:
    return scene.profile.startswith("sentinel2")


def _is_vhr(scene: Scene) -> bool:
    """Sub-metre to few-metre imagery, where buildings are the unit (VHR mode)."""
    return scene.grid.pixel_size_m() < 5.0


def _compare_vhr(before: Scene, after: Scene, *, coregister: bool, aoi: Any) -> ChangeResult:
    """VHR mode: :func:`campwatch.vhr.vhr_change`, reported as a :class:`ChangeResult`.

    The building growth result (:class:`campwatch.vhr.VHRChangeResult`) travels in ``structures``.
    """
    valid = before.valid & after.valid
    if aoi is not None:
        valid &= aoi_mask(getattr(aoi, "geometry", aoi), before.grid)
    vr = vhr_change(before, after, coregister=coregister)
    mask = to_mask(vr.mask, valid)
    score = np.where(valid, vr.score, np.float32(np.nan)).astype(np.float32)
    finite = score[np.isfinite(score)]
    hist = Histogram.linear(0.0, float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
    hist.add(finite)
    area = before.grid.pixel_area_m2()
    changed = float(((mask == 1) * area).sum())
    params = {"mode": "vhr", "vhr": vr.summary(), "coregister": coregister,
              "aoi": None if aoi is None else {"id": getattr(aoi, "id", None),
                                               "geometry_quality": getattr(aoi, "geometry_quality", None)}}
    threshold = ThresholdChoice(float(vr.threshold), "vhr-otsu", {}, "VHR mode: half of Otsu's cut on the "
                                "tolerant colour difference, then building-level growth logic (campwatch.vhr)")
    return ChangeResult(score, mask, before.grid, "vhr", threshold, hist, float(valid.mean()), changed,
                        coregistration=vr.coregistration or None, params=params, structures=vr)


def compare_scenes(before: Scene, after: Scene, *, method: Method = "default",
                   threshold: ThresholdMethod | Literal["auto"] = "auto", value: float | None = None,
                   alpha: float = 1e-6, min_area_m2: float = 200.0, opening_radius: int = 0,
                   increase_only: bool = False, coregister: bool = True, clouds: bool | None = None,
                   aoi: Any = None, window_size: int | None = 512, structures: bool = False,
                   min_observed_fraction: float = MIN_OBSERVED_FRACTION, deep_confirm: bool = True) -> ChangeResult:
    """Compare two aligned scenes.

    Parameters
    ----------
    before, after : Scene
        On one grid (read ``after`` with ``grid=before.grid``); outputs are on it.
    method, threshold, value, alpha, min_area_m2, opening_radius, increase_only, window_size :
        See :func:`campwatch.detect.detect_change`.
    coregister : bool
        Estimate and correct a shift of ``after`` (``campwatch.coregister``); the
        estimate goes into the result either way.
    clouds : bool or None
        Mask clouds with :func:`campwatch.masks.mask_clouds`.  None: on for Sentinel-2
        scenes read without an L2A SCL band.
    aoi : AOI or shapely geometry (EPSG:4326), optional
        Pixels outside it become no data (255).
    structures : bool
        Also measure built-up footprint growth (:func:`campwatch.structures.footprint_growth`)
        on the same cloud-masked, co-registered scenes; it lands in ``result.structures``.
        It uses AFTER's pixels as read (not the co-registration resampling, which smooths the
        texture evidence), so ``compare`` and ``track`` give the same footprint for a date;
        the misregistration that enters its significance test is then the estimated shift.
        An object's growth counts as significant only where the change detector confirms it
        (see ``change`` in :func:`campwatch.structures.growth_between`).
    deep_confirm : bool
        The default method keeps a change region only where a pretrained network's features
        changed too (:func:`campwatch.detect.confirm_regions`); False skips that step (about
        1 s per megapixel and date; the summary says it was skipped).
    min_observed_fraction : float
        The share of the AOI's own geodesic area (of BEFORE's grid without an AOI) that must be
        observed on both dates; below it :class:`~campwatch.errors.InsufficientDataError` is
        raised instead of any figure.  The measured coverage is ``params["coverage"]``.

    Returns
    -------
    ChangeResult
        ``params`` records clouds, AOI and co-registration choices.

    Raises
    ------
    InsufficientDataError
        Less than ``min_observed_fraction`` of the AOI is observed on both dates.
    DateOrderError
        BEFORE's acquisition date is later than AFTER's (the change would read backwards).

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> b = read_scene("data/sample_tiles/bercy/imgs_1")
    >>> r = compare_scenes(b, b)
    >>> r.changed_area_m2, r.coregistration["applied"]
    (0.0, False)
    """
    check_all(alpha=alpha, value=value, min_area_m2=min_area_m2, opening_radius=opening_radius,
              min_observed_fraction=min_observed_fraction)
    require_date_order(before.date, after.date, before=_source_label(before), after=_source_label(after))
    if _is_vhr(before) and method == "default":
        result = _compare_vhr(before, after, coregister=coregister, aoi=aoi)
    else:
        result = _compare_10m(before, after, method=method, threshold=threshold, value=value, alpha=alpha,
                              min_area_m2=min_area_m2, opening_radius=opening_radius, increase_only=increase_only,
                              coregister=coregister, clouds=clouds, aoi=aoi, window_size=window_size,
                              structures=structures, deep_confirm=deep_confirm)
    cov = coverage(result.mask != NODATA, result.grid, aoi=aoi)
    require_coverage(cov, min_fraction=min_observed_fraction,
                     what=f"{_label(before)} -> {_label(after)}")
    return dataclasses.replace(result, params=with_coverage(result.params, cov,
                                                            min_observed_fraction=min_observed_fraction))


def with_coverage(params: dict[str, Any], coverage: dict[str, Any], *, min_observed_fraction: float) -> dict[str, Any]:
    """``params`` with the measured ``coverage`` and the ``min_observed_fraction`` it was held to
    (the last blocks of a compared pair's ``params``, in memory and streamed)."""
    return {**params, "coverage": coverage, "min_observed_fraction": min_observed_fraction}


def pair_params(detection: dict[str, Any], *, clouds: dict[str, Any], aoi: dict[str, Any] | None, coregister: bool,
                extra: dict[str, Any]) -> dict[str, Any]:
    """A compared pair's ``params`` before its coverage (:func:`with_coverage`): the detector's
    (:func:`campwatch.detect.detection_params`), then the clouds, AOI and co-registration choices
    and ``extra`` (why the cloud test ran or not), in memory and streamed."""
    return {**detection, "clouds": clouds, "aoi": aoi, "coregister": coregister, **extra}


def clouds_block(masked: bool, *, before_fraction: float | None = None, after_fraction: float | None = None,
                 test: Any = None) -> dict[str, Any]:
    """``params["clouds"]`` and ``summary.json``'s ``clouds``: whether the cloud test ran and,
    when it did, each date's flagged fraction and the test's description."""
    info: dict[str, Any] = {"masked": bool(masked)}
    if masked:
        info.update(before_fraction=before_fraction, after_fraction=after_fraction, test=test)
    return info


def require_date_order(before_date: Any, after_date: Any, *, before: str, after: str) -> None:
    """Raise :class:`~campwatch.errors.DateOrderError` when both dates are known and BEFORE is the later.

    ``before`` and ``after`` name the inputs in the message.
    """
    if before_date is not None and after_date is not None and before_date > after_date:
        raise DateOrderError(f"BEFORE {before} is dated {before_date}, after AFTER {after} ({after_date}): "
                             "growth would read as shrinkage; swap BEFORE and AFTER (or correct the dates)")


def _source_label(scene: Scene) -> str:
    return str(Path(scene.sources[0]).parent if len(scene.sources) > 1 else scene.sources[0]) if scene.sources else "scene"


def _label(scene: Scene) -> str:
    """A scene as messages name it: its date, else its first file."""
    if scene.date is not None:
        return scene.date.isoformat()
    return str(scene.sources[0]) if scene.sources else "scene"


def _compare_10m(before: Scene, after: Scene, *, method: Method, threshold: ThresholdMethod | Literal["auto"],
                 value: float | None, alpha: float, min_area_m2: float, opening_radius: int, increase_only: bool,
                 coregister: bool, clouds: bool | None, aoi: Any, window_size: int | None,
                 structures: bool, deep_confirm: bool = True) -> ChangeResult:
    """:func:`compare_scenes` for the spectral detectors (every method but VHR mode)."""
    extra: dict[str, Any] = {}
    if clouds is None:
        clouds, extra["clouds_reason"] = default_clouds(_is_sentinel2(before), "scl_masked_fraction" in before.meta)
    if clouds:
        before = mask_clouds(before)
        after = mask_clouds(after)
    cloud_info = clouds_block(bool(clouds), before_fraction=before.meta.get("cloud_fraction"),
                              after_fraction=after.meta.get("cloud_fraction"), test=before.meta.get("cloud_test"))
    for name, s in (("before", before), ("after", after)):
        if "scl_masked_fraction" in s.meta:
            cloud_info[f"{name}_scl_masked_fraction"] = s.meta["scl_masked_fraction"]
    shift_dict: dict[str, Any] | None = None
    observed_after = after  # structures use unresampled pixels (texture), as track does
    if coregister:
        after, shift = _coregister(before, after)
        shift_dict = shift.to_dict()
    valid = None
    aoi_info: dict[str, Any] | None = None
    if aoi is not None:
        geom = getattr(aoi, "geometry", aoi)
        valid = aoi_mask(geom, before.grid)
        aoi_info = {"id": getattr(aoi, "id", None), "geometry_quality": getattr(aoi, "geometry_quality", None),
                    "inside_fraction": round(float(valid.mean()), 6),
                    "note": "pixels outside the AOI polygon are no data (255)"}
    result = detect_change(before, after, method=method, threshold=threshold, value=value, alpha=alpha,
                           min_area_m2=min_area_m2, opening_radius=opening_radius, increase_only=increase_only,
                           valid=valid, window_size=window_size, deep_confirm=deep_confirm)
    params = pair_params(result.params, clouds=cloud_info, aoi=aoi_info, coregister=coregister, extra=extra)
    growth = None
    if structures:
        misreg = 0.5
        if shift_dict is not None:
            misreg = max(0.5, math.hypot(shift_dict["dx_px"], shift_dict["dy_px"]))
        growth = footprint_growth(before, observed_after, aoi=aoi, misregistration_px=misreg,
                                  change=result.mask == 1)
    return dataclasses.replace(result, coregistration=shift_dict if coregister else None, params=params,
                               structures=growth)


def bands_for_method(method: str) -> list[str] | None:
    """Bands to read: those the method and the cloud test need (None: all, for naive-cva/cva/irmad)."""
    if method in ("naive-cva", "cva", "irmad"):
        return None
    need = ["blue", "green", "red", "nir", "swir16", "cirrus", *METHOD_BANDS[method]]
    return list(dict.fromkeys(need))


def read_pair(before_path: str | os.PathLike[str], after_path: str | os.PathLike[str], *, aoi: Any = None,
              method: str = "default", profile: str | None = None,
              band_map: dict[str, int] | None = None) -> tuple[Scene, Scene, Any]:
    """Read BEFORE (cut to the AOI if given) and AFTER onto BEFORE's grid.

    ``aoi`` is a catalogue id or alias, an AOI file, an :class:`~campwatch.aoi.AOI` or a
    shapely geometry in EPSG:4326.  Returns ``(before, after, aoi_object)``.
    """
    if isinstance(aoi, str):
        aoi = resolve_aoi(aoi)
    geom = getattr(aoi, "geometry", aoi)
    wanted = bands_for_method(method)
    src = open_source(before_path, profile=profile, bands=band_map)
    bands = None if wanted is None else [b for b in wanted if b in src.keys]
    before = read_source(src, scene_grid(src, aoi=geom), bands=bands)  # read_scene without opening it again
    after = read_scene(after_path, grid=before.grid, bands=list(before.bands), profile=profile, band_map=band_map)
    return before, after, aoi


def compare_files(before_path: str | os.PathLike[str], after_path: str | os.PathLike[str], *, aoi: Any = None,
                  profile: str | None = None, band_map: dict[str, int] | None = None,
                  **options: Any) -> ChangeResult:
    """:func:`read_pair` then :func:`compare_scenes` (``options`` are its keywords).

    Examples
    --------
    >>> r = compare_files("data/sample_tiles/rennes/imgs_1", "data/sample_tiles/rennes/imgs_2")
    >>> r.grid.shape, r.mask.dtype.name
    ((339, 563), 'uint8')
    """
    before, after, aoi_obj = read_pair(before_path, after_path, aoi=aoi, method=options.get("method", "default"),
                                       profile=profile, band_map=band_map)
    return compare_scenes(before, after, aoi=aoi_obj, **options)


def build_summary(result: ChangeResult, *, before: Scene, after: Scene,
                  polygons: int | None = None) -> dict[str, Any]:
    """The ``summary.json`` dict: figures, method, threshold, validity, co-registration, inputs.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> b = read_scene("data/sample_tiles/rennes/imgs_1", bands=["blue", "green", "red", "nir"])
    >>> s = build_summary(compare_scenes(b, b, coregister=False, clouds=False), before=b, after=b)
    >>> s["changed_area_m2"], s["coregistration"]
    (0.0, None)
    """
    s = summary_head(result.summary(), coregistration_note=NO_COREGISTER_NOTE if result.coregistration is None else None,
                     histogram=histogram_summary(result.histogram, valid_pixels=result.histogram.total),
                     before={**date_block(before.date, before.profile, list(before.sources)),
                             "valid_fraction": round(before.valid_fraction, 6)},
                     after={**date_block(after.date, after.profile, list(after.sources)),
                            "valid_fraction": round(after.valid_fraction, 6)})
    if polygons is not None:
        s["polygons"] = polygons
    s["limitations"] = limitations(result.grid)
    s["campwatch_version"] = __version__
    return s


def summary_head(figures: dict[str, Any], *, coregistration_note: str | None, histogram: dict[str, Any],
                 before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The opening blocks of a pair's ``summary.json``, in memory and streamed: the figures
    (:func:`campwatch.detect.change_figures`), the co-registration note (when given), the
    histogram, each date's block (:func:`date_block`), then the clouds, AOI and coverage blocks
    of the figures' ``params``."""
    s = dict(figures)
    if coregistration_note is not None:
        s["coregistration_note"] = coregistration_note
    s["histogram"] = histogram
    s["before"] = before
    s["after"] = after
    for key in ("clouds", "aoi", "coverage"):
        s[key] = s["params"].get(key)
    return s


def date_block(date: Any, profile: str, sources: list[str]) -> dict[str, Any]:
    """``summary.json``'s ``before`` or ``after`` block: the date, sensor profile and files read."""
    return {"date": date.isoformat() if date else None, "profile": profile, "sources": sources}


#: ``summary.json``'s ``coregistration_note`` when the shift was not estimated.
NO_COREGISTER_NOTE = "not estimated (--no-coregister)"


def histogram_summary(hist: Histogram, *, valid_pixels: int) -> dict[str, Any]:
    """``summary.json``'s ``histogram`` block: bins, range and the valid pixels scored."""
    return {"bins": len(hist.counts), "range": [float(hist.edges[0]), float(hist.edges[-1])],
            "valid_pixels": valid_pixels}


def default_clouds(sentinel2: bool, scl: bool) -> tuple[bool, str]:
    """Whether the spectral cloud test runs by default, and why: on Sentinel-2 without an SCL band."""
    on = sentinel2 and not scl
    return on, ("default for Sentinel-2 without SCL" if on else "off: not Sentinel-2, or an SCL band already masked clouds")


def limitations(grid: Any) -> list[str]:
    """The limitations every change summary states."""
    return [
        f"pixels are {grid.pixel_size_m():.1f} m: structures smaller than about two pixels are not resolved",
        "change means spectral change beyond the noise of the no-change pixels; it is not a building count",
        "areas are geodesic (WGS84) sums of pixel areas",
    ]


def quicklook(before: Scene, after: Scene, result: ChangeResult) -> np.ndarray:
    """(M, 3N, 3) uint8: before, after, and after with change in red (no data grey)."""
    return quicklook_panels(before, after, result.mask == 1, result.mask == NODATA)


def quicklook_panels(before: Scene, after: Scene, change: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """(M, 3N, 3) uint8: the three quicklook panels side by side, from the two dates (whole, or
    decimated by the streaming engine) and the (M, N) change and no-data masks."""
    rb, ra = rgb_composite(before), rgb_composite(after)
    return np.concatenate([rb, ra, change_overlay(ra, change, nodata)], axis=1)


def quicklook_titles(before_date: Any, after_date: Any) -> list[str]:
    """The three panel titles of ``quicklook.png``, with the dates (``undated`` when unknown)."""
    b, a = (d.isoformat() if d else "undated" for d in (before_date, after_date))
    return [f"BEFORE\n{b} (true colour)", f"AFTER\n{a} (true colour)", f"CHANGE {b} → {a}\nover AFTER"]


def quicklook_png(before: Scene, after: Scene, result: ChangeResult) -> bytes:
    """``quicklook.png``: :func:`quicklook`'s panels titled with the dates, with a legend
    (:func:`campwatch.plot.quicklook_png`; shown at most 512 px a panel, which it states)."""
    panels = np.split(quicklook(before, after, result), 3, axis=1)
    return render_quicklook(panels, titles=quicklook_titles(before.date, after.date), legend=QUICKLOOK_LEGEND,
                            note=f"campwatch {__version__}, method {result.method}")


def write_compare_outputs(result: ChangeResult, outdir: str | os.PathLike[str], *, before: Scene, after: Scene,
                          overwrite: bool = False, extra_summary: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the outputs into the folder ``outdir``; return their paths by name.

    The whole folder is built beside ``outdir`` and swapped in by one rename
    (:func:`campwatch.io.atomic_dir`): it is either the previous complete run or this one.
    An existing folder is replaced only with ``overwrite``, and only if campwatch wrote it.
    """
    names = OUTPUTS + (STRUCTURE_OUTPUTS if result.structures is not None else ())
    with atomic_dir(outdir, overwrite=overwrite, kind="compare") as out:
        paths = {name: out / name for name in names}
        tags = {"campwatch_version": __version__, "method": result.method,
                "threshold": f"{result.threshold.value:.6g} ({result.threshold.method})"}
        write_raster(paths["change_mask.tif"], result.mask, result.grid, nodata=NODATA,
                     tags={**tags, "values": "1 change, 0 no change, 255 no data"}, band_names=["change"])
        write_raster(paths["change_score.tif"], result.score.astype(np.float32), result.grid, nodata=float("nan"),
                     tags=tags, band_names=["change_score"])
        kw: dict[str, Any] = {"site": (result.params.get("aoi") or {}).get("id"), "date_before": before.date,
              "date_after": after.date}
        summary = build_summary(result, before=before, after=after)
        if result.structures is not None:
            summary["structures"] = result.structures.summary()
        polygons = mask_to_polygons(result.mask == 1, result.grid, values={"score": result.score})
        layers = {"changes": changes_layer(polygons, summary, **kw)}
        if result.structures is not None:
            layers.update(structure_layers(result.structures, **kw))
            write_vector(layers["structures"].to_crs(4326), paths["structures.geojson"], layer="structures",
                         driver="GeoJSON")
        write_layers(paths["changes.gpkg"], layers, stamp=vector_stamp(before.date, after.date))
        if extra_summary:
            summary.update(extra_summary)
        summary["outputs"] = sorted(names)
        write_json(paths["summary.json"], summary)
        with atomic_path(paths["quicklook.png"]) as tmp:
            tmp.write_bytes(quicklook_png(before, after, result))
    return {name: Path(outdir) / name for name in names}

