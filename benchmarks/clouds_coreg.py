"""Benchmark the spectral cloud test and the co-registration estimator on real pixels.

Prints (does not assert):

* cloud IoU, precision and recall of ``mask_clouds`` against the hand labels of the
  ``s2-l2a-clouds`` chips, per chip and pooled;
* the flagged fraction of every date of ``s2-timeseries-slovenia`` (raw test and with
  the default buffer), next to the reference cloud fraction in ``scenes.json``;
* the flagged fraction of the clear-looking OSCD cities (a false-alarm proxy: no labels);
* co-registration error: each OSCD city's second date (on the first date's grid) is
  moved by known sub-pixel shifts (cubic spline); the error is the estimate against the
  first date, minus the pair's own estimate, minus the known shift.

Run from the repo root::

    .venv/bin/python benchmarks/clouds_coreg.py [SHARED_DATA]
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from campwatch import read_raster, read_scene
from campwatch.coregister import estimate_shift
from campwatch.errors import AcquisitionDateWarning, ReprojectionWarning
from campwatch.masks import cloud_mask, mask_clouds

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
SHIFTS = [(2.3, -1.7), (0.4, 0.25), (-0.7, 1.15), (5.5, 3.2), (-8.6, -0.3)]


def clouds() -> None:
    print("== cloud test vs hand labels (s2-l2a-clouds, mask_clouds defaults)")
    tot_i = tot_u = tot_p = tot_t = 0
    for chip in ("adwp", "aeey"):
        s = read_scene(SHARED / "s2-l2a-clouds" / "train_features" / chip)
        label, _ = read_raster(SHARED / "s2-l2a-clouds" / "train_labels" / f"{chip}.tif", grid=s.grid)
        truth, pred = label == 1, ~mask_clouds(s).valid
        i, u = int((pred & truth).sum()), int((pred | truth).sum())
        tot_i, tot_u, tot_p, tot_t = tot_i + i, tot_u + u, tot_p + int(pred.sum()), tot_t + int(truth.sum())
        print(f"  {chip}: IoU {i / u:.3f}  precision {i / pred.sum():.3f}  recall {i / truth.sum():.3f}  "
              f"(labelled cloud {truth.mean():.1%})")
    print(f"  pooled: IoU {tot_i / tot_u:.3f}  precision {tot_i / tot_p:.3f}  recall {tot_i / tot_t:.3f}")

    print("== Slovenia time series: flagged fraction (raw test / with 2 px buffer) vs reference")
    root = SHARED / "s2-timeseries-slovenia"
    for e in json.loads((root / "scenes.json").read_text()):
        s = read_scene(root / e["image"])
        print(f"  {e['date']}: {cloud_mask(s).mean():.3f} / {mask_clouds(s).meta['cloud_fraction']:.3f}"
              f"  (reference {e['cloud_fraction']:.2f})")

    print("== OSCD cities (no cloud labels; clear-looking scenes): flagged fraction, raw / buffered")
    for d in sorted((SHARED / "oscd").glob("*/imgs_[12]")):
        s = read_scene(d, bands=["blue", "green", "red", "nir", "swir16", "cirrus"])
        print(f"  {d.parent.name}/{d.name} ({s.date}): {cloud_mask(s).mean():.3f} / "
              f"{mask_clouds(s).meta['cloud_fraction']:.3f}")


def coregistration() -> None:
    print("== co-registration: known shifts added to OSCD second dates (red band)")
    errors = []
    for city in sorted(p.name for p in (SHARED / "oscd").iterdir() if (p / "imgs_2").is_dir()):
        a = read_scene(SHARED / "oscd" / city / "imgs_1", bands=["red"])
        b = read_scene(SHARED / "oscd" / city / "imgs_2", grid=a.grid, bands=["red"])
        base = estimate_shift(a.band("red"), b.band("red"))
        red = b.band("red")
        filled = np.where(np.isfinite(red), red, np.nanmedian(red))
        row = []
        for dx, dy in SHIFTS:
            moved = ndimage.shift(filled, (dy, dx), order=3, mode="nearest")
            moved = np.where(ndimage.shift(np.isfinite(red).astype(float), (dy, dx), order=0) > 0, moved, np.nan)
            est = estimate_shift(a.band("red"), moved)
            err = float(np.hypot(est.dx_px - base.dx_px - dx, est.dy_px - base.dy_px - dy))
            errors.append(err)
            row.append(f"{err:.3f}")
        print(f"  {city:9s} pair shift dx={base.dx_px:+.2f} dy={base.dy_px:+.2f} rel={base.reliability:.2f}; "
              f"error per known shift {SHIFTS}: {', '.join(row)} px")
    e = np.array(errors)
    print(f"  all: mean {e.mean():.3f} px, median {np.median(e):.3f}, 95th pct {np.percentile(e, 95):.3f}, "
          f"max {e.max():.3f} px over {e.size} cases")


if __name__ == "__main__":
    warnings.simplefilter("ignore", AcquisitionDateWarning)
    warnings.simplefilter("ignore", ReprojectionWarning)
    clouds()
    coregistration()
