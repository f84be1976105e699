"""Batch reports on camp expansion: the tool layer behind ``campwatch report``.

A TOML config lists sites; each site has an optional AOI and two or more dated scenes.
Every consecutive pair of dates of a site is one task, run in-process (``scheduler="sync"``),
on a ``LocalCluster`` sized to the machine (the default), or on an existing
dask.distributed cluster given by address.  Tasks return plain data (rows, polygons as
WKB, PNG bytes), so the same code runs anywhere; only the submitting process writes.

Outputs (built in a temporary directory and renamed into place):

- ``index.html``: one section per site, its figures inlined; per pair an interactive map
  (Leaflet, copied to ``assets/leaflet/``, no network) of the two dates, whose images are
  ``map-<site>-<pair>-before.png`` / ``-after.png`` beside it (EPSG:3857 for display only);
- ``summary.json`` / ``summary.csv``: one row per site and date pair; no times, so
  rerunning a config gives a byte-identical ``summary.json``;
- ``changes.gpkg``: layers ``changes`` and ``structures`` (:mod:`campwatch.layers`), every polygon with
  site, dates and class, and their QGIS styles;
- ``manifest.json``: inputs (path, size, SHA-256), dates, parameters, versions, times.

Config form::

    [options]            # optional: method, threshold, min_area_m2, coregister, clouds, structures
    method = "default"

    [[site]]
    name = "Yodok"       # optional; defaults to the AOI id or "site-N"
    aoi = "kwanliso-15"  # a catalogue id or alias, or a path to an AOI file; optional
    scenes = [
      { date = "2015-08-21", path = "data/sample_tiles/rennes/imgs_1" },
      { date = "2017-06-21", path = "data/sample_tiles/rennes/imgs_2" },
    ]

Relative paths are resolved against the config file's folder, or against
``options.base_dir`` (itself relative to the config file) when given.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import io as _io
import itertools
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from campwatch._version import __version__
from campwatch.aoi import AOI
from campwatch.compare import FLAG_COVERAGE, compare_scenes, confidence_columns, read_pair, result_flags
from campwatch.detect import METHODS, NODATA, rgb_composite
from campwatch.errors import (
    CampwatchError,
    CampwatchWarning,
    ConfigError,
    DateOrderError,
    InsufficientDataError,
    MissingDependencyError,
)
from campwatch.fetch import fetch as fetch_imagery
from campwatch.io import atomic_dir, open_source, png_bytes, to_json, vector_stamp, write_layers
from campwatch.layers import CLASS_COLOURS, structure_frame, to_layer, to_records, to_rgb
from campwatch.masks import aoi_mask, cloud_flags
from campwatch.params import InvalidParameterError, check, check_threshold
from campwatch.plot import pyplot
from campwatch.profiles import PROFILES
from campwatch.provenance import fetch_records, input_records, now_utc
from campwatch.track import TrackInput, screen_dates
from campwatch.vectorize import mask_to_polygons
from campwatch.versions import versions

__all__ = [
    "SUMMARY_FIELDS",
    "PairTask",
    "ReportConfig",
    "SceneSpec",
    "SiteSpec",
    "config_from_dict",
    "pair_tasks",
    "read_config",
    "run_pair",
    "run_report",
    "write_report",
]

#: Options a config may set, with their defaults (passed to :func:`campwatch.compare.compare_scenes`).
DEFAULT_OPTIONS: dict[str, Any] = {
    "method": "default",
    "threshold": "auto",
    "value": None,
    "min_area_m2": 200.0,
    "coregister": True,
    "clouds": None,
    "min_observed_fraction": 0.5,
    "structures": True,
}
_COMPARE_KEYS = ("method", "threshold", "value", "min_area_m2", "coregister", "clouds", "min_observed_fraction")


#: Row statuses: figures measured; the pair could not be run; too little observed to state a figure.
STATUSES = ("ok", "failed", "insufficient-data")

#: Columns of ``summary.csv`` (and keys of each ``summary.json`` row), in order.
SUMMARY_FIELDS = (
    "site", "aoi", "geometry_quality", "date_before", "date_after", "status", "error",
    "confidence", "confidence_reasons",
    "changed_area_m2", "changed_fraction", "valid_fraction",
    "footprint_before_m2", "footprint_before_uncertainty_m2", "footprint_after_m2", "footprint_after_uncertainty_m2",
    "net_growth_m2", "net_growth_uncertainty_m2", "net_growth_pct", "growth_significant",
    "new_count", "new_significant", "new_area_m2", "demolished_count", "demolished_significant", "demolished_area_m2",
    "expanded_count", "expanded_area_m2", "shrunk_count", "shrunk_area_m2",
    "pixel_size_m", "cloud_fraction_before", "cloud_fraction_after",
    "shift_dx_px", "shift_dy_px", "shift_applied", "method", "threshold",
)


# --------------------------------------------------------------------------------------------------
# config (pure, plus read_config for the file)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneSpec:
    path: str
    date: str | None = None


@dataclass(frozen=True)
class SiteSpec:
    name: str
    aoi: str | None
    scenes: tuple[SceneSpec, ...]
    #: ``fetch = { start = ..., end = ..., collection = ... }`` instead of scenes (see :func:`fetch_sites`)
    fetch: Mapping[str, Any] | None = None

    @property
    def anchor(self) -> str:
        """The site's name as an HTML id: letters of any script kept (요덕 stays 요덕), the rest '-'."""
        return re.sub(r"[^\w]+|_", "-", self.name.lower()).strip("-") or "site"


def site_anchors(sites: Sequence[SiteSpec]) -> dict[str, str]:
    """One HTML id per site name, unique: a repeated anchor gets -2, -3 ...

    Examples
    --------
    >>> site_anchors([SiteSpec("요덕 15", None, ()), SiteSpec("요덕-15", None, ()), SiteSpec("화성", None, ())])
    {'요덕 15': '요덕-15', '요덕-15': '요덕-15-2', '화성': '화성'}
    """
    out: dict[str, str] = {}
    used: set[str] = set()
    for site in sites:
        a, k = site.anchor, 1
        while a in used:
            k += 1
            a = f"{site.anchor}-{k}"
        used.add(a)
        out[site.name] = a
    return out


@dataclass(frozen=True)
class ReportConfig:
    path: str
    options: Mapping[str, Any]
    sites: tuple[SiteSpec, ...]


def _date_text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        raise ConfigError(f"{where}: date {value.isoformat()} is a date and time; give the date alone, "
                          f"date = {value.date().isoformat()}")
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ConfigError(f"{where}: date {value!r} is not YYYY-MM-DD") from None


def _checked_options(opts: dict[str, Any], source: str) -> dict[str, Any]:
    """The [options] table checked against one schema: method, threshold and value, numeric ranges
    (:data:`campwatch.params.RANGES`) and real booleans; each error names the key, the value and the fix."""
    if opts["method"] not in METHODS:
        raise ConfigError(f"{source}: [options] method = {opts['method']!r}; choose one of {', '.join(METHODS)}")
    try:
        if opts["threshold"] == "fixed":
            if opts["value"] is None:
                raise ConfigError(f"{source}: [options] threshold = \"fixed\" needs value = NUMBER")
        else:
            method, number = check_threshold(opts["threshold"])
            if number is not None:  # threshold = 20: a fixed threshold of 20
                opts["threshold"], opts["value"] = "fixed", number
            elif opts["value"] is not None:
                raise ConfigError(f"{source}: [options] value = {opts['value']!r} is only used with threshold = "
                                  f"\"fixed\" (threshold is {method!r}); remove it or set threshold = \"fixed\"")
        for key in ("value", "min_area_m2", "min_observed_fraction"):
            opts[key] = check(key, opts[key], label=f"[options] {key}")
    except InvalidParameterError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for key in ("coregister", "structures", "clouds"):
        if not (isinstance(opts[key], bool) or (key == "clouds" and opts[key] is None)):
            raise ConfigError(f"{source}: [options] {key} = {opts[key]!r} is not a boolean; write {key} = true "
                              f"or {key} = false (no quotes)")
    return opts


def config_from_dict(data: Mapping[str, Any], *, source: str = "<config>", base_dir: str | os.PathLike[str] = ".",
                     ) -> ReportConfig:
    """Validate a parsed config and resolve its relative paths against ``base_dir``.

    Examples
    --------
    >>> cfg = config_from_dict({"site": [{"aoi": "sample-rennes", "scenes": [
    ...     {"date": "2015-08-21", "path": "a"}, {"date": "2017-06-21", "path": "b"}]}]}, base_dir="/data")
    >>> cfg.sites[0].name, cfg.sites[0].scenes[1].path, cfg.options["method"]
    ('sample-rennes', '/data/b', 'default')
    """
    unknown = set(data) - {"options", "site"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}; use [options] and [[site]]")
    opts = dict(data.get("options") or {})
    base = Path(base_dir)
    if "base_dir" in opts:
        base = base / str(opts.pop("base_dir"))
    bad = set(opts) - set(DEFAULT_OPTIONS)
    if bad:
        raise ConfigError(f"{source}: unknown option(s) {', '.join(sorted(bad))}; "
                          f"allowed: {', '.join(sorted(DEFAULT_OPTIONS))}, base_dir")
    options = _checked_options({**DEFAULT_OPTIONS, **opts}, source)
    raw_sites = data.get("site")
    if not raw_sites or not isinstance(raw_sites, list):
        raise ConfigError(f"{source}: no [[site]] entries; add at least one site with two or more scenes")
    sites: list[SiteSpec] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_sites, start=1):
        where = f"{source}: site {i}"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: must be a table with 'scenes' (and optionally 'aoi', 'name')")
        extra = set(raw) - {"name", "aoi", "scenes", "fetch"}
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; allowed: name, aoi, scenes, fetch")
        aoi = raw.get("aoi")
        if aoi is not None:
            aoi = str(aoi)
            if any(sep in aoi for sep in ("/", "\\")) or aoi.lower().endswith((".geojson", ".json", ".gpkg", ".kml", ".shp")):
                aoi = str(base / aoi)
        fetch = _fetch_spec(raw.get("fetch"), where) if "fetch" in raw else None
        if fetch is not None and ("scenes" in raw or aoi is None):
            raise ConfigError(f"{where}: a site with 'fetch' needs an 'aoi' and no 'scenes' (the fetched dates are its scenes)")
        scenes_raw = raw.get("scenes") if fetch is None else [{"path": "."}, {"path": "."}]
        if not isinstance(scenes_raw, list) or len(scenes_raw) < 2:
            raise ConfigError(f"{where}: needs 'scenes' with two or more entries {{ date = ..., path = ... }}")
        scenes = []
        for j, s in enumerate(scenes_raw, start=1):
            if isinstance(s, str):
                s = {"path": s}
            if not isinstance(s, Mapping) or "path" not in s:
                raise ConfigError(f"{where}, scene {j}: needs a 'path'")
            scenes.append(SceneSpec(str(base / str(s["path"])), _date_text(s.get("date"), f"{where}, scene {j}")))
        name = str(raw.get("name") or (aoi and Path(aoi).stem) if raw.get("name") or aoi else f"site-{i}")
        if raw.get("name") is None and aoi is not None and os.sep not in str(raw.get("aoi")):
            name = str(raw.get("aoi"))
        if name in names:
            name = f"{name}-{i}"
        names.add(name)
        sites.append(SiteSpec(name, aoi, () if fetch else tuple(scenes), fetch))
    return ReportConfig(source, options, tuple(sites))


#: What a site's ``fetch`` table may hold: the arguments of :func:`campwatch.fetch.fetch`.
FETCH_KEYS = {"start", "end", "collection", "stac_url", "max_cloud", "max_tile_cloud", "per", "months", "bands",
              "margin_m"}


def _fetch_spec(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or not {"start", "end"} <= set(raw):
        raise ConfigError(f"{where}: 'fetch' must be a table with start and end, e.g. "
                          "fetch = {{ start = 2016-01-01, end = 2025-12-31 }}")
    bad = set(raw) - FETCH_KEYS
    if bad:
        raise ConfigError(f"{where}: unknown fetch key(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(FETCH_KEYS))}")
    return {k: (_date_text(v, f"{where}, fetch.{k}") if k in ("start", "end") else v) for k, v in raw.items()}


def fetch_sites(config: ReportConfig, cache_dir: str | os.PathLike[str], *,
                fetcher: Callable[..., Any] | None = None) -> ReportConfig:
    """Fetch the imagery of every site that gives ``fetch`` instead of ``scenes``, into
    ``cache_dir/<site>/`` (reused and resumed on reruns), and make its dates the site's scenes."""
    if not any(s.fetch for s in config.sites):
        return config

    run_fetch = fetcher or fetch_imagery
    sites = []
    for site in config.sites:
        if not site.fetch:
            sites.append(site)
            continue
        f = dict(site.fetch)
        kw = {"max_cloud_pct": f.pop("max_cloud", 20.0), "max_tile_cloud_pct": f.pop("max_tile_cloud", 90.0)}
        result = run_fetch(site.aoi, outdir=Path(cache_dir) / site.anchor, **kw, **f)
        scenes = tuple(SceneSpec(str(p), p.name[:10]) for p in result.folders)
        if len(scenes) < 2:
            raise ConfigError(f"site {site.name}: fetch found {len(scenes)} usable date(s) in {f['start']}..{f['end']}; "
                              "a report needs two or more (widen the dates, or raise max_cloud)")
        sites.append(dataclasses.replace(site, scenes=scenes))
    return dataclasses.replace(config, sites=tuple(sites))


def read_config(path: str | os.PathLike[str]) -> ReportConfig:
    """Read and validate a TOML report config (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file; give a TOML file with [[site]] entries")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc}); fix the syntax") from None
    return config_from_dict(data, source=str(p), base_dir=p.parent)


# --------------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairTask:
    """One site and one consecutive pair of its dates (plain data: it travels to dask workers)."""

    site: str
    aoi: str | None
    before: SceneSpec
    after: SceneSpec
    options: Mapping[str, Any]
    index: int = 0


def pair_tasks(config: ReportConfig) -> list[PairTask]:
    """Each site's consecutive date pairs, ordered by date (undated scenes keep config order)."""
    tasks: list[PairTask] = []
    for site in config.sites:
        ordered = sorted(site.scenes, key=lambda s: s.date or "")
        if any(s.date is None for s in ordered):
            ordered = list(site.scenes)
        for b, a in itertools.pairwise(ordered):
            tasks.append(PairTask(site.name, site.aoi, b, a, dict(config.options), len(tasks)))
    return tasks


def _overlay(after_rgb: np.ndarray, change: np.ndarray, growth: Any) -> np.ndarray:
    """After (dimmed) with change in red, new structures cyan, demolished yellow, no data grey."""
    ov = (after_rgb.astype(np.float32) * 0.55).astype(np.uint8)
    ov[change == 1] = to_rgb(CLASS_COLOURS["change"])
    if _draws_structures(growth):
        new = growth.after_mask & ~growth.before_mask
        gone = growth.before_mask & ~growth.after_mask
        ov[new] = to_rgb(CLASS_COLOURS["new"])
        ov[gone] = to_rgb(CLASS_COLOURS["demolished"])
    ov[change == NODATA] = to_rgb(OVERLAY_NODATA)
    return ov


def _draws_structures(growth: Any) -> bool:
    """Whether the overlay draws new and demolished structures (10 m footprints; VHR mode draws change only)."""
    return growth is not None and hasattr(growth, "after_mask")


#: The overlay legend: (colour, label) for every class :func:`_overlay` draws.
#: The class colours are :data:`campwatch.layers.CLASS_COLOURS` (the map's and the GeoPackage styles').
OVERLAY_NODATA = "#8a8a8a"
LEGEND = ((CLASS_COLOURS["change"], "change"), (CLASS_COLOURS["new"], "new structure"),
          (CLASS_COLOURS["demolished"], "demolished structure"), (OVERLAY_NODATA, "no data"))


def _f(x: Any, nd: int = 1) -> float | None:
    if x is None:
        return None
    v = float(x)
    return None if math.isnan(v) else round(v, nd)


def run_pair(task: PairTask) -> dict[str, Any]:
    """Run one task; never raises for a bad input: the row gets status ``failed`` and the error.

    Returns a dict with ``row`` (the summary row), ``polygons`` (list of dicts with WKB geometry
    in EPSG:4326), ``figures`` (PNG bytes), ``aoi`` (JSON-ready facts), ``inputs`` and ``detail``.
    """
    base_row: dict[str, Any] = {k: None for k in SUMMARY_FIELDS}
    base_row.update(site=task.site, aoi=task.aoi, date_before=task.before.date, date_after=task.after.date)
    try:
        return _run_pair(task, base_row)
    except InsufficientDataError as exc:
        row = {**base_row, "status": "insufficient-data", "error": str(exc)}
        return {"row": row, "polygons": [], "figures": [], "aoi": None, "inputs": [], "detail": {}}
    except (CampwatchError, OSError, ValueError) as exc:
        row = {**base_row, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        return {"row": row, "polygons": [], "figures": [], "aoi": None, "inputs": [], "detail": {}}


def _run_pair(task: PairTask, row: dict[str, Any]) -> dict[str, Any]:
    import warnings

    opts = {k: task.options[k] for k in _COMPARE_KEYS if k in task.options}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CampwatchWarning)
        before, after, aoi = read_pair(task.before.path, task.after.path, aoi=task.aoi, method=opts.get("method", "default"))
        date_notes: list[str] = []
        for label, spec, scene in (("before", task.before, before), ("after", task.after, after)):
            if spec.date is None:
                continue
            given = dt.date.fromisoformat(spec.date)
            if scene.date is not None and abs((scene.date - given).days) > 1:
                raise DateOrderError(f"site {task.site}: {label} scene {spec.path} is dated {given} in the config but "
                                     f"{scene.date} in its files ({scene.meta.get('date_source')}); correct the "
                                     "config date or the scene path")
            if label == "before":
                before = dataclasses.replace(before, date=given)
            else:
                after = dataclasses.replace(after, date=given)
        if before.date and after.date and before.date >= after.date:
            raise DateOrderError(f"site {task.site}: BEFORE ({before.date}) is not earlier than AFTER ({after.date}); "
                              "check the scene dates in the config")
        result = compare_scenes(before, after, aoi=aoi, structures=bool(task.options.get("structures", True)), **opts)
    notes = date_notes + sorted({f"{w.category.__name__}: {w.message}" for w in caught
                                 if issubclass(w.category, CampwatchWarning)})
    s = result.summary()
    growth = result.structures
    g = growth.summary() if growth is not None else {}
    shift = result.coregistration or {}
    counts = g.get("counts", {})
    areas = g.get("areas_m2") or g.get("area_m2") or {}  # VHR mode names it area_m2
    geometry_quality = getattr(aoi, "geometry_quality", None) or ("none" if aoi is None else "unknown")
    row.update(
        aoi=getattr(aoi, "id", task.aoi), geometry_quality=geometry_quality, status="ok", error=None,
        date_before=before.date.isoformat() if before.date else task.before.date,
        date_after=after.date.isoformat() if after.date else task.after.date,
        changed_area_m2=_f(s.get("changed_area_m2")), changed_fraction=_f(s.get("changed_fraction"), 6),
        valid_fraction=_f(_valid_in_aoi(s), 6),
        footprint_before_m2=_f(g.get("footprint_before_m2")), footprint_after_m2=_f(g.get("footprint_after_m2")),
        footprint_before_uncertainty_m2=_f(g.get("footprint_before_uncertainty_m2")),
        footprint_after_uncertainty_m2=_f(g.get("footprint_after_uncertainty_m2")),
        net_growth_m2=_f(g.get("net_m2")), net_growth_uncertainty_m2=_f(g.get("net_uncertainty_m2")),
        net_growth_pct=_f(g.get("net_pct"), 2),
        growth_significant=(g["significance"] == "significant") if g.get("significance") else None,
        new_count=counts.get("new"), new_area_m2=_f(areas.get("new")),
        new_significant=g.get("significant_counts", {}).get("new"),
        demolished_count=counts.get("demolished"), demolished_area_m2=_f(areas.get("demolished")),
        demolished_significant=g.get("significant_counts", {}).get("demolished"),
        expanded_count=counts.get("expanded"), expanded_area_m2=_f(areas.get("expanded")),
        shrunk_count=counts.get("shrunk"), shrunk_area_m2=_f(areas.get("shrunk")),
        pixel_size_m=_f(result.grid.pixel_size_m(), 2),
        cloud_fraction_before=_f(before.meta.get("cloud_fraction") if "cloud_fraction" in before.meta
                                 else (result.params.get("clouds") or {}).get("before_fraction"), 4),
        cloud_fraction_after=_f((result.params.get("clouds") or {}).get("after_fraction"), 4),
        shift_dx_px=_f(shift.get("dx_px"), 3), shift_dy_px=_f(shift.get("dy_px"), 3),
        shift_applied=shift.get("applied"), method=result.method,
        threshold=_f(result.threshold.value, 6),
    )
    if growth is not None and hasattr(growth, "growth") and len(growth.growth):  # VHR: confident buildings
        gg = growth.growth
        for cls in ("new", "demolished"):
            row[f"{cls}_significant"] = int(((gg["growth_class"] == cls) & ~gg["low_confidence"].astype(bool)).sum())
    reasons = confidence_reasons(result, notes)
    row.update(confidence="low" if reasons else "ok", confidence_reasons="; ".join(reasons) or None)
    # polygons, in EPSG:4326 for one GeoPackage across sites, in the layer schema compare and track write
    kw = {"site": row["site"], "date_before": row["date_before"], "date_after": row["date_after"]}
    frames = {"changes": to_layer(mask_to_polygons(result.mask == 1, result.grid, values={"score": result.score})
                                  .assign(**confidence_columns(reasons)),
                                  "changes", **kw)}
    if growth is not None:
        frames["structures"] = to_layer(structure_frame(growth), "structures", **kw)
    polygons = [{"layer": layer, **rec} for layer, frame in frames.items() for rec in to_records(frame.to_crs(4326))]
    rb, ra = rgb_composite(before), rgb_composite(after)
    map_layers = _map_layers(before, after, (rb, ra), result, aoi)
    figures = [
        {"caption": f"Before, {row['date_before']} (true colour)", "png": png_bytes(rb)},
        {"caption": f"After, {row['date_after']} (true colour)", "png": png_bytes(ra)},
        {"caption": ("Change (red), new structures (cyan), demolished (yellow), no data (grey)"
                     if _draws_structures(growth) else "Change (red), no data (grey)"),
         "png": png_bytes(_overlay(ra, result.mask, growth))},
    ]
    aoi_facts = None
    if aoi is not None and hasattr(aoi, "properties"):
        props = aoi.properties
        aoi_facts = {
            "id": aoi.id, "name": aoi.name, "geometry_quality": aoi.geometry_quality,
            "status": props.get("status"), "status_confidence": props.get("status_confidence"),
            "area_km2": round(aoi.area_m2() / 1e6, 3), "caveats": list(props.get("caveats") or []),
            "expected_changes": [_expected(e) for e in aoi.expected_changes],
            "sources": [_source(s) for s in aoi.sources],
            "file": aoi.source_path,
        }
    inputs = sorted({*before.sources, *after.sources} | ({aoi.source_path} if getattr(aoi, "source_path", None) else set()))
    detail = {"compare": s, "structures": g, "notes": notes,
              "limitations": list(dict.fromkeys([*(s.get("limitations") or []), *([g["limits"]] if g.get("limits") else [])]))}
    return {"row": row, "polygons": polygons, "figures": figures, "aoi": aoi_facts, "inputs": inputs, "detail": detail,
            "structures_drawn": _draws_structures(growth), "map": map_layers, "place": place_facts(aoi, result.grid),
            "scenes": [_scene_facts(spec, scene, row[f"date_{label}"])
                       for label, spec, scene in (("before", task.before, before), ("after", task.after, after))]}


def place_facts(aoi: Any, grid: Any) -> dict[str, Any]:
    """Where a pair is measured, for the site header: the centroid (lat, lon) and geodesic area of
    the AOI, or without one of the analysed grid's footprint (the scenes' overlap)."""
    from shapely.geometry import Polygon

    what = "AOI"
    if aoi is None:
        h, w = grid.shape
        lons, lats = grid.lonlat(np.array([0, 0, h, h]), np.array([0, w, w, 0]))
        aoi, what = AOI("overlap", "scene overlap", Polygon(zip(lons, lats, strict=True))), "scene overlap"
    lon, lat = aoi.centroid_lonlat()
    return {"what": what, "lat": round(lat, 6), "lon": round(lon, 6), "area_m2": round(aoi.area_m2(), 1)}


def _scene_facts(spec: SceneSpec, scene: Any, date: str | None) -> dict[str, Any]:
    """One date's imagery for the site header: date, sensor (profile and what it is), pixel size, source."""
    prof = PROFILES.get(scene.profile)
    what = re.split(r",| \(", prof.description)[0] if prof is not None else None
    return {"date": date, "path": spec.path, "sensor": scene.profile, "sensor_description": what,
            "pixel_size_m": round(scene.grid.pixel_size_m(), 2)}


def _map_layers(before: Any, after: Any, rgbs: tuple[np.ndarray, np.ndarray], result: Any, aoi: Any) -> dict[str, Any]:
    """The interactive map's layers of one pair: each date as an RGBA PNG reprojected to EPSG:3857
    for display (:mod:`campwatch.webmap`), its Leaflet bounds, the AOI outline, and the raster
    classes drawn (no data, cloud, outside the AOI) so that the legend names only those."""
    from campwatch import webmap

    geom = getattr(aoi, "geometry", aoi)
    inside = aoi_mask(geom, result.grid) if geom is not None else None
    shown = inside if inside is not None else np.ones(result.grid.shape, bool)
    clouds_on = bool((result.params.get("clouds") or {}).get("masked"))
    out: dict[str, Any] = {"aoi": None if geom is None else webmap.outline_feature(geom), "rasters": []}
    drawn: set[str] = set()
    for label, scene, rgb in (("before", before, rgbs[0]), ("after", after, rgbs[1])):
        nodata = ~scene.valid
        cloud = cloud_flags(scene) if clouds_on else None  # the test compare ran, on the scene as read
        drawn |= {"no data"} if (nodata & shown).any() else set()
        drawn |= {"cloud"} if cloud is not None and (cloud & shown & ~nodata).any() else set()
        img, out["bounds"] = webmap.to_web_mercator(webmap.display_image(rgb, nodata=nodata, cloud=cloud, inside=inside),
                                                    result.grid)
        out[f"{label}_png"] = png_bytes(img, level=6, up_filter=True)
        out[f"{label}_shape"] = list(img.shape[:2])
    if inside is not None and not inside.all():
        drawn.add(webmap.OUTSIDE_LABEL)
    out["rasters"] = sorted(drawn)
    out["source_shape"] = list(result.grid.shape)
    out["source_crs"] = result.grid.crs.to_string()
    return out


def confidence_reasons(result: Any, notes: Sequence[str]) -> list[str]:
    """Why a measured pair is LOW CONFIDENCE (empty: ok): what ``compare`` itself flagged
    (:func:`campwatch.compare.pair_flags`), and a low-valid-data warning the pair raised."""
    out = result_flags(result)
    out += [n.split(": ", 1)[1] for n in notes if n.startswith("LowValidDataWarning")]
    return list(dict.fromkeys(out))


def _valid_in_aoi(s: Mapping[str, Any]) -> float | None:
    """The share of the AOI's own area (of BEFORE's grid without an AOI) observed on both dates."""
    return ((s.get("params") or {}).get("coverage") or {}).get("observed_fraction")


def _web_link(url: Any) -> str | None:
    """``url`` when it is an http(s) address, else None: only those become links in the report
    (a ``javascript:`` or ``file:`` URL from an AOI file would run or open something on a click)."""
    text = str(url or "").strip()
    return text if re.match(r"^https?://[^\s]+$", text, re.IGNORECASE) else None


def _source(s: Any) -> dict[str, Any]:
    if isinstance(s, Mapping):
        return {"title": s.get("title") or s.get("source") or s.get("url"), "url": _web_link(s.get("url"))}
    return {"title": str(s), "url": None}


def csv_cell(value: Any) -> Any:
    """A ``summary.csv`` cell that a spreadsheet will not run as a formula.

    Text starting with ``= + - @``, a tab or a carriage return gets a leading apostrophe (the
    OWASP advice); numbers are written as they are.

    Examples
    --------
    >>> print(csv_cell('=HYPERLINK("http://x","y")'), csv_cell(-12.5), repr(csv_cell(None)), csv_cell("Yodok"))
    '=HYPERLINK("http://x","y") -12.5 '' Yodok
    """
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _expected(e: Mapping[str, Any]) -> dict[str, Any]:
    srcs = e.get("sources")
    if not srcs:
        srcs = [{"title": e.get("source"), "url": e.get("url")}] if (e.get("source") or e.get("url")) else []
    return {"date": e.get("period") or e.get("date"), "text": e.get("observation") or e.get("text") or "",
            "change_type": e.get("change_type"), "sources": [_source(s) for s in srcs]}


# --------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------
def _run_tasks(tasks: Sequence[PairTask], *, scheduler: str | None, fail_fast: bool,
               progress: Callable[[PairTask, dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}

    def done(task: PairTask, res: dict[str, Any]) -> bool:
        results[task.index] = res
        if progress:
            progress(task, res)
        return fail_fast and res["row"]["status"] != "ok"

    if scheduler == "sync":
        for t in tasks:
            if done(t, run_pair(t)):
                break
    else:
        import logging

        from dask.distributed import Client, LocalCluster, as_completed

        if not logging.getLogger("campwatch").isEnabledFor(logging.DEBUG):
            for name in ("distributed", "dask"):
                logging.getLogger(name).setLevel(logging.ERROR)

        cluster = None
        if scheduler:
            client = Client(scheduler, timeout="30s")
        else:
            n = max(1, min(len(tasks), os.cpu_count() or 1))
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=40)
            client = Client(cluster)
        try:
            futures = {client.submit(run_pair, t, key=f"campwatch-pair-{t.index}-{t.site}", pure=False): t for t in tasks}
            for fut in as_completed(list(futures)):
                t = futures[fut]
                if done(t, fut.result()):
                    for other in futures:
                        other.cancel()
                    break
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return [results[i] for i in sorted(results)]


def with_file_dates(config: ReportConfig) -> ReportConfig:
    """Fill each scene's missing config date from its files (tags, dates.txt, file names), so that
    pairs are ordered by acquisition date and BEFORE never follows AFTER.  A scene whose files
    cannot be read keeps no date (its pair fails and is reported)."""
    import warnings

    sites = []
    for site in config.sites:
        scenes = []
        for sc in site.scenes:
            if sc.date is None:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", CampwatchWarning)
                        found = open_source(sc.path).date
                except (CampwatchError, OSError):
                    found = None
                sc = SceneSpec(sc.path, found.isoformat() if found else None)
            scenes.append(sc)
        sites.append(dataclasses.replace(site, scenes=tuple(scenes)))
    return ReportConfig(config.path, config.options, tuple(sites))


def usable_dates(config: ReportConfig) -> tuple[ReportConfig, dict[str, list[dict[str, Any]]]]:
    """Drop each site's dates that ``track`` would skip over its AOI (mostly cloud, or too little
    valid data), so that the usable dates are paired with each other; return the screened config
    and the skipped dates per site, with their reasons.

    A site with an undated scene, or whose scenes cannot be read together, is left as it is:
    its pairs then report their own errors.
    """
    import warnings

    sites, skipped = [], {}
    for site in config.sites:
        if len(site.scenes) < 2 or any(sc.date is None for sc in site.scenes):
            sites.append(site)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CampwatchWarning)
                records = screen_dates([TrackInput(sc.path, dt.date.fromisoformat(sc.date)) for sc in site.scenes
                                        if sc.date], aoi=site.aoi)
        except (CampwatchError, OSError, ValueError):
            sites.append(site)
            continue
        used = {(r.path, r.date.isoformat()) for r in records if r.status == "used"}
        skipped[site.name] = [{"date": r.date.isoformat(), "path": r.path, "reason": r.reason,
                               "cloud_fraction": r.cloud_fraction, "valid_fraction": r.valid_fraction}
                              for r in records if r.status != "used"]
        sites.append(dataclasses.replace(site, scenes=tuple(sc for sc in site.scenes if (sc.path, sc.date) in used)))
    return ReportConfig(config.path, config.options, tuple(sites)), skipped


def _unpaired_rows(config: ReportConfig, skipped: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """An ``insufficient-data`` row for each site left with fewer than two usable dates."""
    out: list[dict[str, Any]] = []
    for site in config.sites:
        gone = skipped.get(site.name) or []
        if len(site.scenes) >= 2 or not gone:
            continue
        dates = sorted([*(g["date"] for g in gone), *(sc.date for sc in site.scenes if sc.date)])
        row: dict[str, Any] = {k: None for k in SUMMARY_FIELDS}
        row.update(site=site.name, aoi=site.aoi, date_before=dates[0], date_after=dates[-1],
                   status="insufficient-data",
                   error=("fewer than two usable dates, so no pair is measured: "
                          + "; ".join(f"{g['date']}: {g['reason']}" for g in gone)))
        out.append({"row": row, "polygons": [], "figures": [], "aoi": None, "inputs": [], "detail": {}})
    return out


def run_report(config: ReportConfig, *, scheduler: str | None = None, fail_fast: bool = False,
               progress: Callable[[PairTask, dict[str, Any]], None] | None = None,
               planned: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run every task of ``config``; return everything :func:`write_report` needs.

    Each site's dates are first screened as ``track`` does (:func:`usable_dates`), and only
    consecutive usable dates are paired.  ``scheduler``: ``None`` starts a LocalCluster sized to
    the machine, ``"sync"`` runs in this process, and an address such as ``tcp://127.0.0.1:8786``
    uses an existing cluster.  ``planned`` is called with the number of pairs once it is known.
    """
    started = now_utc()
    unfetched = [s.name for s in config.sites if s.fetch and not s.scenes]
    if unfetched:
        raise ConfigError(f"site(s) {', '.join(unfetched)} give 'fetch': get their imagery first with "
                          "campwatch.report.fetch_sites(config, cache_dir) (the report command does it)")
    config = with_file_dates(config)
    screened, skipped = usable_dates(config)
    tasks = pair_tasks(screened)
    if planned:
        planned(len(tasks))
    results = _run_tasks(tasks, scheduler=scheduler, fail_fast=fail_fast, progress=progress)
    unpaired = _unpaired_rows(screened, skipped)
    return {"config": config, "tasks": tasks, "results": results + unpaired, "unpaired": len(unpaired),
            "skipped": skipped, "started": started,
            "finished": now_utc(), "scheduler": scheduler or "LocalCluster"}


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------
def _summary_json(config: ReportConfig, rows: Sequence[Mapping[str, Any]],
                  skipped: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> str:
    doc = {
        "campwatch_version": __version__,
        "config": Path(config.path).name,
        "options": dict(sorted(config.options.items())),
        "sites": [s.name for s in config.sites],
        "n_pairs": len(rows),
        "n_failed": sum(1 for r in rows if r["status"] == "failed"),
        "n_insufficient_data": sum(1 for r in rows if r["status"] == "insufficient-data"),
        "rows": [{k: r.get(k) for k in SUMMARY_FIELDS} for r in rows],
        "skipped_dates": {k: list(v) for k, v in sorted((skipped or {}).items()) if v},
        "units": {"area": "m² on the WGS84 ellipsoid", "pixel_size_m": "metres", "shift": "pixels of BEFORE's grid"},
    }
    return to_json(doc)


def _chart_png(dates: Sequence[str], values: Sequence[float], errors: Sequence[float | None],
               title: str) -> bytes | None:
    """Footprint per date as points with ± error bars, in m² (no line: two dates are not a trend)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        plt = pyplot()
    except (ImportError, MissingDependencyError):
        return None
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    x = [dt.date.fromisoformat(d) for d in dates]
    ax.errorbar(x, values, yerr=[e or 0.0 for e in errors], marker="o", capsize=4,  # type: ignore[arg-type]
                linestyle="none", color="#1f6feb", label="footprint ± outline uncertainty")
    top = max((v + (e or 0.0) for v, e in zip(values, errors, strict=True)), default=0.0)
    ax.set_ylim(bottom=0, top=1.2 * top if top > 0 else 100.0)
    ax.set_ylabel("built-up footprint (m²)")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def latlon_text(lat: float, lon: float) -> str:
    """Degrees with hemisphere letters, to 5 decimals (about 1 m).

    Examples
    --------
    >>> latlon_text(39.605, -1.64614)
    '39.60500° N, 1.64614° W'
    """
    return f"{abs(lat):.5f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.5f}° {'E' if lon >= 0 else 'W'}"


def area_text(m2: float) -> str:
    """An area in km² with m² beside it (m² first below 1 km²).

    Examples
    --------
    >>> area_text(2104321.4), area_text(45300.0)
    ('2.104 km² (2,104,321 m²)', '45,300 m² (0.045 km²)')
    """
    return f"{m2 / 1e6:,.3f} km² ({m2:,.0f} m²)" if m2 >= 1e6 else f"{m2:,.0f} m² ({m2 / 1e6:.3f} km²)"


def site_header(pairs: Sequence[Mapping[str, Any]], skipped: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any] | None:
    """The facts at the top of a site's section, as camp reports open: where (centroid, area), the
    imagery (date, sensor, pixel size, source of every date used) and, per measured pair, the
    dates its change is bracketed between (the last image before, the first image after, and any
    date skipped in between, which does not narrow the bracket).  None when no pair was measured."""
    measured = [p for p in pairs if p.get("place")]
    if not measured:
        return None
    place = measured[0]["place"]
    imagery: dict[tuple[Any, Any], dict[str, Any]] = {}
    for p in measured:
        for sc in p["scenes"]:
            imagery.setdefault((sc["date"], sc["path"]), dict(sc))
    brackets = []
    for p in measured:
        b, a = p["row"]["date_before"], p["row"]["date_after"]
        days = (dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days if a and b else None
        brackets.append({"before": b, "after": a, "days": days,
                         "skipped": [g for g in skipped if b and a and b < g["date"] < a]})
    return {"coordinates": latlon_text(place["lat"], place["lon"]), "what": place["what"],
            "area": area_text(place["area_m2"]), "lat": place["lat"], "lon": place["lon"], "area_m2": place["area_m2"],
            "imagery": sorted(imagery.values(), key=lambda sc: (sc["date"] or "", sc["path"])), "brackets": brackets}


def _m2(v: Any, sign: str = "") -> str:
    return "n/a" if v is None else f"{v:{sign},.0f} m²"


def _pair_table(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The per-pair table of the HTML report (every figure may be missing: VHR mode has no footprint)."""
    def counted(n: str) -> str:
        if r[f"{n}_count"] is None:
            return "n/a"
        sig = r.get(f"{n}_significant")
        if sig is None:
            return f"{r[f'{n}_count']} ({_m2(r[f'{n}_area_m2'])})"
        return (f"{sig} confident + {r[f'{n}_count'] - sig} low-confidence candidates "
                f"({_m2(r[f'{n}_area_m2'])} in all)")

    return [
        ("changed area", f"{_m2(r['changed_area_m2'])} ({100 * (r['changed_fraction'] or 0):.2f} % of valid pixels)"),
        ("built-up footprint", "not computed" if r["footprint_before_m2"] is None
         else f"{_pm(r['footprint_before_m2'], r['footprint_before_uncertainty_m2'])} → "
              f"{_pm(r['footprint_after_m2'], r['footprint_after_uncertainty_m2'])}"),
        ("net growth", _net_text(r)),
        ("structures new / demolished", f"{counted('new')} / {counted('demolished')}"),
        ("structures expanded / shrunk", f"{counted('expanded')} / {counted('shrunk')}"),
        ("valid fraction", f"{r['valid_fraction']} of the AOI (or of the scene overlap without an AOI) is "
                           "observed on both dates (clouds and no data excluded)"),
        ("pixel size", f"{r['pixel_size_m']} m"),
        ("method / threshold", f"{r['method']} / {r['threshold']}"),
    ]


def _pm(v: Any, u: Any, sign: str = "") -> str:
    """An area with its uncertainty: ``12,300 ± 4,100 m²``."""
    if v is None:
        return "n/a"
    return f"{v:{sign},.0f} ± {u:,.0f} m²" if u is not None else _m2(v, sign)


def _net_text(r: Mapping[str, Any]) -> str:
    if r["net_growth_m2"] is None:
        return "not computed"
    pct = "n/a" if r["net_growth_pct"] is None else f"{r['net_growth_pct']:+.1f} %"
    sig = "significant" if r["growth_significant"] else "NOT significant (within measurement uncertainty)"
    return f"{_pm(r['net_growth_m2'], r.get('net_growth_uncertainty_m2'), '+')} ({pct}), {sig}"


def _site_caveats(site: SiteSpec, pairs: Sequence[dict[str, Any]],
                  skipped: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    out: list[str] = [f"{g['date']} ({g['path']}) was skipped: {g['reason']}; the dates around it are compared "
                      "directly." for g in skipped]
    aoi = next((p["aoi"] for p in pairs if p["aoi"]), None)
    if aoi:
        if aoi["geometry_quality"] != "digitised":
            out.append(f"AOI geometry quality is '{aoi['geometry_quality']}': the polygon is not a surveyed perimeter, "
                       "so areas inside it include land outside the facility and may miss parts of it.")
        out += [str(c) for c in aoi["caveats"]]
    elif site.aoi is None:
        out.append("No AOI was given: the whole overlap of the scenes is analysed.")
    for p in pairs:
        r = p["row"]
        if r["status"] != "ok":
            continue
        label = f"{r['date_before']} → {r['date_after']}"
        if r["valid_fraction"] is not None and r["valid_fraction"] < FLAG_COVERAGE:
            out.append(f"{label}: PARTIAL COVERAGE: only {r['valid_fraction']:.0%} of the "
                       f"{'AOI' if r['aoi'] else 'scene overlap'} is observed on both dates (flagged below "
                       f"{FLAG_COVERAGE:.0%}); every figure of this pair describes only the observed part, and the "
                       "unobserved part may hold change.")
        if r["pixel_size_m"] is not None and r["pixel_size_m"] >= 5:
            out.append(f"{label}: pixels are {r['pixel_size_m']} m; objects smaller than about two pixels "
                       "(for Sentinel-2, a 16 × 7 m hut is one pixel) are not resolved.")
        else:
            out.append(f"{label}: pixels are {r['pixel_size_m']} m (VHR mode): buildings are detected from roof "
                       "texture and shadow rules; small 'demolished' objects include moved cars and clutter.")
        cb, ca = r["cloud_fraction_before"], r["cloud_fraction_after"]
        if cb is not None or ca is not None:
            out.append(f"{label}: cloud fraction masked {cb if cb is not None else 'n/a'} before, "
                       f"{ca if ca is not None else 'n/a'} after; only pixels valid on both dates are measured "
                       f"(valid fraction {r['valid_fraction']}).")
        if r["shift_dx_px"] is not None:
            out.append(f"{label}: co-registration shift dx={r['shift_dx_px']:+.2f} px, dy={r['shift_dy_px']:+.2f} px, "
                       f"{'corrected' if r['shift_applied'] else 'not corrected'}.")
        else:
            out.append(f"{label}: co-registration was not estimated.")
        if r["growth_significant"] is False:
            out.append(f"{label}: the net footprint change is within the measurement uncertainty and is not "
                       "reported as growth.")
        if r.get("confidence") == "low":
            out.append(f"{label}: LOW CONFIDENCE: {r['confidence_reasons']}.")
        out += [f"{label}: {n}" for n in p["detail"].get("notes", [])]
    return list(dict.fromkeys(out))


def copy_leaflet(dest: Path) -> None:
    """Copy the vendored Leaflet (``templates/vendor/leaflet``: JS, CSS, images, LICENSE) to ``dest``."""
    from importlib.resources import files

    def copy(src: Any, to: Path) -> None:
        to.mkdir(parents=True, exist_ok=True)
        for entry in src.iterdir():
            if entry.is_dir():
                copy(entry, to / entry.name)
            else:
                (to / entry.name).write_bytes(entry.read_bytes())

    copy(files("campwatch").joinpath("templates", "vendor", "leaflet"), dest)


def _map_context(result: Mapping[str, Any], map_id: str, outdir: Path) -> dict[str, Any] | None:
    """Write a pair's two map images beside index.html and return what the template needs (None: no map).

    The map draws the pair's polygons from the same records as changes.gpkg: one path per row."""
    from campwatch import webmap

    layers = result.get("map")
    if not layers:
        return None
    names = {}
    for label in ("before", "after"):
        names[label] = f"{map_id}-{label}.png"
        (outdir / names[label]).write_bytes(layers[f"{label}_png"])
    row = result["row"]
    features = webmap.polygon_features(result["polygons"])
    classes = [f["properties"]["class"] for f in features["features"]]
    return {
        "id": map_id,
        "legend": webmap.legend(classes, rasters=layers["rasters"]),  # drawn by the template, checked by the tests
        "has_low": any(f["properties"]["low_confidence"] for f in features["features"]),
        "has_aoi": layers["aoi"] is not None,
        "shape": layers["before_shape"], "source_shape": layers["source_shape"], "source_crs": layers["source_crs"],
        "data": {"before": names["before"], "after": names["after"], "bounds": layers["bounds"], "aoi": layers["aoi"],
                 "polygons": features, "date_before": row["date_before"], "date_after": row["date_after"],
                 "pair_confidence": row.get("confidence"), "source_shape": layers["source_shape"],
                 "legend": webmap.legend(classes, rasters=layers["rasters"])},
    }


def write_report(run: Mapping[str, Any], outdir: str | os.PathLike[str], *, overwrite: bool = False,
                 repo_root: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write index.html, summary.json, summary.csv, changes.gpkg and manifest.json, atomically."""
    import geopandas as gpd
    import jinja2
    import shapely

    config: ReportConfig = run["config"]
    results: list[dict[str, Any]] = run["results"]
    rows = [r["row"] for r in results]
    by_site: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_site.setdefault(r["row"]["site"], []).append(r)
    with atomic_dir(outdir, overwrite=overwrite, kind="report") as tmp:
        (tmp / "summary.json").write_text(_summary_json(config, rows, run.get("skipped")), encoding="utf-8")
        with open(tmp / "summary.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(SUMMARY_FIELDS), lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: csv_cell(r.get(k)) for k in SUMMARY_FIELDS})
        # polygons: one layer per kind, the same schema as compare's and track's (campwatch.layers)
        layers = {}
        for kind in ("changes", "structures"):
            recs = [p for r in results for p in r["polygons"] if p["layer"] == kind]
            frame = gpd.GeoDataFrame([{k: v for k, v in p.items() if k not in ("layer", "wkb")} for p in recs],
                                     geometry=[shapely.from_wkb(p["wkb"]) for p in recs], crs="EPSG:4326")
            layers[kind] = to_layer(frame, kind)  # type: ignore[arg-type]
        stamp = vector_stamp(*(sc.date for site in config.sites for sc in site.scenes))
        write_layers(tmp / "changes.gpkg", layers, stamp=stamp)
        # html
        anchors = site_anchors(config.sites)
        sites_ctx = []
        has_maps = False
        for i, site in enumerate(config.sites, start=1):
            pairs = by_site.get(site.name, [])
            aoi = next((p["aoi"] for p in pairs if p["aoi"]), None)
            ok = [p["row"] for p in pairs if p["row"]["status"] == "ok" and p["row"]["footprint_before_m2"] is not None]
            chart = None
            if ok:
                dates = [ok[0]["date_before"], *[r["date_after"] for r in ok]]
                values = [ok[0]["footprint_before_m2"], *[r["footprint_after_m2"] for r in ok]]
                errors = [ok[0]["footprint_before_uncertainty_m2"], *[r["footprint_after_uncertainty_m2"] for r in ok]]
                if all(dates):
                    png = _chart_png(dates, values, errors, f"{site.name}: built-up footprint in the AOI")
                    chart = base64.b64encode(png).decode() if png else None
            pair_ctx = []
            for k, p in enumerate(pairs, start=1):
                r = p["row"]
                table = _pair_table(r) if r["status"] == "ok" else []
                map_ctx = _map_context(p, f"map-{i}-{k}", tmp)  # ASCII file names
                has_maps = has_maps or map_ctx is not None
                pair_ctx.append({
                    "map": map_ctx,
                    "date_before": r["date_before"], "date_after": r["date_after"], "status": r["status"],
                    "error": r["error"], "table": table, "confidence": r.get("confidence"),
                    "confidence_reasons": r.get("confidence_reasons"),
                    "legend": [item for item in LEGEND if p.get("structures_drawn") or "structure" not in item[1]],
                    "figures": [{"caption": f["caption"], "png_b64": base64.b64encode(f["png"]).decode()} for f in p["figures"]],
                })
            header = site_header(pairs, (run.get("skipped") or {}).get(site.name, ()))
            for sc in (header or {}).get("imagery", []):  # a fetched date names its STAC items
                sc["items"] = [i for rec in fetch_records([sc["path"]]) for i in rec.get("items") or []]
                sc["shown_path"] = os.path.relpath(sc["path"], Path(config.path).parent)
            sites_ctx.append({"name": site.name, "anchor": anchors[site.name], "aoi": aoi, "pairs": pair_ctx, "chart_b64": chart,
                              "header": header,
                              "caveats": _site_caveats(site, pairs, (run.get("skipped") or {}).get(site.name, ()))})
        if has_maps:
            copy_leaflet(tmp / "assets" / "leaflet")
        env = jinja2.Environment(loader=jinja2.PackageLoader("campwatch", "templates"),
                                 autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                                 undefined=jinja2.StrictUndefined)
        page = env.get_template("report.html.j2").render(
            title=Path(config.path).stem, sites=sites_ctx, has_maps=has_maps, rows=[{**r, "anchor": anchors.get(r["site"], "")} for r in rows],
            n_pairs=len(rows), n_failed=sum(1 for r in rows if r["status"] == "failed"),
            n_insufficient=sum(1 for r in rows if r["status"] == "insufficient-data"), flag_coverage=FLAG_COVERAGE, config_name=Path(config.path).name,
            version=__version__)
        (tmp / "index.html").write_text(page, encoding="utf-8")
        # manifest
        inputs = sorted({i for r in results for i in r["inputs"]} | {config.path})
        existing = [i for i in inputs if Path(i).is_file()]
        manifest = {
            "campwatch_version": __version__,
            "config": input_records([config.path], relative_to=repo_root)[0],
            "inputs": input_records(existing, relative_to=repo_root),
            "fetched": fetch_records(existing),
            "sites": [{"name": s.name, "aoi": s.aoi, "scenes": [dataclasses.asdict(sc) for sc in s.scenes],
                       **({"fetch": dict(s.fetch)} if s.fetch else {})}
                      for s in config.sites],
            "parameters": dict(config.options),
            "tasks": [{"site": r["row"]["site"], "date_before": r["row"]["date_before"], "date_after": r["row"]["date_after"],
                       "status": r["row"]["status"], "error": r["row"]["error"], "detail": r["detail"]} for r in results],
            "scheduler": run.get("scheduler"),
            "versions": versions(),
            "started": run["started"],
            "finished": run["finished"],
            "written": now_utc(),
        }
        (tmp / "manifest.json").write_text(to_json(manifest), encoding="utf-8")
    out = Path(outdir)
    return {name: out / name for name in ("index.html", "summary.json", "summary.csv", "changes.gpkg", "manifest.json")}
