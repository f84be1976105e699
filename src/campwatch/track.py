"""Timelines of built footprint per AOI: the tool layer behind ``campwatch track``.

:func:`track` reads two or more dates of one AOI onto one grid (the earliest date's), orders them
by acquisition date, masks or skips cloudy dates (recording the reason for each), extracts the
built-up mask of each usable date (:mod:`campwatch.structures`), and measures footprint growth
between consecutive usable dates.  :func:`write_timeline` writes ``timeline.csv``,
``timeline.json``, a footprint-over-time chart and the growth polygons of each pair;
:func:`write_structures` writes one :class:`~campwatch.structures.GrowthResult` as GeoPackage and
GeoJSON, in the layer schema of :mod:`campwatch.layers` that ``compare`` and ``report`` share.

Clouds, per date, first match wins (the source is recorded):

1. a mask file given for that scene (``cloud_masks``; nonzero = cloud);
2. a file ``<image stem>_cloudmask.tif`` beside a single-file image (nonzero = cloud); when such a
   file is also in the scene list (a shell glob matched it), it is used as the mask, not as a scene;
3. :func:`campwatch.masks.mask_clouds` (spectral test), for reflectance data (values <= 2);
4. otherwise the cloud fraction is recorded as ``null`` with source ``not assessed``.

A date whose cloud fraction (in the AOI) exceeds ``max_cloud_fraction``, or whose valid fraction
is below ``min_valid_fraction``, is skipped; otherwise its clouds are masked, and each growth
figure uses only pixels valid on both dates of the pair.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import itertools
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from campwatch.aoi import resolve_aoi
from campwatch.errors import AcquisitionDateWarning, InvalidSceneError, LowValidDataWarning, MissingDependencyError
from campwatch.grid import Grid
from campwatch.io import (
    atomic_dir,
    atomic_path,
    check_writable,
    open_source,
    read_raster,
    read_scene,
    to_json,
    vector_stamp,
    write_layers,
    write_vector,
)
from campwatch.layers import structure_layers
from campwatch.masks import mask_clouds, user_mask_valid
from campwatch.params import check_all
from campwatch.plot import plot_timeline, pyplot, timeline_html
from campwatch.provenance import provenance
from campwatch.scene import Scene
from campwatch.structures import (
    GROWTH_CLASSES,
    Builtup,
    BuiltupMethod,
    GrowthResult,
    aoi_inside,
    builtup_mask,
    date_footprint,
    growth_between,
)

__all__ = ["DateRecord", "Timeline", "TrackInput", "parse_scene_arg", "screen_dates", "track", "write_structures", "write_timeline"]

_DATE_SUFFIX = re.compile(r"^(.*)@(\d{4}-\d{2}-\d{2})$")
_WANTED = ("blue", "green", "red", "nir", "swir16", "cirrus")


@dataclass(frozen=True)
class TrackInput:
    """One scene of a timeline: its path, and optionally a date and a cloud-mask file."""

    path: str
    date: dt.date | None = None
    cloud_mask: str | None = None


def parse_scene_arg(text: str) -> TrackInput:
    """Parse ``PATH`` or ``PATH@YYYY-MM-DD`` (the date overrides what the file says).

    Examples
    --------
    >>> parse_scene_arg("scenes/a.tif@2015-08-21")
    TrackInput(path='scenes/a.tif', date=datetime.date(2015, 8, 21), cloud_mask=None)
    >>> parse_scene_arg("scenes/a.tif").date is None
    True
    """
    m = _DATE_SUFFIX.match(str(text))
    if not m:
        path, sep, tail = str(text).rpartition("@")
        if sep and path and not os.path.exists(text) and re.fullmatch(r"[\d./:-]*\d[\d./:-]*", tail):
            raise InvalidSceneError(f"{text}: {tail!r} is not a date; write PATH@YYYY-MM-DD")
        return TrackInput(str(text))
    try:
        date = dt.date.fromisoformat(m[2])
    except ValueError:
        raise InvalidSceneError(f"{text}: {m[2]!r} is not a valid date; write PATH@YYYY-MM-DD") from None
    return TrackInput(m[1], date)


@dataclass(frozen=True, eq=False)
class DateRecord:
    """What happened to one date of a timeline."""

    path: str
    date: dt.date
    status: str  # "used" or "skipped"
    reason: str
    cloud_fraction: float | None
    cloud_source: str
    valid_fraction: float
    footprint: Mapping[str, Any] = field(default_factory=dict)
    builtup: Builtup | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "path": self.path, "status": self.status, "reason": self.reason,
                "cloud_fraction": self.cloud_fraction, "cloud_source": self.cloud_source,
                "valid_fraction": self.valid_fraction, **dict(self.footprint)}


@dataclass(frozen=True, eq=False)
class Timeline:
    """Footprint per date and growth per consecutive pair of usable dates, for one AOI."""

    aoi_id: str | None
    aoi_name: str | None
    geometry_quality: str
    grid: Grid
    dates: tuple[DateRecord, ...]
    pairs: tuple[GrowthResult, ...]
    parameters: Mapping[str, Any]
    inputs: tuple[str, ...] = ()

    @property
    def used(self) -> tuple[DateRecord, ...]:
        return tuple(d for d in self.dates if d.status == "used")

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per date (the CSV), with the growth since the previous usable date."""
        by_after = {p.info["date_after"]: p.summary() for p in self.pairs}
        rows = []
        for d in self.dates:
            g = by_after.get(d.date.isoformat()) if d.status == "used" else None
            fp = d.footprint
            rows.append({
                "date": d.date.isoformat(), "status": d.status, "reason": d.reason,
                "cloud_fraction": d.cloud_fraction, "cloud_source": d.cloud_source,
                "valid_fraction": d.valid_fraction,
                "footprint_m2": fp.get("footprint_m2"), "footprint_uncertainty_m2": fp.get("footprint_uncertainty_m2"),
                "n_objects": fp.get("n_objects"),
                "growth_since": g["date_before"] if g else None,
                "net_m2": g["net_m2"] if g else None, "net_pct": g["net_pct"] if g else None,
                "net_uncertainty_m2": g["net_uncertainty_m2"] if g else None,
                "significance": g["significance"] if g else None,
                **{f"n_{c}": (g["counts"][c] if g else None) for c in GROWTH_CLASSES},
                "pixel_size_m": round(self.grid.pixel_size_m(), 3),
                "geometry_quality": self.geometry_quality,
            })
        return rows

    def _repr_html_(self) -> str:
        return timeline_html(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "aoi": {"id": self.aoi_id, "name": self.aoi_name, "geometry_quality": self.geometry_quality},
            "grid": self.grid.to_dict(),
            "pixel_size_m": round(self.grid.pixel_size_m(), 3),
            "parameters": dict(self.parameters),
            "dates": [d.to_dict() for d in self.dates],
            "pairs": [p.summary() for p in self.pairs],
            "significance_rule": self.pairs[0].info["significance_rule"] if self.pairs else None,
            "limits": self.pairs[0].info["limits"] if self.pairs else None,
        }


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------
def _resolve(aoi: Any) -> Any:
    if aoi is None or not isinstance(aoi, str | os.PathLike):
        return aoi
    return resolve_aoi(str(aoi))


def _sibling_cloud_mask(path: Path) -> Path | None:
    if path.is_file():
        cand = path.with_name(f"{path.stem}_cloudmask{path.suffix}")
        if cand.is_file():
            return cand
    return None


def _is_reflectance(scene: Scene) -> bool:
    v = scene.valid
    return bool(v.any()) and float(np.nanpercentile(scene.data[:, v], 99)) <= 2.0


def _mask_clouds(scene: Scene, inp: TrackInput, inside: np.ndarray) -> tuple[Scene, float | None, str]:
    """(scene with clouds invalid, cloud fraction in the AOI, source of the cloud information)."""
    path = Path(inp.path)
    mask_path = Path(inp.cloud_mask) if inp.cloud_mask else _sibling_cloud_mask(path)
    base_valid = scene.valid & inside
    n = int(base_valid.sum())
    if mask_path is not None:
        arr, _ = read_raster(mask_path, grid=scene.grid)
        cloud = ~user_mask_valid(arr)  # nonzero is cloud; NaN (outside the mask file) is not
        source = f"mask file {mask_path.name}" if inp.cloud_mask else f"sibling mask file {mask_path.name}"
        frac = float((cloud & base_valid).sum() / n) if n else 1.0
        return scene.with_valid(~cloud, cloud_fraction=round(frac, 6), cloud_source=source), frac, source
    if _is_reflectance(scene) and scene.has("blue", "green", "red", "nir"):
        masked = mask_clouds(scene)
        cloud = scene.valid & ~masked.valid
        frac = float((cloud & base_valid).sum() / n) if n else 1.0
        source = "spectral cloud test (campwatch.masks.mask_clouds)"
        return dataclasses.replace(masked, meta={**masked.meta, "cloud_fraction": round(frac, 6),
                                                 "cloud_source": source}), frac, source
    return scene, None, "not assessed (no mask file; data not in reflectance or cloud test unavailable)"


def _bands_for(src: Any) -> list[str] | None:
    """The bands footprints need from a scene source (every band for VHR imagery)."""
    if src.profile.is_vhr or src.finest.grid.pixel_size_m() < 5.0:
        return None  # VHR: every band (the VHR extractor chooses)
    return [k for k in _WANTED if k in src.keys]


@contextlib.contextmanager
def _given_date(inp: TrackInput) -> Iterator[None]:
    """Silence the 'no acquisition date found' warning for a scene whose date the user gave (PATH@DATE)."""
    with warnings.catch_warnings():
        if inp.date is not None:
            warnings.simplefilter("ignore", AcquisitionDateWarning)
        yield


def _dated(inputs: Sequence[TrackInput], *, profile: str | None,
           band_map: Mapping[str, int] | None) -> tuple[list[tuple[dt.date, TrackInput]], dict[str, Any]]:
    """The inputs with their dates, sorted by date (each scene inspected once), and their sources."""
    dated: list[tuple[dt.date, TrackInput]] = []
    sources_of: dict[str, Any] = {}  # each scene inspected once (date, bands, provenance)
    for inp in inputs:
        with _given_date(inp):
            sources_of[inp.path] = open_source(inp.path, profile=profile, bands=band_map)
        date = inp.date or sources_of[inp.path].date
        if date is None:
            raise InvalidSceneError(f"{inp.path}: no acquisition date in its tags, file names or dates.txt; give it "
                                    f"as {inp.path}@YYYY-MM-DD")
        dated.append((date, inp))
    dated.sort(key=lambda t: t[0])
    for (d0, a), (d1, b) in itertools.pairwise(dated):
        if d0 == d1:
            raise InvalidSceneError(f"{a.path} and {b.path} are both dated {d0}; track needs one scene per date "
                                    "(check the dates, or drop one of them)")
    return dated, sources_of


def _read_dates(dated: Sequence[tuple[dt.date, TrackInput]], sources_of: Mapping[str, Any], the_aoi: Any, *,
                max_cloud_fraction: float, min_valid_fraction: float, profile: str | None,
                band_map: Mapping[str, int] | None) -> Iterator[tuple[DateRecord, Scene]]:
    """Each date read onto the earliest date's AOI grid, its clouds masked and its usability decided.

    Yields ``(record, scene)`` per date, in date order; ``record.status`` is ``used`` or
    ``skipped`` (with the reason: cloud fraction in the AOI above ``max_cloud_fraction``, or
    valid fraction below ``min_valid_fraction``).
    """
    geom = getattr(the_aoi, "geometry", the_aoi)
    first = dated[0][1]
    bands = _bands_for(sources_of[first.path])
    with _given_date(first):
        ref = read_scene(first.path, aoi=geom, bands=bands, profile=profile, band_map=band_map)
    grid = ref.grid
    inside, _, _ = aoi_inside(the_aoi, grid)
    for i, (date, inp) in enumerate(dated):
        with _given_date(inp):
            scene = ref if i == 0 else read_scene(inp.path, grid=grid, bands=bands, profile=profile,
                                                  band_map=band_map)
        scene = dataclasses.replace(scene, date=date)
        scene, cloud_frac, cloud_src = _mask_clouds(scene, inp, inside)
        valid_frac = float((scene.valid & inside).sum() / max(int(inside.sum()), 1))
        cf = None if cloud_frac is None else round(cloud_frac, 6)
        if cloud_frac is not None and cloud_frac > max_cloud_fraction:
            status, reason = "skipped", (f"cloud fraction {cloud_frac:.2f} above the limit {max_cloud_fraction:.2f} "
                                         f"({cloud_src})")
        elif valid_frac < min_valid_fraction:
            status, reason = "skipped", (f"valid fraction {valid_frac:.2f} below the minimum "
                                         f"{min_valid_fraction:.2f} (nodata or clouds)")
        else:
            status = "used"
            reason = ("clouds masked" if cloud_frac else
                      ("no clouds detected" if cloud_frac == 0 else "clouds not assessed"))
        yield DateRecord(inp.path, date, status, reason, cf, cloud_src, round(valid_frac, 6)), scene


def screen_dates(scenes: Sequence[str | os.PathLike[str] | TrackInput], *, aoi: Any = None,
                 max_cloud_fraction: float = 0.5, min_valid_fraction: float = 0.5, profile: str | None = None,
                 band_map: Mapping[str, int] | None = None) -> list[DateRecord]:
    """Which dates :func:`track` would use over the AOI, and why the others are skipped (date order).

    The same reads and rules as :func:`track`, without the footprints; ``report`` pairs only
    the used dates.
    """
    inputs = [s if isinstance(s, TrackInput) else parse_scene_arg(os.fspath(s)) for s in scenes]
    dated, sources_of = _dated(inputs, profile=profile, band_map=band_map)
    return [rec for rec, _ in _read_dates(dated, sources_of, _resolve(aoi), max_cloud_fraction=max_cloud_fraction,
                                          min_valid_fraction=min_valid_fraction, profile=profile,
                                          band_map=band_map)]


def track(scenes: Sequence[str | os.PathLike[str] | TrackInput], *, aoi: Any = None,
          cloud_masks: Mapping[str, str] | None = None, max_cloud_fraction: float = 0.5,
          min_valid_fraction: float = 0.5, method: BuiltupMethod = "auto", min_object_m2: float | None = None,
          misregistration_px: float = 0.5, profile: str | None = None,
          band_map: Mapping[str, int] | None = None) -> Timeline:
    """Footprint per date and growth per consecutive pair of usable dates, for one AOI.

    Parameters
    ----------
    scenes : sequence of path, ``PATH@YYYY-MM-DD`` text or TrackInput
        Two or more dates, in any order; they are sorted by acquisition date.
    aoi : str, AOI or shapely geometry (EPSG:4326), optional
        A catalogue id or alias or an AOI file (resolved with :func:`campwatch.aoi.resolve_aoi`).
        Without it the whole first scene is used (``geometry_quality`` ``none``).
    cloud_masks : mapping of scene path to mask path, optional
        Per-date cloud masks (nonzero = cloud).
    max_cloud_fraction, min_valid_fraction : float
        Skip a date whose cloud fraction in the AOI is above, or whose valid fraction is below, these.
    method, min_object_m2, misregistration_px :
        See :func:`campwatch.structures.builtup_mask` and :func:`~campwatch.structures.growth_between`.
    profile, band_map :
        Override the detected sensor profile or band mapping.

    Returns
    -------
    Timeline

    Raises
    ------
    InvalidSceneError
        Fewer than two scenes, or a scene without a date (the message gives the ``PATH@DATE`` fix).

    Examples
    --------
    >>> t = track(["data/sample_tiles/rennes/imgs_2", "data/sample_tiles/rennes/imgs_1"])
    >>> [d.date.isoformat() for d in t.dates], len(t.pairs)
    (['2015-08-21', '2017-06-21'], 1)
    """
    check_all(max_cloud_fraction=max_cloud_fraction, min_valid_fraction=min_valid_fraction,
              min_object_m2=min_object_m2, misregistration_px=misregistration_px)
    inputs = [s if isinstance(s, TrackInput) else parse_scene_arg(os.fspath(s)) for s in scenes]
    # A shell glob (scenes/*.tif) also matches each image's sibling cloud mask: use it as that mask.
    sibling_masks = {os.path.normpath(m) for i in inputs if (m := _sibling_cloud_mask(Path(i.path)))}
    recognised = [i.path for i in inputs if os.path.normpath(i.path) in sibling_masks]
    inputs = [i for i in inputs if os.path.normpath(i.path) not in sibling_masks]
    if len(inputs) < 2:
        raise InvalidSceneError(f"track needs two or more scenes, got {len(inputs)}; give every date of the AOI")
    masks_by_path = {os.path.normpath(k): v for k, v in (cloud_masks or {}).items()}
    inputs = [dataclasses.replace(i, cloud_mask=i.cloud_mask or masks_by_path.get(os.path.normpath(i.path)))
              for i in inputs]
    for k in masks_by_path:
        if k not in {os.path.normpath(i.path) for i in inputs}:
            raise InvalidSceneError(f"cloud mask given for {k}, which is not one of the scenes; "
                                    "write --cloud-mask SCENE=MASK with SCENE exactly as in the scene list")
    the_aoi = _resolve(aoi)
    dated, sources_of = _dated(inputs, profile=profile, band_map=band_map)
    bands = _bands_for(sources_of[dated[0][1].path])
    records: list[DateRecord] = []
    kw = {"aoi": the_aoi, "min_object_m2": min_object_m2, "misregistration_px": misregistration_px}
    grid = None
    for rec, scene in _read_dates(dated, sources_of, the_aoi, max_cloud_fraction=max_cloud_fraction,
                                  min_valid_fraction=min_valid_fraction, profile=profile, band_map=band_map):
        grid = scene.grid
        if rec.status == "used":
            b = builtup_mask(scene, method=method)
            rec = dataclasses.replace(rec, footprint=date_footprint(b, **kw), builtup=b)
        records.append(rec)
    assert grid is not None  # two or more dates were read
    used = [r for r in records if r.status == "used"]
    if len(used) < 2:
        warnings.warn(f"only {len(used)} usable date(s) of {len(records)}: no growth can be measured "
                      f"({'; '.join(f'{r.date}: {r.reason}' for r in records if r.status != 'used')})",
                      LowValidDataWarning, stacklevel=2)
    pairs = []
    for prev, cur in itertools.pairwise(used):
        if prev.builtup is None or cur.builtup is None:  # pragma: no cover - set for every used date
            continue
        pairs.append(growth_between(prev.builtup, cur.builtup, min_valid_fraction=min_valid_fraction, **kw))
    params = {"max_cloud_fraction": max_cloud_fraction, "min_valid_fraction": min_valid_fraction,
              "method": method, "min_object_m2": min_object_m2, "misregistration_px": misregistration_px,
              "profile": profile, "band_map": dict(band_map) if band_map else None,
              "inputs_used_as_cloud_masks": recognised,
              "builtup": dict(used[0].builtup.params) if used and used[0].builtup else None}
    sources: list[str] = []
    for _, inp in dated:
        sources += [b.path for b in sources_of[inp.path].bands if bands is None or b.key in bands]
        m = Path(inp.cloud_mask) if inp.cloud_mask else _sibling_cloud_mask(Path(inp.path))
        if m is not None:
            sources.append(str(m))
    return Timeline(getattr(the_aoi, "id", None), getattr(the_aoi, "name", None),
                    str(getattr(the_aoi, "geometry_quality", "none")) if the_aoi is not None else "none",
                    grid, tuple(records), tuple(pairs), params, tuple(sources))


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------
def write_structures(result: GrowthResult, path_gpkg: str | os.PathLike[str], path_geojson: str | os.PathLike[str],
                     *, overwrite: bool = False, site: str | None = None) -> tuple[Path, Path]:
    """Write growth polygons as GeoPackage (grid CRS; layers ``structures``, ``objects_before``,
    ``objects_after`` and their QGIS styles) and GeoJSON (the ``structures`` rows, EPSG:4326 per
    RFC 7946), each atomically.

    The columns are :data:`campwatch.layers.SCHEMA`'s (``class``, ``area_m2`` and the before/after
    areas, ``delta_m2``, ``uncertainty_m2``, ``significant``, ``low_confidence``, ``reason``, ...),
    with ``site`` (the AOI id) and the pair's dates in every row.
    """
    gpkg, gj = check_writable(path_gpkg, overwrite=overwrite), check_writable(path_geojson, overwrite=overwrite)
    dates = {"date_before": result.info.get("date_before"), "date_after": result.info.get("date_after")}
    layers = structure_layers(result, site=site, **dates)
    with atomic_path(gpkg, overwrite=overwrite) as tmp:
        write_layers(tmp, layers, stamp=vector_stamp(*dates.values()))
    with atomic_path(gj, overwrite=overwrite) as tmp:
        write_vector(layers["structures"].to_crs(4326), tmp, layer=gj.stem, driver="GeoJSON")
    return Path(path_gpkg), Path(path_geojson)


def _chart(timeline: Timeline, path: Path) -> str | None:
    """Footprint over time as PNG (:func:`campwatch.plot.plot_timeline`); a note when matplotlib is missing."""
    try:
        import matplotlib  # optional dependency: imported only when a chart is drawn

        matplotlib.use("Agg")
        plt = pyplot()
    except (ImportError, MissingDependencyError):
        return "chart not written: matplotlib is not installed (pip install campwatch[plot])"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    plot_timeline(timeline, ax=ax)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None


def write_timeline(timeline: Timeline, outdir: str | os.PathLike[str], *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``timeline.csv``, ``timeline.json``, ``footprint.png`` and ``growth_<d1>_<d2>.gpkg/.geojson``
    into ``outdir``, atomically (the folder appears complete or not at all)."""
    out = Path(outdir)
    written: dict[str, Path] = {}
    with atomic_dir(out, overwrite=overwrite, kind="track") as tmp:
        rows = timeline.rows()
        with open(tmp / "timeline.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        written["csv"] = out / "timeline.csv"
        growth_files = []
        for p in timeline.pairs:
            stem = f"growth_{p.info['date_before']}_{p.info['date_after']}"
            write_structures(p, tmp / f"{stem}.gpkg", tmp / f"{stem}.geojson", site=timeline.aoi_id)
            growth_files += [f"{stem}.gpkg", f"{stem}.geojson"]
        chart_note = _chart(timeline, tmp / "footprint.png")
        doc = timeline.to_dict()
        doc["files"] = {"csv": "timeline.csv", "chart": None if chart_note else "footprint.png",
                        "growth": growth_files}
        if chart_note:
            doc["notes"] = [chart_note]
        doc["provenance"] = provenance(timeline.inputs, parameters=timeline.parameters,
                                       dates={d.path: d.date.isoformat() for d in timeline.dates})
        (tmp / "timeline.json").write_text(to_json(doc), encoding="utf-8")
        written["json"] = out / "timeline.json"
        if not chart_note:
            written["chart"] = out / "footprint.png"
    return written
