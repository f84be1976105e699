"""Stage 3 of VHR mode: how two dates differ per pixel (a shift-tolerant difference, the naive
baseline) and per object (grey-level correlation: the same structure on both dates)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import slic

from campwatch.scene import Scene
from campwatch.vhr.common import otsu_cut, to_px

__all__ = ["PAIR_SEGMENT_M2", "naive_cva", "pair_segments", "segment_mean", "smoothed_grey", "structure_similarity",
           "tolerant_difference"]

#: Mean area of the segments over which coarse-pixel change evidence is averaged, m²: a house with its
#: plot (20 m × 20 m). Leave-one-dataset-out over 100-1600 m² picked 800, 800 and 200 m² for the three
#: coarse sets; every size from 200 to 800 m² beats the old rule and naive on each (docs/vhr.md).
PAIR_SEGMENT_M2 = 400.0


def tolerant_difference(before: np.ndarray, after: np.ndarray, *, radius_px: int) -> np.ndarray:
    """Change magnitude that forgives shifts of up to ``radius_px``.

    For each band, how far a pixel's value lies outside the range of the other date's
    values within ``radius_px``; summed over bands and taken both ways (the smaller).
    Residual misregistration, building lean between view angles and moving shadows'
    edges give no difference when the same surface is within reach.

    Parameters
    ----------
    before, after : (B, M, N) ndarray
    radius_px : int

    Returns
    -------
    (M, N) float32 ndarray, >= 0

    Examples
    --------
    >>> a = np.zeros((1, 9, 9), np.float32); a[0, 4, 4] = 1.0
    >>> b = np.zeros((1, 9, 9), np.float32); b[0, 4, 5] = 1.0   # moved by one pixel
    >>> float(tolerant_difference(a, b, radius_px=1).max()), float(tolerant_difference(a, b, radius_px=0).max())
    (0.0, 1.0)
    """
    size = 2 * int(radius_px) + 1
    ab = np.zeros(before.shape[1:], np.float32)
    ba = np.zeros(before.shape[1:], np.float32)
    for i in range(before.shape[0]):
        a, b = before[i].astype(np.float32), after[i].astype(np.float32)
        lo_a, hi_a = ndimage.minimum_filter(a, size), ndimage.maximum_filter(a, size)
        lo_b, hi_b = ndimage.minimum_filter(b, size), ndimage.maximum_filter(b, size)
        ab += np.maximum(0, np.maximum(lo_a - b, b - hi_a))
        ba += np.maximum(0, np.maximum(lo_b - a, a - hi_b))
    return np.minimum(ab, ba)


def smoothed_grey(before: np.ndarray, after: np.ndarray, *, pixel_size_m: float,
                  smooth_m: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Both dates' grey levels (mean of the first three bands, Gaussian-smoothed with
    ``smooth_m``), float64: what :func:`structure_similarity` correlates.  Made once per
    pair and passed as ``grey`` when several object sets are tested."""
    sigma = smooth_m / pixel_size_m
    return tuple(ndimage.gaussian_filter(np.asarray(x, np.float32)[:3].mean(axis=0), sigma).astype(np.float64)
                 for x in (before, after))  # type: ignore[return-value]


def structure_similarity(labels: np.ndarray, before: np.ndarray, after: np.ndarray, *, pixel_size_m: float,
                         rim_m: float = 2.0, smooth_m: float = 1.0,
                         grey: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Per object, the correlation of the two dates' brightness over the object and a ``rim_m`` rim.

    Pearson correlation of the two dates' grey levels (band mean, Gaussian-smoothed with
    ``smooth_m``) over each object grown by ``rim_m``.  It is invariant to a gain and an
    offset per object, so a roof whose colour balance changed between dates, with its
    outline, ridge and cast shadow in place, still correlates highly.  A building on land
    that was bare before, or a roof that became rubble, does not.

    Parameters
    ----------
    labels : (M, N) int ndarray
        0 for background, 1..K for objects.
    before, after : (B, M, N) ndarray
    pixel_size_m, rim_m, smooth_m : float

    Returns
    -------
    (K + 1,) float64 ndarray
        Correlation per label (index 0 is the background); 0 where either date is flat.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> b = np.full((3, 40, 40), 0.3, np.float32); b[:, 10:30, 10:30] = 0.8; b[:, 30:33, 10:30] = 0.05
    >>> lab = np.zeros((40, 40), np.int32); lab[10:30, 10:30] = 1
    >>> a = 0.5 * b + 0.1                                     # same roof, other colour balance
    >>> round(float(structure_similarity(lab, b, a, pixel_size_m=0.5)[1]), 2)
    1.0
    >>> a = np.full_like(b, 0.3) + 0.02 * rng.standard_normal(b.shape).astype(np.float32)  # roof gone
    >>> float(structure_similarity(lab, b, a, pixel_size_m=0.5)[1]) < 0.3
    True
    """
    labels = np.asarray(labels)
    n = int(labels.max()) + 1
    if n <= 1:
        return np.zeros(n)
    gb, ga = grey if grey is not None else smoothed_grey(before, after, pixel_size_m=pixel_size_m, smooth_m=smooth_m)
    grown = ndimage.grey_dilation(labels, size=(2 * to_px(rim_m, pixel_size_m, minimum=0) + 1,) * 2)
    grown = np.where(labels > 0, labels, grown).ravel()
    count = np.maximum(np.bincount(grown, minlength=n), 1)

    def mean(x: np.ndarray) -> np.ndarray:
        return np.bincount(grown, weights=x.ravel(), minlength=n) / count

    mb, ma = mean(gb), mean(ga)
    vb, va = mean(gb * gb) - mb * mb, mean(ga * ga) - ma * ma
    cov = mean(gb * ga) - mb * ma
    ok = (vb > 1e-8) & (va > 1e-8)
    return np.where(ok, cov / np.sqrt(np.where(ok, vb * va, 1.0)), 0.0)


def pair_segments(before: np.ndarray, after: np.ndarray, valid: np.ndarray, *, pixel_size_m: float,
                  area_m2: float = PAIR_SEGMENT_M2) -> np.ndarray:
    """Segments shared by both dates: SLIC superpixels of the two dates' first three bands stacked.

    Each band is standardised over the valid pixels, so neither date nor band dominates; the
    number of segments is the valid area over ``area_m2``.  A segment therefore follows edges
    of either date: a roof that is new on the second date is cut out of the field it replaced.

    Parameters
    ----------
    before, after : (B, M, N) ndarray
        The second date normalised to the first (:func:`campwatch.vhr.normalise_to`).
    valid : (M, N) bool ndarray
    pixel_size_m, area_m2 : float

    Returns
    -------
    (M, N) int ndarray
        Labels 0..K-1 (invalid pixels belong to a segment too; :func:`segment_mean` ignores them).

    Examples
    --------
    >>> x = np.zeros((3, 40, 40), np.float32); x[:, :, 20:] = 1.0
    >>> lab = pair_segments(x, x, np.ones((40, 40), bool), pixel_size_m=2.0, area_m2=1600.0)
    >>> len(np.unique(lab)), len(np.unique(lab[:, :20])) + len(np.unique(lab[:, 20:]))
    (4, 4)
    """
    stack = np.concatenate([np.asarray(before, np.float32)[:3], np.asarray(after, np.float32)[:3]])
    stack = np.nan_to_num(stack).transpose(1, 2, 0)
    if valid.any():
        stack = (stack - stack[valid].mean(axis=0)) / (stack[valid].std(axis=0) + 1e-9)
    n = max(1, int(valid.sum() * pixel_size_m ** 2 / area_m2))
    return slic(stack, n_segments=n, compactness=0.1, channel_axis=-1, start_label=0)


def segment_mean(values: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each pixel's segment mean of ``values`` over the segment's valid pixels (0 where it has none).

    Examples
    --------
    >>> segment_mean(np.array([[1.0, 3.0, 9.0]]), np.array([[0, 0, 1]]), np.array([[True, True, False]]))
    array([[2., 2., 0.]])
    """
    lab = labels.ravel()
    w = valid.ravel().astype(np.float64)
    n = int(lab.max()) + 1
    total = np.bincount(lab, weights=np.where(valid, values, 0.0).ravel(), minlength=n)
    return (total / np.maximum(np.bincount(lab, weights=w, minlength=n), 1.0))[labels]


def naive_cva(before: Scene, after: Scene) -> np.ndarray:
    """The baseline VHR mode is measured against: RGB change-vector magnitude, Otsu threshold.

    No normalisation, no co-registration, no building logic: what a first attempt does.

    Parameters
    ----------
    before, after : Scene
        On one grid, with red, green and blue.

    Returns
    -------
    (M, N) bool ndarray

    Examples
    --------
    >>> from affine import Affine
    >>> from campwatch.grid import Grid
    >>> g = Grid((10, 10), Affine(0.5, 0, 0, 0, -0.5, 0), "EPSG:32652")
    >>> a = np.full((3, 10, 10), 50, np.float32); b = a.copy(); b[:, :3, :3] = 200
    >>> v = np.ones((10, 10), bool)
    >>> int(naive_cva(Scene(a, ("red", "green", "blue"), g, v), Scene(b, ("red", "green", "blue"), g, v)).sum())
    9
    """
    before.grid.require_same(after.grid, what="before and after")
    names = ["red", "green", "blue"]
    a = np.stack([before.band(n) for n in names]).astype(np.float64)
    b = np.stack([after.band(n) for n in names]).astype(np.float64)
    valid = before.valid & after.valid & np.all(np.isfinite(a) & np.isfinite(b), axis=0)
    mag = np.sqrt(((b - a) ** 2).sum(axis=0))
    return (mag > otsu_cut(mag[valid])) & valid
