"""The deep confirmation of change regions: the default method's last step, a region stays where
a pretrained network's features of both dates changed too (:func:`confirm_regions`).

Pure module: it reads the windows it needs through the :class:`~campwatch.detect.methods.WindowSource`
of the passes (its ``read``), and the network's weights through :mod:`campwatch.vhr.deep`.  What it
gained on the labelled OSCD cities is in the docstring of :mod:`campwatch.detect.methods`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from campwatch.detect.components import BitRows, Components
from campwatch.detect.methods import WindowSource
from campwatch.threshold import Histogram, otsu
from campwatch.vhr.deep import DEEP_BLOCKS, deep_change, deep_moments

__all__ = ["DEEP_CONFIRMED", "DEEP_TILE", "DeepStats", "deep_stats", "confirm_regions"]

#: Methods whose change regions :func:`confirm_regions` keeps only where a pretrained
#: network's features changed too.
DEEP_CONFIRMED = ("default",)
#: Edge of the tiles the network runs on, and the rows and columns read around each (its
#: reach, :data:`campwatch.vhr.deep.MIN_HALO`, with room; both multiples of 16 so every tile's
#: features line up with the grid's).
DEEP_TILE, DEEP_HALO = 1024, 128
_RGB = ("red", "green", "blue")


@dataclass(frozen=True)
class DeepStats:
    """The scene statistics :func:`confirm_regions` needs, from the fit sample: each date's
    red, green and blue 99th percentiles (the network sees each band over its own, as
    :func:`campwatch.vhr.rgb_stack` scales VHR scenes) and the network channels' moments
    (:func:`campwatch.vhr.deep.deep_moments`, summed over the fit windows)."""

    scale_before: np.ndarray
    scale_after: np.ndarray
    moments: dict[int, np.ndarray]
    pixels: int

    def rgb(self, data: np.ndarray, bands: tuple[str, ...], *, after: bool) -> np.ndarray:
        """The network's input from one date's ``data`` in ``bands`` order."""
        scale = self.scale_after if after else self.scale_before
        return data[[bands.index(b) for b in _RGB]] / scale[:, None, None]


def deep_stats(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], bands: tuple[str, ...]) -> DeepStats | None:
    """:class:`DeepStats` from the fit windows' ``(before, after, valid)`` (None: no valid pixel)."""
    if not any(v.any() for _, _, v in parts):
        return None

    def scale(date: int) -> np.ndarray:  # each band's 99th percentile over the valid sample pixels
        q = [np.percentile(np.concatenate([p[date][bands.index(b)][p[2]] for p in parts]), 99.0) for b in _RGB]
        return np.where(np.array(q) > 0, q, 1.0)

    stats = DeepStats(scale(0), scale(1), {}, int(sum(v.sum() for _, _, v in parts)))
    for b, a, v in parts:
        if not v.any():
            continue
        for i, m in deep_moments(stats.rgb(b, bands, after=False), stats.rgb(a, bands, after=True), v,
                                 tile=DEEP_TILE, halo=DEEP_HALO).items():
            stats.moments[i] = stats.moments[i] + m if i in stats.moments else m
    return stats


def confirm_regions(comps: Components, valid: BitRows, source: WindowSource,
                    fit_sample: list[tuple[np.ndarray, np.ndarray, np.ndarray]], bands: tuple[str, ...], *,
                    workers: int = 1,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Keep the change regions whose pixels' deep change averages above the scene's Otsu cut.

    The deep change is :func:`campwatch.vhr.deep.deep_change` (DCVA with EfficientNet-lite0's
    ImageNet features, no training) of both dates' red, green and blue, in :data:`DEEP_TILE`
    tiles read with a :data:`DEEP_HALO` margin, each network channel in units of its spread
    over the ``(before, after, valid)`` windows of ``fit_sample`` (:func:`deep_stats`, run only
    when a region is kept).  Only tiles that hold a kept region are run;
    the cut is Otsu's over the valid pixels of those tiles, so it comes from the scene, not
    from a constant.  A region is kept when the mean deep change over its pixels exceeds
    the cut: a decision per region, as the region peak is.  ``comps`` is changed in place
    (:meth:`Components.keep_only`).  ``workers`` threads run a strip's tiles (the result does
    not depend on it); ``progress(done, total)`` is called per strip of ``comps``.
    Returns the summary's ``deep_confirmation`` block.

    Measured on the 7 labelled OSCD cities of ``../shared/data/oscd`` (``campwatch bench
    oscd``): see the docstring of :mod:`campwatch.detect.methods`.
    """
    m, n = valid.shape
    before = comps.kept_count
    stats = deep_stats(fit_sample, bands) if before else None
    if stats is None:
        note = "no change region" if not before else "no valid pixel in the fit sample: regions kept unconfirmed"
        return {"method": "deep", "cut": None, "regions": before, "confirmed": before, "pixels_scored": 0,
                "note": note}
    hist = Histogram.linear(0.0, 4.0, bins=2048)
    sums = np.zeros(comps.kept_count + 1)
    counts = np.zeros(comps.kept_count + 1)
    scored_px = 0
    def tile_change(r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        pr0, pc0 = max(r0 - DEEP_HALO, 0), max(c0 - DEEP_HALO, 0)
        pad = Window(pc0, pr0, min(c1 + DEEP_HALO, n) - pc0, min(r1 + DEEP_HALO, m) - pr0)
        b, a, v = source.read(pad)
        size = -(-max(int(pad.height), int(pad.width)) // 16) * 16
        d = deep_change(stats.rgb(b, bands, after=False), stats.rgb(a, bands, after=True), v,
                        tile=size, halo=DEEP_HALO, moments=stats.moments)
        core = (slice(r0 - pr0, r1 - pr0), slice(c0 - pc0, c1 - pc0))
        return d[core], v[core]

    with ThreadPoolExecutor(max(1, workers)) as pool:  # the network's numpy releases the GIL
        for k, (r0, r1) in enumerate(comps.bounds):
            lab = comps.labels(k)
            cols = [(c0, min(c0 + DEEP_TILE, n)) for c0 in range(0, n, DEEP_TILE)]
            tiles = [(r0, r1, c0, c1) for c0, c1 in cols if lab[:, c0:c1].any()]
            ok_rows = valid[r0:r1] if tiles else np.zeros((0, n), bool)
            for (_, _, c0, c1), (d, v) in zip(tiles, pool.map(lambda t: tile_change(*t), tiles), strict=True):
                ids = lab[:, c0:c1]
                ok = ok_rows[:, c0:c1] & v
                hist.add(d[ok])
                scored_px += int(ok.sum())
                sums += np.bincount(ids[ok], weights=d[ok], minlength=len(sums))
                counts += np.bincount(ids[ok], minlength=len(counts))
            if progress is not None:
                progress(k + 1, len(comps.bounds))
    cut = otsu(hist)
    keep = (counts > 0) & (sums > cut * counts)
    comps.keep_only(keep)
    return {"method": "deep", "cut": round(float(cut), 6), "regions": before, "confirmed": comps.kept_count,
            "pixels_scored": scored_px, "network": "EfficientNet-lite0 (ImageNet), blocks " +
            ", ".join(str(b) for b in DEEP_BLOCKS), "tile_px": DEEP_TILE, "halo_px": DEEP_HALO,
            "spread_sample_pixels": stats.pixels}
