"""Benchmark of campwatch.structures on real labelled imagery; prints figures, asserts nothing.

Run from the repository root::

    python benchmarks/structures.py [--shared ../shared/data] [--texture-threshold 0.02]

* OSCD (7 labelled cities, Sentinel-2 L1C): the growth groups classed ``new`` are scored against
  the change labels.  A ``new`` object is a hit when it overlaps a labelled change pixel
  (object precision); a labelled change region (8-connected component of label 2) is found when
  a ``new`` object overlaps it (object recall).  The same is printed for ``new`` + ``expanded``,
  and for the ``new`` objects that ``campwatch compare`` reports as significant, i.e. confirmed by
  the change detector (``compare_files(..., structures=True)``: clouds, co-registration, defaults).
* Landsat Taizhou (30 m): pixel accuracy on the sampled pixels, where a pixel is predicted as
  change when it is built-up on exactly one date (inside the accounted objects).
* The accounting identity and the polygon-area check are printed for every pair.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from campwatch.compare import compare_files
from campwatch.io import read_raster, read_scene
from campwatch.structures import footprint_growth

BANDS = ["blue", "green", "red", "nir", "swir16"]
ROOT = Path(__file__).resolve().parents[1]


def object_scores(result, label: np.ndarray, classes: tuple[str, ...], *,
                  significant_only: bool = False) -> tuple[int, int, int, int]:
    """(hits, predicted objects, found change regions, change regions)."""
    grid = result.grid
    from rasterio.features import geometry_mask

    change = label == 2
    regions, n_regions = ndimage.label(change, structure=np.ones((3, 3), bool))
    pred = result.polygons[result.polygons["class"].isin(classes)]
    if significant_only:
        pred = pred[pred["significant"]]
    hits = 0
    found: set[int] = set()
    for geom in pred.geometry:
        inside = geometry_mask([geom], out_shape=grid.shape, transform=grid.transform, invert=True)
        ids = np.unique(regions[inside & change])
        if ids.size:
            hits += 1
            found.update(int(i) for i in ids if i > 0)
    return hits, len(pred), len(found), n_regions


def check_accounting(result) -> tuple[float, float]:
    s = result.summary()
    a = s["areas_m2"]
    resid = a["new"] - a["demolished"] + a["expanded"] - a["shrunk"] + a["unchanged_net"] - s["net_m2"]
    p = result.polygons
    pix = p["area_before_m2"].where(p["class"] == "demolished", 0)  # not used; kept simple below
    del pix
    union_area = np.asarray([float((m * result.grid.pixel_area_m2()).sum()) for m in [result.before_mask | result.after_mask]])
    poly_err = abs(float(p["area_m2"].sum()) - float(union_area[0])) / max(float(union_area[0]), 1.0)
    return resid, poly_err


def oscd(shared: Path, texture_threshold: float) -> None:
    print("\n== OSCD: objects classed new vs change labels ==")
    print(f"{'city':10} {'before m2':>11} {'after m2':>11} {'net m2':>10} {'sig':>16} {'new':>5} "
          f"{'P(new)':>7} {'R(new)':>7} {'P(n+e)':>7} {'R(n+e)':>7} {'resid':>7} {'polyerr':>8} {'s':>5}")
    tot = {"new": np.zeros(4, int), "new+expanded": np.zeros(4, int), "new confirmed": np.zeros(4, int)}
    for city in sorted(p.name for p in (shared / "oscd").iterdir() if (p / "cm").is_dir()):
        t0 = time.perf_counter()
        d = shared / "oscd" / city
        before = read_scene(d / "imgs_1", bands=BANDS)
        after = read_scene(d / "imgs_2", grid=before.grid, bands=BANDS)
        label, _ = read_raster(d / "cm" / f"{city}-cm.tif", grid=before.grid)
        r = footprint_growth(before, after, texture_threshold=texture_threshold)
        s = r.summary()
        n1 = np.array(object_scores(r, label, ("new",)))
        n2 = np.array(object_scores(r, label, ("new", "expanded")))
        tot["new"] += n1
        tot["new+expanded"] += n2
        confirmed = compare_files(d / "imgs_1", d / "imgs_2", structures=True).structures
        tot["new confirmed"] += np.array(object_scores(confirmed, label, ("new",), significant_only=True))
        resid, perr = check_accounting(r)
        f = lambda a, b: f"{a / b:.2f}" if b else "  n/a"  # noqa: E731
        print(f"{city:10} {s['footprint_before_m2']:11.0f} {s['footprint_after_m2']:11.0f} {s['net_m2']:10.0f} "
              f"{s['significance']:>16} {s['counts']['new']:5d} {f(n1[0], n1[1]):>7} {f(n1[2], n1[3]):>7} "
              f"{f(n2[0], n2[1]):>7} {f(n2[2], n2[3]):>7} {resid:7.2f} {perr:8.4f} {time.perf_counter() - t0:5.1f}")
    for k, v in tot.items():
        print(f"pooled {k:13}: object precision {v[0]}/{v[1]} = {v[0] / max(v[1], 1):.3f}; "
              f"object recall {v[2]}/{v[3]} = {v[2] / max(v[3], 1):.3f}")


def taizhou(shared: Path, texture_threshold: float) -> None:
    print("\n== Landsat Taizhou (30 m): change = built-up on exactly one date, on the sampled pixels ==")
    d = shared / "landsat-taizhou"
    before = read_scene(d / "taizhou_2000-03-17.tif")
    after = read_scene(d / "taizhou_2003-02-06.tif", grid=before.grid)
    ref, _ = read_raster(d / "taizhou_reference_samples.tif", grid=before.grid)
    r = footprint_growth(before, after, texture_threshold=texture_threshold)
    pred = r.before_mask ^ r.after_mask
    sampled = ref > 0
    truth = ref == 2
    tp = int((pred & truth & sampled).sum())
    tn = int((~pred & ~truth & sampled).sum())
    fp = int((pred & ~truth & sampled).sum())
    fn = int((~pred & truth & sampled).sum())
    n = int(sampled.sum())
    acc = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / n ** 2
    kappa = (acc - pe) / (1 - pe) if pe < 1 else float("nan")
    s = r.summary()
    print(f"method {s['method']}, pixel {s['pixel_size_m']} m, footprint {s['footprint_before_m2']:.0f} -> "
          f"{s['footprint_after_m2']:.0f} m2, net {s['net_m2']:.0f} m2 ({s['net_pct']}%), {s['significance']}")
    print(f"sampled pixels {n} (change {int(truth.sum())}): TP {tp} FP {fp} FN {fn} TN {tn}; overall accuracy "
          f"{acc:.3f}, kappa {kappa:.3f}, change precision {tp / max(tp + fp, 1):.3f}, recall {tp / max(tp + fn, 1):.3f}")
    # growth only (new + expanded pixels built after but not before)
    grow = r.after_mask & ~r.before_mask
    tp2 = int((grow & truth & sampled).sum())
    print(f"new built-up pixels only: precision {tp2 / max(int((grow & sampled).sum()), 1):.3f}, "
          f"recall {tp2 / max(int((truth & sampled).sum()), 1):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--texture-threshold", type=float, default=0.02)
    args = ap.parse_args()
    print("== sample pairs: accounting identity and polygon areas ==")
    for city in ("bercy", "paris", "rennes"):
        d = ROOT / "data" / "sample_tiles" / city
        before = read_scene(d / "imgs_1", bands=BANDS)
        after = read_scene(d / "imgs_2", grid=before.grid, bands=BANDS)
        r = footprint_growth(before, after, texture_threshold=args.texture_threshold)
        s = r.summary()
        resid, perr = check_accounting(r)
        print(f"{city:8} footprint {s['footprint_before_m2']:.0f} -> {s['footprint_after_m2']:.0f} m2, net "
              f"{s['net_m2']:.0f} +- {s['net_uncertainty_m2']:.0f} m2 ({s['significance']}); counts {s['counts']}; "
              f"identity residual {resid:.3f} m2; polygon vs pixel area {perr:.4%}")
    if (args.shared / "oscd").is_dir():
        oscd(args.shared, args.texture_threshold)
    if (args.shared / "landsat-taizhou").is_dir():
        taizhou(args.shared, args.texture_threshold)


if __name__ == "__main__":
    main()
