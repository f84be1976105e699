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
from shapely import wkt

from campwatch.errors import AcquisitionDateWarning, InvalidSceneError
from campwatch.io import read_raster, read_scene
from campwatch.vhr import naive_cva, vhr_change

__all__ = [
    "LevirPair",
    "XbdPair",
    "format_report",
    "levir_pairs",
    "pixel_scores",
    "run_bench",
    "run_levir",
    "run_xbd",
    "xbd_building_scores",
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


def _read_pair(before: Path, after: Path) -> tuple[Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AcquisitionDateWarning)
        a = read_scene(before)
        b = read_scene(after, grid=a.grid)
    return a, b


def run_levir(root: str | os.PathLike[str], *, pairs: Sequence[LevirPair] | None = None) -> dict[str, Any]:
    """Pooled pixel precision/recall/F1 of VHR mode and the naive baseline on LEVIR-CD pairs."""
    pairs = list(pairs) if pairs is not None else levir_pairs(root)
    tot = {"vhr": np.zeros(3, np.int64), "naive": np.zeros(3, np.int64)}
    rows = []
    t0 = time.perf_counter()
    for p in pairs:
        a, b = _read_pair(p.before, p.after)
        truth = read_raster(p.label, grid=a.grid)[0] > 0
        res = vhr_change(a, b)
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


def _xbd_buildings(labels_json: Path, grid: Any) -> tuple[np.ndarray, list[str]]:
    """Rasterise each labelled building with its own id (1..K) and list its subtype."""
    with open(labels_json, encoding="utf-8") as fh:
        doc = json.load(fh)
    shapes, kinds = [], []
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
            cover: float = 0.3) -> dict[str, Any]:
    """Building-level demolition recall and false-alarm rate on xBD pairs, VHR mode and naive."""
    pairs = list(pairs) if pairs is not None else xbd_pairs(root)
    rows, vs, ns = [], [], []
    t0 = time.perf_counter()
    for p in pairs:
        a, b = _read_pair(p.before, p.after)
        ids, kinds = _xbd_buildings(p.labels, a.grid)
        res = vhr_change(a, b)
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


def run_bench(shared: str | os.PathLike[str]) -> dict[str, Any]:
    """Both sets from a ``shared/data`` folder."""
    shared = Path(shared)
    return {"levir": run_levir(shared / "vhr-levircd"), "xbd": run_xbd(shared / "vhr-xbd-joplin")}


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
