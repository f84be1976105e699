"""Quicklook composites of a comparison: a true-colour stretch and the change overlay drawn on it
(pure arrays; the files are written by :mod:`campwatch.compare` and :mod:`campwatch.engine`).
"""

from __future__ import annotations

import numpy as np

from campwatch.scene import Scene

__all__ = ["rgb_composite", "QUICKLOOK_LEGEND", "change_overlay"]

def rgb_composite(scene: Scene, *, percentiles: tuple[float, float] = (2.0, 98.0),
                  bands: tuple[str, str, str] = ("red", "green", "blue")) -> np.ndarray:
    """(M, N, 3) uint8 true-colour composite with a percentile stretch; no data is black.

    Uses the first available of red/green/blue, else the first band repeated.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> s = read_scene("data/sample_tiles/rennes/imgs_1", bands=["blue", "green", "red"])
    >>> rgb_composite(s).shape
    (339, 563, 3)
    """
    names = [b if b in scene.bands else scene.bands[0] for b in bands]
    x = np.stack([scene.data[scene.bands.index(n)] for n in names], -1).astype(np.float32)
    v = scene.valid
    if v.any():
        lo, hi = np.nanpercentile(x[v], percentiles)
    else:
        lo, hi = 0.0, 1.0
    y = np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1)
    out = (np.nan_to_num(y) * 255).astype(np.uint8)
    out[~v] = 0
    return out


#: The quicklook overlay's colours: (RGB, label) of every class :func:`change_overlay` draws.
QUICKLOOK_LEGEND: tuple[tuple[tuple[int, int, int], str], ...] = (
    ((255, 0, 0), "change"), ((60, 60, 60), "no data (either date, clouds, outside the AOI)"))


def change_overlay(after_rgb: np.ndarray, change: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """(M, N, 3) uint8: AFTER dimmed to 60 %, change in red, no data dark grey (:data:`QUICKLOOK_LEGEND`).

    Examples
    --------
    >>> ov = change_overlay(np.full((1, 3, 3), 100, np.uint8), np.array([[1, 0, 0]], bool), np.array([[0, 0, 1]], bool))
    >>> ov[0].tolist()
    [[255, 0, 0], [60, 60, 60], [60, 60, 60]]
    """
    ov = (after_rgb.astype(np.float32) * 0.6).astype(np.uint8)
    ov[change] = QUICKLOOK_LEGEND[0][0]
    ov[nodata] = QUICKLOOK_LEGEND[1][0]
    return ov
