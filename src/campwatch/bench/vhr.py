"""VHR benchmark: score VHR mode and the naive baseline on the shared LEVIR-CD and xBD pairs.

A tool module: it reads named files (through :mod:`campwatch.io`, and the xBD label
JSON), runs :func:`campwatch.vhr.vhr_change` with its defaults and no labels, and scores:

* **LEVIR-CD** (``vhr-levircd/``): pixel precision, recall and F1 of ``mask`` against the
  building-change labels (255), pooled over all pixels of all pairs.  The two
  ``full1024`` pairs are used whole; the ``crop256`` crops cut from them are skipped so
  no pixel counts twice.
* **xBD Joplin** (``vhr-xbd-joplin/``): building-level.  A labelled building is
  *reported as demolished* when at least ``cover`` (30 %) of its footprint is covered by
  ``demolished`` or ``shrunk`` polygons.  Recall over ``destroyed`` buildings and the
  false-alarm rate over ``no-damage`` buildings, and the share of the reported pixels
  that lie within 2 m of any labelled building (the building scores alone do not see
  demolitions reported on lawns and roads).

The same figures are computed for the naive baseline (:func:`campwatch.vhr.naive_cva`,
RGB change-vector magnitude with Otsu), side by side.  The licences of both sets forbid
copying them into the repository; they are read where they lie.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio import features
from scipy import ndimage
from shapely import wkt

from campwatch.coregister import estimate_shift
from campwatch.errors import AcquisitionDateWarning, InvalidSceneError
from campwatch.io import read_raster, read_scene
from campwatch.vhr import naive_cva, vhr_change

__all__ = [
    "LevirPair",
    "XbdPair",
    "format_protocol",
    "format_report",
    "levir_pairs",
    "pixel_scores",
    "read_xbd_pair",
    "run_bench",
    "run_dataset",
    "run_levir",
    "run_protocol",
    "run_unlabelled",
    "run_xbd",
    "corner_residual",
    "known_warp",
    "transform_error",
    "vhr_datasets",
    "xbd_building_scores",
    "xbd_buildings",
    "xbd_roof_corners",
    "xbd_pairs",
]


@dataclass(frozen=True)
class LevirPair:
    name: str
    before: Path
    after: Path
    label: Path


@dataclass(frozen=True)
class XbdPair:
    name: str
    before: Path
    after: Path
    labels: Path  # the post-disaster label JSON


def levir_pairs(root: str | os.PathLike[str]) -> list[LevirPair]:
    """The LEVIR-CD pairs under ``root`` (a ``vhr-levircd`` folder or a folder laid out like it).

    Whole ``full1024`` images first, then ``crop256`` crops not cut from them.  Any folder
    with ``A/``, ``B/`` and ``label/`` subfolders of same-named GeoTIFFs works, so held-out
    pairs can be scored with the same code.
    """
    root = Path(root)
    pairs: list[LevirPair] = []
    full: list[str] = []
    folders = [root / "full1024", root / "crop256"] if (root / "full1024").is_dir() or (root / "crop256").is_dir() else [root]
    for folder in folders:
        if not (folder / "A").is_dir():
            continue
        for a in sorted((folder / "A").glob("*.tif")):
            stem = a.stem
            if folder.name == "crop256" and any(stem.startswith(f + "_") for f in full):
                continue
            b, lab = folder / "B" / a.name, folder / "label" / a.name
            if b.is_file() and lab.is_file():
                pairs.append(LevirPair(f"{folder.name}/{stem}", a, b, lab))
        if folder.name == "full1024":
            full = [a.stem for a in (folder / "A").glob("*.tif")]
    if not pairs:
        raise InvalidSceneError(f"{root}: no LEVIR-CD pairs (A/, B/, label/ with same-named .tif files); "
                                "point at ../shared/data/vhr-levircd")
    return pairs


def xbd_pairs(root: str | os.PathLike[str]) -> list[XbdPair]:
    """The xBD pre/post pairs under ``root`` (``images/*_pre_disaster.tif``, ``labels/*_post_disaster.json``)."""
    root = Path(root)
    pairs = []
    for pre in sorted((root / "images").glob("*_pre_disaster.tif")):
        stem = pre.name[: -len("_pre_disaster.tif")]
        post = root / "images" / f"{stem}_post_disaster.tif"
        lab = root / "labels" / f"{stem}_post_disaster.json"
        if post.is_file() and lab.is_file():
            pairs.append(XbdPair(stem, pre, post, lab))
    if not pairs:
        raise InvalidSceneError(f"{root}: no xBD pairs (images/*_pre_disaster.tif with *_post_disaster.tif and "
                                "labels/*_post_disaster.json); point at ../shared/data/vhr-xbd-joplin")
    return pairs


def pixel_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from pooled counts.

    Examples
    --------
    >>> pixel_scores(50, 50, 0)
    {'precision': 0.5, 'recall': 1.0, 'f1': 0.667, 'tp': 50, 'fp': 50, 'fn': 0}
    """
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3), "tp": tp, "fp": fp, "fn": fn}


def _counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    return int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum())


def read_xbd_pair(before: Path, after: Path) -> tuple[Any, Any]:
    """Read an xBD (or other VHR) pair: BEFORE, then AFTER onto BEFORE's grid (date warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AcquisitionDateWarning)
        a = read_scene(before)
        b = read_scene(after, grid=a.grid)
    return a, b


def run_levir(root: str | os.PathLike[str], *, pairs: Sequence[LevirPair] | None = None,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pooled pixel precision/recall/F1 of VHR mode and the naive baseline on LEVIR-CD pairs."""
    pairs = list(pairs) if pairs is not None else levir_pairs(root)
    tot = {"vhr": np.zeros(3, np.int64), "naive": np.zeros(3, np.int64)}
    rows = []
    t0 = time.perf_counter()
    for p in pairs:
        a, b = read_xbd_pair(p.before, p.after)
        truth = read_raster(p.label, grid=a.grid)[0] > 0
        res = vhr_change(a, b, **(params or {}))
        c_v = _counts(res.mask, truth)
        c_n = _counts(naive_cva(a, b), truth)
        tot["vhr"] += c_v
        tot["naive"] += c_n
        rows.append({"pair": p.name, "vhr": pixel_scores(*c_v), "naive": pixel_scores(*c_n),
                     "counts": res.counts, "flags": res.flags, "labelled_change": bool(truth.any()),
                     "flagged_fraction": round(float(res.mask.mean()), 4)})
    return {"set": "levir-cd", "pairs": len(pairs), "seconds": round(time.perf_counter() - t0, 1),
            "vhr": pixel_scores(*map(int, tot["vhr"])), "naive": pixel_scores(*map(int, tot["naive"])),
            "per_pair": rows}


def xbd_buildings(labels_json: Path, grid: Any) -> tuple[np.ndarray, list[str]]:
    """Rasterise each labelled building with its own id (1..K) and list its subtype."""
    with open(labels_json, encoding="utf-8") as fh:
        doc = json.load(fh)
    shapes: list[tuple[Any, int]] = []
    kinds: list[str] = []
    for feat in doc["features"]["xy"]:
        geom = wkt.loads(feat["wkt"])
        if geom.is_empty:
            continue
        shapes.append((geom, len(shapes) + 1))
        kinds.append(str(feat["properties"].get("subtype", "un-classified")))
    ids = features.rasterize(shapes, out_shape=grid.shape, fill=0, dtype="int32") if shapes else np.zeros(grid.shape, np.int32)
    return ids, kinds


#: xBD damage classes scored, with the key of the share reported demolished.  Only the first
#: two have targets; minor and major damage are printed so that standing, damaged houses
#: reported as demolished are seen.
_KINDS = (("destroyed", "destroyed_recall"), ("no-damage", "undamaged_false_alarm"),
          ("minor-damage", "minor_damage_flagged_rate"), ("major-damage", "major_damage_flagged_rate"))


def xbd_building_scores(ids: np.ndarray, kinds: Sequence[str], demolished: np.ndarray, *,
                        cover: float = 0.3) -> dict[str, Any]:
    """Share of destroyed and of undamaged buildings whose footprint is >= ``cover`` demolished.

    Examples
    --------
    >>> ids = np.array([[1, 1, 2, 2]]); demo = np.array([[True, False, False, False]])
    >>> xbd_building_scores(ids, ["destroyed", "no-damage"], demo)["destroyed_recall"]
    1.0
    """
    n = len(kinds) + 1
    area = np.bincount(ids.ravel(), minlength=n)
    hit = np.bincount(ids.ravel(), weights=demolished.ravel().astype(np.float64), minlength=n)
    frac = hit / np.maximum(area, 1)
    out: dict[str, Any] = {}
    for kind, key in _KINDS:
        sel = [i + 1 for i, k in enumerate(kinds) if k == kind and area[i + 1] > 0]
        flagged = int(sum(frac[i] >= cover for i in sel))
        out[key] = round(flagged / len(sel), 3) if sel else None
        out[f"{kind}_flagged"] = flagged
        out[f"{kind}_total"] = len(sel)
    return out


def _on_buildings(ids: np.ndarray, demolished: np.ndarray, *, pixel_size_m: float, near_m: float = 2.0) -> dict[str, int]:
    """Demolished pixels, and how many lie within ``near_m`` of a labelled building footprint.

    The xBD building scores only look at labelled buildings; this says how much of what is
    reported demolished is on a building at all (the rest is debris on lawns, cars, clutter).
    """
    from scipy import ndimage

    near = ndimage.binary_dilation(ids > 0, iterations=max(1, round(near_m / pixel_size_m)))
    return {"demolished_px": int(demolished.sum()), "demolished_on_buildings_px": int((demolished & near).sum())}


def _merge(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    d = sum(p.get("demolished_px", 0) for p in parts)
    on = sum(p.get("demolished_on_buildings_px", 0) for p in parts)
    out["demolished_on_buildings"] = round(on / d, 3) if d else None
    for kind, key in _KINDS:
        f = sum(p[f"{kind}_flagged"] for p in parts)
        t = sum(p[f"{kind}_total"] for p in parts)
        out[key] = round(f / t, 3) if t else None
        out[f"{kind}_flagged"], out[f"{kind}_total"] = f, t
    return out


def run_xbd(root: str | os.PathLike[str], *, pairs: Sequence[XbdPair] | None = None,
            cover: float = 0.3, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Building-level demolition recall and false-alarm rate on xBD pairs, VHR mode and naive."""
    pairs = list(pairs) if pairs is not None else xbd_pairs(root)
    rows, vs, ns = [], [], []
    t0 = time.perf_counter()
    for p in pairs:
        a, b = read_xbd_pair(p.before, p.after)
        ids, kinds = xbd_buildings(p.labels, a.grid)
        res = vhr_change(a, b, **(params or {}))
        g = res.growth
        lost = g[g["growth_class"].isin(["demolished", "shrunk"])]
        demo = (features.rasterize(((geom, 1) for geom in lost.geometry), out_shape=a.grid.shape,
                                   transform=a.grid.transform, fill=0, dtype="uint8") > 0) if len(lost) else \
            np.zeros(a.grid.shape, bool)
        naive = naive_cva(a, b)
        px = a.grid.pixel_size_m()
        v = {**xbd_building_scores(ids, kinds, demo, cover=cover), **_on_buildings(ids, demo, pixel_size_m=px)}
        n = {**xbd_building_scores(ids, kinds, naive, cover=cover), **_on_buildings(ids, naive, pixel_size_m=px)}
        vs.append(v)
        ns.append(n)
        rows.append({"pair": p.name, "vhr": v, "naive": n, "counts": res.counts, "flags": res.flags,
                     "coregistration": res.coregistration})
    return {"set": "xbd-joplin", "pairs": len(pairs), "cover": cover, "seconds": round(time.perf_counter() - t0, 1),
            "vhr": _merge(vs), "naive": _merge(ns), "per_pair": rows}


def xbd_roof_corners(root: str | os.PathLike[str], pair: XbdPair, *,
                     kinds: Sequence[str] = ("no-damage", "minor-damage")) -> np.ndarray:
    """(K, 2) pixel ``x, y`` of the corners of the pair's labelled buildings still standing
    after (``kinds``): the pre-disaster polygons, matched to the post-disaster subtypes by order."""
    pre = Path(root) / "labels" / f"{pair.name}_pre_disaster.json"
    with open(pre, encoding="utf-8") as fh:
        polys = json.load(fh)["features"]["xy"]
    with open(pair.labels, encoding="utf-8") as fh:
        subtypes = [f["properties"].get("subtype") for f in json.load(fh)["features"]["xy"]]
    pts: list[tuple[float, float]] = []
    for feat, kind in zip(polys, subtypes, strict=True):
        geom = wkt.loads(feat["wkt"])
        if kind in kinds and not geom.is_empty:
            pts += [(float(x), float(y)) for x, y in list(geom.exterior.coords)[:-1]]
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def corner_residual(before: Any, after: Any, corners_xy: np.ndarray, *, band: str = "red", half: int = 32,
                    min_reliability: float = 0.2) -> dict[str, Any]:
    """The misregistration left at building corners: the shift of ``after`` against ``before``
    in a ``2 * half`` px patch centred on each corner (patches with reliability at least
    ``min_reliability`` and a shift under ``half / 4`` px), as the length of the median
    shift vector (the systematic part) and the median length (noise included), in px and m."""
    ref, mov = before.band(band), after.band(band)
    ok = before.valid & after.valid
    h, w = ref.shape
    got = []
    for x, y in np.asarray(corners_xy):
        r, c = round(float(y)), round(float(x))
        if r < half or c < half or r + half > h or c + half > w:
            continue
        sl = (slice(r - half, r + half), slice(c - half, c + half))
        s = estimate_shift(ref[sl], mov[sl], valid=ok[sl], upsample_factor=20)
        if not s.reason and s.reliability >= min_reliability and s.magnitude_px <= half / 4:
            got.append((s.dx_px, s.dy_px))
    px = before.grid.pixel_size_m()
    if not got:
        return {"patches": 0, "systematic_px": None, "median_px": None, "systematic_m": None}
    v = np.asarray(got)
    sysv = float(np.hypot(*np.median(v, axis=0)))
    med = float(np.median(np.hypot(v[:, 0], v[:, 1])))
    return {"patches": len(v), "systematic_px": round(sysv, 3), "median_px": round(med, 3),
            "systematic_m": round(sysv * px, 3), "median_m": round(med * px, 3)}


def known_warp(scene: Any, *, rotation_deg: float = 0.0, scale: float = 1.0,
               shift_xy: tuple[float, float] = (0.0, 0.0)) -> tuple[Any, np.ndarray, np.ndarray]:
    """``scene`` warped by a known similarity about its centre (cubic spline, NaN filled with
    each band's median first), and the ``(matrix, offset)`` of ``scipy.ndimage.affine_transform``
    (row, col order): ``moved[o] = scene[matrix @ o + offset]``.  ``shift_xy`` is how far the
    content moves, in px east and south."""
    m, n = scene.grid.shape
    th = np.deg2rad(rotation_deg)
    matrix = scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    c = np.array([(m - 1) / 2, (n - 1) / 2])
    offset = c - matrix @ c - matrix @ np.array([shift_xy[1], shift_xy[0]])
    data = []
    for band in scene.data:
        filled = np.where(np.isfinite(band), band, np.nanmedian(band))
        data.append(ndimage.affine_transform(filled, matrix, offset, order=3, mode="nearest"))
    return dataclasses.replace(scene, data=np.stack(data).astype(np.float32)), matrix, offset


def transform_error(shift: Any, matrix: np.ndarray, offset: np.ndarray, shape: tuple[int, int],
                    step: int = 64) -> np.ndarray:
    """Distance (px) between the content displacement a :class:`~campwatch.coregister.Shift`
    from :func:`~campwatch.coregister.coregister_local` predicts and the known one of
    :func:`known_warp`, on a ``step`` px lattice over the image."""
    yy, xx = np.mgrid[0:shape[0]:step, 0:shape[1]:step]
    rc = np.stack([yy.ravel(), xx.ravel()]).astype(float)
    # moved[o] = image[M o + t]: the content at p moves to M^-1 (p - t); (dy, dx) per point
    true = (np.linalg.solve(matrix, rc - offset[:, None]) - rc).T
    xy = rc[::-1]
    if shift.model == "affine":
        a = np.asarray(shift.matrix)
        pred = (a[:, :2] @ xy).T + a[:, 2] - xy.T
    else:
        pred = np.tile([shift.dx_px, shift.dy_px], (xy.shape[1], 1))
    return np.asarray(np.hypot(pred[:, 0] - true[:, 1], pred[:, 1] - true[:, 0]))


def run_bench(shared: str | os.PathLike[str]) -> dict[str, Any]:
    """Both sets from a ``shared/data`` folder."""
    shared = Path(shared)
    return {"levir": run_levir(shared / "vhr-levircd"), "xbd": run_xbd(shared / "vhr-xbd-joplin")}


#: Parameter sets the leave-one-dataset-out view chooses from (``vhr_change`` keywords); the
#: first is the default.  Each is one more full run over every dataset.
CANDIDATES: dict[str, dict[str, Any]] = {
    "default": {},
    "otsu x1.0": {"otsu_fraction": 1.0},
    "no similarity test": {"max_similarity": 1.0},
}


def vhr_datasets(shared: str | os.PathLike[str]) -> list[tuple[str, str, Path]]:
    """Every ``vhr-*`` folder of ``shared`` as ``(name, kind, path)``: ``"pixels"`` (A/, B/,
    label/ pairs, LEVIR-CD's layout included), ``"xbd"`` (images/, labels/) or ``"unlabelled"``
    (one ``*pre*.tif`` and one ``*post*.tif``, no change labels).  Folders that appear later
    are picked up by their layout; one with none of these is skipped."""
    out = []
    for d in sorted(Path(shared).glob("vhr-*")):
        if not d.is_dir():
            continue
        if (d / "images").is_dir() and (d / "labels").is_dir():
            out.append((d.name, "xbd", d))
        elif any((f / "A").is_dir() for f in (d, d / "full1024", d / "crop256")):
            out.append((d.name, "pixels", d))
        elif len(list(d.glob("*pre*.tif"))) == 1 and len(list(d.glob("*post*.tif"))) == 1:
            out.append((d.name, "unlabelled", d))
    return out


def run_unlabelled(root: str | os.PathLike[str], *, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pair with no change labels: what each method flags, and VHR mode's counts and flags."""
    root = Path(root)
    t0 = time.perf_counter()
    a, b = read_xbd_pair(next(root.glob("*pre*.tif")), next(root.glob("*post*.tif")))
    res = vhr_change(a, b, **(params or {}))
    return {"set": root.name, "pairs": 1, "seconds": round(time.perf_counter() - t0, 1),
            "vhr": {"flagged_fraction": round(float(res.mask.mean()), 4)},
            "naive": {"flagged_fraction": round(float(naive_cva(a, b).mean()), 4)},
            "counts": res.counts, "flags": res.flags, "coregistration": res.coregistration}


def run_dataset(kind: str, path: str | os.PathLike[str], *, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """One dataset of :func:`vhr_datasets` scored by its kind (``run_levir``, ``run_xbd`` or
    ``run_unlabelled``), warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "pixels":
            return run_levir(path, params=params)
        if kind == "xbd":
            return run_xbd(path, params=params)
        return run_unlabelled(path, params=params)


def run_protocol(shared: str | os.PathLike[str], *,
                 candidates: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The validation protocol of ``campwatch bench vhr --all``: every dataset on its own with
    the naive baseline, for each candidate parameter set, and the leave-one-dataset-out view.

    Leave-one-dataset-out: for each labelled dataset, the candidate with the best mean pixel F1
    over the *other* pixel-labelled datasets is chosen and scored on the one left out (for
    xBD, on destroyed recall), beside the default's and the naive figure.
    """
    cands = dict(candidates or CANDIDATES)
    sets = vhr_datasets(shared)
    scores: dict[str, dict[str, Any]] = {}
    for name, kind, path in sets:
        scores[name] = {}
        for cname, params in cands.items():
            r = run_dataset(kind, path, params=params)
            r["kind"] = kind
            scores[name][cname] = r
    pixel_sets = [n for n, k, _ in sets if k == "pixels"]
    lodo = []
    for name, kind, _ in sets:
        if kind == "unlabelled":
            continue
        others = [n for n in pixel_sets if n != name]
        if not others:
            continue
        best = max(cands, key=lambda c: float(np.mean([scores[n][c]["vhr"]["f1"] for n in others])))
        key = "f1" if kind == "pixels" else "destroyed_recall"
        lodo.append({"held_out": name, "chosen": best, "metric": key,
                     "held_out_score": scores[name][best]["vhr"][key],
                     "default_score": scores[name][next(iter(cands))]["vhr"][key],
                     "naive_score": scores[name][next(iter(cands))]["naive"][key]})
    return {"datasets": [(n, k) for n, k, _ in sets], "candidates": cands, "scores": scores, "lodo": lodo}


def format_protocol(result: dict[str, Any]) -> str:
    """The protocol's tables: each dataset with the naive baseline beside every figure, then LODO."""
    cands = list(result["candidates"])
    lines = ["VHR validation protocol: every vhr-* dataset on its own, naive RGB CVA + Otsu beside each figure"]
    for name, kind in result["datasets"]:
        sc = result["scores"][name]
        first = sc[cands[0]]
        lines.append(f"  {name} ({kind}, {first['pairs']} pairs)")
        for c in cands:
            r = sc[c]
            if kind == "pixels":
                v, n = r["vhr"], r["naive"]
                lines.append(f"    {c:<20} F1 {v['f1']:.3f} (P {v['precision']:.3f}, R {v['recall']:.3f})   "
                             f"naive F1 {n['f1']:.3f} (P {n['precision']:.3f}, R {n['recall']:.3f})")
            elif kind == "xbd":
                v, n = r["vhr"], r["naive"]
                lines.append(f"    {c:<20} destroyed recall {v['destroyed_recall']} ({v['destroyed_flagged']}/"
                             f"{v['destroyed_total']}), undamaged false alarm {v['undamaged_false_alarm']}   "
                             f"naive {n['destroyed_recall']}, {n['undamaged_false_alarm']}")
            else:
                lines.append(f"    {c:<20} flagged {r['vhr']['flagged_fraction']:.1%} of the scene, naive "
                             f"{r['naive']['flagged_fraction']:.1%} (no change labels); counts {r['counts']}")
    lines.append("  leave-one-dataset-out: the candidate with the best mean F1 on the other pixel-labelled sets, "
                 "scored on the one left out")
    for row in result["lodo"]:
        lines.append(f"    {row['held_out']:<32} chosen {row['chosen']:<20} {row['metric']} {row['held_out_score']:.3f}"
                     f"   default {row['default_score']:.3f}   naive {row['naive_score']:.3f}")
    return "\n".join(lines)


def format_report(result: dict[str, Any]) -> str:
    """Plain-text table, VHR mode beside the naive baseline."""
    lines = []
    if "levir" in result:
        lv = result["levir"]
        lines.append(f"LEVIR-CD pixel scores, pooled over {lv['pairs']} pairs ({lv['seconds']} s); target F1 >= 0.50")
        lines.append(f"  {'method':<8}{'precision':>10}{'recall':>9}{'F1':>7}")
        for k in ("vhr", "naive"):
            s = lv[k]
            lines.append(f"  {k:<8}{s['precision']:>10.3f}{s['recall']:>9.3f}{s['f1']:>7.3f}")
        for row in lv["per_pair"]:
            lines.append(f"    {row['pair']:<32} F1 vhr {row['vhr']['f1']:.3f}  naive {row['naive']['f1']:.3f}")
        for row in lv["per_pair"]:
            if not row.get("labelled_change", True):
                lines.append(f"  no labelled change in {row['pair']}: VHR mode flags {row['flagged_fraction']:.1%} "
                             "of its pixels (target < 10%)")
    if "xbd" in result:
        xb = result["xbd"]
        lines.append(f"xBD Joplin buildings, {xb['pairs']} pairs ({xb['seconds']} s): reported demolished when "
                     f">= {xb['cover']:.0%} of the footprint is in demolished/shrunk polygons")
        lines.append("  target: destroyed recall >= 0.70, undamaged false alarms <= 0.10")
        for k in ("vhr", "naive"):
            s = xb[k]
            lines.append(f"  {k:<8} destroyed recall {s['destroyed_recall']} ({s['destroyed_flagged']}/{s['destroyed_total']})"
                         f"  undamaged false alarm {s['undamaged_false_alarm']} "
                         f"({s['no-damage_flagged']}/{s['no-damage_total']})")
        lines.append("  also reported demolished (no target): "
                     + "; ".join(f"{k} minor-damage {xb[k]['minor-damage_flagged']}/{xb[k]['minor-damage_total']}, "
                                 f"major-damage {xb[k]['major-damage_flagged']}/{xb[k]['major-damage_total']}"
                                 for k in ("vhr", "naive")))
        lines.append("  share of the pixels reported demolished that lie within 2 m of a labelled building: "
                     + ", ".join(f"{k} {xb[k]['demolished_on_buildings']}" for k in ("vhr", "naive")))
    return "\n".join(lines)
