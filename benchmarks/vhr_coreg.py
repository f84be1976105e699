"""Benchmark VHR co-registration on real cross-sensor pairs: the residual at roof corners.

Prints (does not assert), for each xBD Joplin pair (QuickBird-2 2009 against WorldView-2
2011) and the native-georeference Joplin pair, the misregistration left at the corners of
labelled buildings (xBD: buildings with no or minor damage; native: the 2020 footprints, a
rough building layer) with no correction, with the whole-image estimate
(:func:`campwatch.coregister.coregister`) and with the local RANSAC fit
(:func:`campwatch.coregister.coregister_local`, what VHR mode uses).  The figure is
:func:`campwatch.bench.vhr.corner_residual`: the length of the median shift vector over
64 px patches centred on the corners, and the median length (noise included).  Also: a
known translation and a known affine warp applied to a LEVIR-CD image, and the error of
the recovered transform.

Run from the repo root::

    .venv/bin/python benchmarks/vhr_coreg.py [SHARED_DATA]
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np

from campwatch.bench.vhr import corner_residual, known_warp, read_xbd_pair, transform_error, xbd_pairs, xbd_roof_corners
from campwatch.coregister import coregister, coregister_local
from campwatch.io import read_scene

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"


def _row(name: str, a, b, corners: np.ndarray) -> None:
    max_px = max(10.0, 10.0 / a.grid.pixel_size_m())
    t = time.perf_counter()
    local, s_local = coregister_local(a, b, max_shift_px=max_px)
    secs = time.perf_counter() - t
    glob, s_glob = coregister(a, b, max_shift_px=max_px, min_reliability=0.0)
    print(f"{name}: {len(corners)} corners; local fit: {s_local.model} on {s_local.inliers}/{s_local.windows} windows, "
          f"({s_local.dx_px:+.2f}, {s_local.dy_px:+.2f}) px at the centre, window residual {s_local.residual_px} px, "
          f"{secs:.1f} s; whole-image estimate ({s_glob.dx_px:+.2f}, {s_glob.dy_px:+.2f}) px, "
          f"reliability {s_glob.reliability:.2f}")
    for label, moved in (("none", b), ("whole-image", glob), ("local RANSAC", local)):
        r = corner_residual(a, moved, corners)
        print(f"    {label:<13} systematic {r['systematic_px']} px ({r['systematic_m']} m), "
              f"median {r['median_px']} px, {r['patches']} patches")


def main() -> None:
    warnings.simplefilter("ignore")
    print("== residual misregistration at roof corners (lower is better)")
    root = SHARED / "vhr-xbd-joplin"
    for p in xbd_pairs(root):
        a, b = read_xbd_pair(p.before, p.after)
        _row(p.name, a, b, xbd_roof_corners(root, p))
    nat = SHARED / "vhr-joplin-native"
    a, b = read_xbd_pair(nat / "joplin_pre_utm15n_0p6m.tif", nat / "joplin_post_utm15n_0p6m.tif")
    fp = gpd.read_file(nat / "joplin_msfootprints2020_clip.geojson").to_crs(a.grid.crs)
    inv = ~a.grid.transform
    corners = [inv * xy for g in fp.geometry for poly in getattr(g, "geoms", [g]) for xy in list(poly.exterior.coords)[:-1]]
    _row("joplin-native", a, b, np.asarray(corners))

    print("== known transforms on LEVIR-CD full1024/test_7 (A), recovered by coregister_local")
    s = read_scene(SHARED / "vhr-levircd" / "full1024" / "A" / "test_7.tif")
    for name, kw in (("translation (+3.4, -2.1) px", {"shift_xy": (3.4, -2.1)}),
                     ("affine: 0.2 deg rotation, 0.3 % scale, (+1.3, +0.8) px",
                      {"rotation_deg": 0.2, "scale": 1.003, "shift_xy": (1.3, 0.8)})):
        moved, matrix, offset = known_warp(s, **kw)
        _, sh = coregister_local(s, moved)
        err = transform_error(sh, matrix, offset, s.grid.shape)
        print(f"    {name}: model {sh.model}, {sh.inliers}/{sh.windows} windows; error over the image: "
              f"max {err.max():.3f} px, mean {err.mean():.3f} px")


if __name__ == "__main__":
    main()
