"""Bit-packed masks and connected components: the change pixels of the score passes, window by
window, and the minimum mapping unit over them.

Pure module: a window's hits (:func:`window_hits`, :func:`threshold_open`), the
:class:`WindowChange` the score pass gives for each window, the bit-packed :class:`BitRows`,
8-connected :class:`Components` labelled strip by strip, the region peak (:func:`region_peak`,
:func:`region_seeds`) and the :class:`HitMask` that holds them; :func:`clean_mask` runs the same
clean-up on scores already known (:func:`score_hits`).  The bottom of :mod:`campwatch.detect`: it
imports no other module of the package.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window
from scipy import ndimage as ndi

from campwatch.grid import Grid

__all__ = ["NODATA", "COMPONENT_STRIP", "REGION_PEAK_SIGMA", "window_slices", "inner_slices", "WindowChange",
           "window_core", "window_hits", "threshold_open", "to_mask", "region_peak", "region_seeds", "BitRows",
           "Components", "HitMask", "score_hits", "clean_mask"]

#: Mask value for no data in ``ChangeResult.mask``.
NODATA = 255
#: Rows per strip when connected components are labelled (min mapping unit, polygons).
COMPONENT_STRIP = 1024
#: Hysteresis of the ``default`` detector: a change region (8-connected pixels above the
#: chi-square level) is kept only if its strongest pixel's 3 × 3 evidence exceeds this many
#: noise sigmas.  The chi-square level alone admits every region whose pixels are
#: individually unlikely as noise; most false regions are real but weak spectral change
#: (fields, shadows, cars) that never rises far above it, while new roofs and roads have a
#: strong core.  Chosen leave-one-city-out on the 7 labelled OSCD cities from 7 to 14 sigma:
#: 10 in 6 folds, 11 in the 7th (pooled held-out F1 0.289 -> 0.324, 6 of 7 cities up;
#: see ``campwatch bench oscd``).
REGION_PEAK_SIGMA = 10.0
_EIGHT = np.ones((3, 3), bool)


def window_slices(win: Window) -> tuple[slice, slice]:
    """The (row, column) slices of a window, for indexing an array on the same grid.

    >>> window_slices(Window(2, 1, 3, 4))
    (slice(1, 5, None), slice(2, 5, None))
    """
    r, c = int(win.row_off), int(win.col_off)
    return slice(r, r + int(win.height)), slice(c, c + int(win.width))


def inner_slices(core: Window, pad: Window) -> tuple[slice, slice]:
    """The (row, column) slices of ``core`` within ``pad`` (the window grown by its halo).

    >>> inner_slices(Window(4, 4, 2, 2), Window(2, 3, 6, 5))
    (slice(1, 3, None), slice(2, 4, None))
    """
    r, c = int(core.row_off - pad.row_off), int(core.col_off - pad.col_off)
    return slice(r, r + int(core.height)), slice(c, c + int(core.width))


@dataclass(frozen=True, eq=False)
class WindowChange:
    """One window's part of the score pass (:func:`detect_window`), on the window's core.

    Attributes
    ----------
    score : (m, n) float32 ndarray
        NaN where not valid.
    valid : (m, n) bool ndarray
        Valid on both dates (and any extra validity the caller gave).
    hit : (m, n) bool ndarray or None
        Thresholded, opened and valid (before the minimum mapping unit); None when no
        threshold was given (it is chosen from the scores' histogram afterwards).
    direction : (m, n) float32 ndarray or None
        CVA direction in degrees (``cva`` only).
    core : Window or None
        The core on the grid, when the caller gave it (``window``).
    counts : (K,) int64 ndarray or None
        The core scores' counts in the bins of :func:`new_histogram`, when asked for (``histogram``).
    """

    score: np.ndarray
    valid: np.ndarray
    hit: np.ndarray | None = None
    direction: np.ndarray | None = None
    core: Window | None = None
    counts: np.ndarray | None = None


def window_core(w: WindowChange) -> Window:
    """The core of ``w`` on the grid (:attr:`WindowChange.core`), which the passes need."""
    if w.core is None:
        raise ValueError("run_passes needs each window's core (detect_window(..., window=core))")
    return w.core


def window_hits(score: np.ndarray, threshold: float, core: tuple[slice, slice], *, valid: np.ndarray,
                keep: np.ndarray | None = None, opening_radius: int = 0) -> np.ndarray:
    """The change pixels of a window's core before the minimum mapping unit:
    :func:`threshold_open` of the window (or of the core alone without an opening), cut to
    the core, and ``valid``.

    ``score`` and ``keep`` are on the window, read with at least ``2 * opening_radius``
    pixels of halo; ``valid`` is on the core.
    """
    part = (slice(None), slice(None)) if opening_radius else core
    hit = threshold_open(score[part], threshold, keep=None if keep is None else keep[part],
                         opening_radius=opening_radius)
    if opening_radius:
        hit = hit[core]
    return hit & valid


def threshold_open(score: np.ndarray, threshold: float, *, keep: np.ndarray | None = None,
                   opening_radius: int = 0) -> np.ndarray:
    """``score > threshold`` (and ``keep``), opened with a disc of ``opening_radius``.

    The opening reaches ``2 * opening_radius`` pixels: a window read with that halo
    gives exact values in its core.
    """
    with np.errstate(invalid="ignore"):
        w = np.greater(score, threshold)  # NaN (no data) is never above it
    if keep is not None:
        w &= keep
    if opening_radius:
        w = ndi.binary_opening(w, structure=_disk(opening_radius))
    return w


def _disk(r: int) -> np.ndarray:
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y) <= r * r


def to_mask(hit: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 mask: 1 where ``hit``, 0 where only ``valid``, 255 (no data) elsewhere (the
    ``change_mask.tif`` encoding, in memory and for each streamed strip)."""
    return np.where(valid, hit.astype(np.uint8), np.uint8(NODATA)).astype(np.uint8)


def region_peak(method: str) -> float | None:
    """The score a change region's strongest pixel must exceed for the region to be kept
    (:data:`REGION_PEAK_SIGMA` for ``default``; None, no such test, for the other methods).

    Examples
    --------
    >>> region_peak("default"), region_peak("naive-cva")
    (10.0, None)
    """
    return REGION_PEAK_SIGMA if method == "default" else None


def region_seeds(hit: np.ndarray, score: np.ndarray, peak: float) -> np.ndarray:
    """The ``hit`` pixels whose score exceeds ``peak`` (:func:`region_peak`): a change region
    is kept only if it holds one (:class:`Components` ``seed``).

    Examples
    --------
    >>> region_seeds(np.array([True, True, False]), np.array([12.0, np.nan, 11.0]), 10.0).tolist()
    [True, False, False]
    """
    with np.errstate(invalid="ignore"):
        return hit & np.greater(score, peak)  # NaN (no data) is never above it


class BitRows:
    """An (M, N) bool mask stored one bit per pixel (a full tile: 15 MB instead of 120 MB);
    row slices read back as bool arrays, so :class:`Components` takes it.

    Examples
    --------
    >>> m = BitRows((3, 10))
    >>> m.put((slice(1, 3), slice(3, 6)), np.ones((2, 3), bool))
    >>> m[1:2].astype(int).tolist(), m.shape
    ([[0, 0, 0, 1, 1, 1, 0, 0, 0, 0]], (3, 10))
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.bits = np.zeros((self.shape[0], -(-self.shape[1] // 8)), np.uint8)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.unpackbits(self.bits[rows], axis=1, count=self.shape[1]).view(bool)

    def put(self, sl: tuple[slice, slice], values: np.ndarray) -> None:
        """Set the pixels of the window ``sl`` (row and column slices with explicit bounds)."""
        c0, c1 = int(sl[1].start), int(sl[1].stop)
        if c0 % 8 == 0 and (c1 % 8 == 0 or c1 == self.shape[1]):  # whole bytes (every window but
            self.bits[sl[0], c0 // 8:-(-c1 // 8)] = np.packbits(values, axis=1)  # in small grids)
            return
        b0, b1 = c0 // 8, -(-c1 // 8)
        block = np.unpackbits(self.bits[sl[0], b0:b1], axis=1).view(bool)
        block[:, c0 - 8 * b0:c1 - 8 * b0] = values
        self.bits[sl[0], b0:b1] = np.packbits(block, axis=1)


class Components:
    """8-connected components of a large (M, N) bool mask, labelled strip by strip.

    Each strip of :data:`COMPONENT_STRIP` rows is labelled on its own (int32 labels for
    one strip at a time, never for the whole mask); labels that touch across a strip
    border (8-connectivity) are merged with a union-find over the border pairs.  Areas
    are summed per strip label, then per component, in the same order whatever
    produced the mask, so an in-memory and a streamed run keep the same regions.

    Parameters
    ----------
    hit : (M, N) bool ndarray
        Or any object with ``shape`` whose row slices ``hit[r0:r1]`` are bool arrays
        (the bit-packed :class:`BitRows` of :func:`run_passes`).
    row_areas : (M, 1) ndarray
        Area of a pixel in each row (``Grid.pixel_area_m2()``).
    min_area_m2 : float
        Components with a smaller area are dropped (``kept`` False, object id 0).
    seed : (M, N) bool ndarray or like ``hit``, optional
        When given, a component is kept only if at least one of its pixels is a seed
        (hysteresis: the region's peak evidence must reach a stricter level, see
        :data:`REGION_PEAK_SIGMA`).  Seeds outside ``hit`` are ignored.
    strip : int
        Rows per strip.
    workers : int
        Threads labelling strips (``ndimage.label`` releases the GIL); the result does not
        depend on it.

    Examples
    --------
    >>> hit = np.zeros((5, 4), bool); hit[0, 0] = True; hit[2:5, 1:3] = True
    >>> c = Components(hit, np.full((5, 1), 100.0), min_area_m2=200, strip=2)
    >>> c.count, c.kept_count, c.labels(1).tolist()
    (2, 1, [[0, 1, 1, 0], [0, 1, 1, 0]])
    >>> seed = np.zeros((5, 4), bool); seed[0, 0] = True    # only the lone pixel is strong
    >>> Components(hit, np.full((5, 1), 100.0), seed=seed, strip=2).kept_count
    1
    """

    def __init__(self, hit: Any, row_areas: np.ndarray, *, min_area_m2: float = 0.0, seed: Any = None,
                 strip: int = COMPONENT_STRIP, workers: int = 1) -> None:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        self.hit = hit
        self.strip = strip
        m = hit.shape[0]
        self.bounds = [(r, min(r + strip, m)) for r in range(0, m, strip)]
        self.offsets: list[int] = []
        areas = [np.zeros(1)]
        seeds = [np.zeros(1)]
        ea: list[np.ndarray] = []
        eb: list[np.ndarray] = []
        off = 0
        prev_last: np.ndarray | None = None
        self._strip_labels: list[np.ndarray | None] = []
        def label_strip(bounds: tuple[int, int]) -> tuple[int, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray,
                                                          np.ndarray]:
            r0, r1 = bounds
            lab, n = ndi.label(hit[r0:r1], structure=_EIGHT)
            area = np.zeros(0)
            nseed = np.zeros(0)
            vals: np.ndarray | None = np.zeros(0, np.int32)
            if n and seed is not None:
                nseed = np.bincount(lab[seed[r0:r1]], minlength=n + 1)[1:].astype(np.float64)
            if n:
                # the labels of the hit pixels in raster order, and each label's area summed in
                # that order (one compiled pass; the sums of np.bincount with row-area weights)
                from campwatch._kernels import label_row_areas

                vals, area = label_row_areas(lab, np.ascontiguousarray(row_areas[r0:r1, 0], dtype=np.float64), n)
                area = area[1:]
                # kept for labels(k) unless the strip is mostly hits (then it is labelled again)
                if 4 * vals.size > lab.size:
                    vals = None
            return n, area, vals, lab[0].copy(), lab[-1].copy(), nseed

        # strips labelled on threads (ndimage.label releases the GIL), joined in order
        with ThreadPoolExecutor(max(1, workers)) as pool:
            labelled = list(pool.map(label_strip, self.bounds))
        for n, area, vals, top_row, bottom_row, nseed in labelled:
            self.offsets.append(off)
            if n:
                areas.append(area)
                if seed is not None:
                    seeds.append(nseed)
            self._strip_labels.append(vals)
            first = np.where(top_row > 0, top_row + off, 0)
            if prev_last is not None:
                for dc in (-1, 0, 1):
                    up = prev_last[max(0, -dc):len(first) - max(0, dc)]
                    down = first[max(0, dc):len(first) - max(0, -dc)]
                    both = (up > 0) & (down > 0)
                    ea.append(up[both])
                    eb.append(down[both])
            prev_last = np.where(bottom_row > 0, bottom_row + off, 0)
            off += n
        self.n_labels = off
        label_area = np.concatenate(areas)
        if ea:
            a, b = np.concatenate(ea), np.concatenate(eb)
        else:
            a = b = np.zeros(0, dtype=np.int64)
        graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(off + 1, off + 1))
        ncomp, comp = connected_components(graph, directed=False)
        comp_area = np.bincount(comp, weights=label_area, minlength=ncomp)
        # order components by their first pixel in raster order (their smallest label), as
        # ``ndimage.label`` numbers the regions of a whole mask
        first_label = np.full(ncomp, np.iinfo(np.int64).max)
        np.minimum.at(first_label, comp, np.arange(off + 1))
        is_bg = np.zeros(ncomp, bool)
        is_bg[comp[0]] = True
        self.count = int(ncomp - 1)
        keep = ~is_bg & (comp_area >= min_area_m2)
        if seed is not None:
            keep &= np.bincount(comp, weights=np.concatenate(seeds), minlength=ncomp) > 0
        order = np.argsort(first_label[keep], kind="stable")
        obj = np.zeros(ncomp, dtype=np.int64)
        obj[np.flatnonzero(keep)[order]] = np.arange(1, int(keep.sum()) + 1)
        self.kept_count = int(keep.sum())
        self._label_obj = obj[comp].astype(np.int32)  # strip label (+ offset) -> object id (0: dropped)
        self.object_area_m2 = comp_area[np.flatnonzero(keep)[order]]

    def keep_only(self, keep: np.ndarray) -> None:
        """Drop the objects whose ``keep[id]`` is False (``keep[0]``, the background, is not
        read) and number the others 1, 2, ... in their order."""
        keep = np.asarray(keep, dtype=bool).copy()
        keep[0] = False
        new = np.zeros(len(keep), np.int32)
        new[keep] = np.arange(1, int(keep.sum()) + 1)
        self._label_obj = new[self._label_obj]
        self.object_area_m2 = self.object_area_m2[keep[1:]]
        self.kept_count = int(keep.sum())

    def labels(self, k: int) -> np.ndarray:
        """(rows, N) int32 object ids of strip ``k`` (0: background or dropped)."""
        r0, r1 = self.bounds[k]
        hit = self.hit[r0:r1]
        vals = self._strip_labels[k]
        if vals is None:
            lab, _ = ndi.label(hit, structure=_EIGHT)
            return np.where(lab > 0, self._label_obj[lab + self.offsets[k]], 0).astype(np.int32)
        out = np.zeros(hit.shape, np.int32)
        out[hit] = self._label_obj[vals + self.offsets[k]]
        return out

    def to_mask(self, valid: Any) -> np.ndarray:
        """(M, N) uint8 :func:`to_mask` of the kept components, strip by strip; ``valid`` is an
        (M, N) bool array or like it (:class:`BitRows`)."""
        mask = np.empty(self.hit.shape, np.uint8)
        for k, (r0, r1) in enumerate(self.bounds):
            mask[r0:r1] = to_mask(self.labels(k) > 0, valid[r0:r1])
        return mask


class HitMask:
    """The hit pixels of the score passes, window by window, with their region seeds
    (:func:`region_seeds`), bit-packed, and the minimum mapping unit over them
    (:meth:`components`): the clean-up of :func:`run_passes` and of :func:`clean_mask`.

    Parameters
    ----------
    shape : (int, int)
        The grid's (M, N).
    peak : float or None
        :func:`region_peak`: a region is kept only if one of its pixels scores above it
        (None: no such test).
    """

    def __init__(self, shape: tuple[int, int], *, peak: float | None) -> None:
        self.peak = peak
        self.hit = BitRows(shape)
        self.strong = BitRows(shape) if peak is not None else None

    def add(self, w: WindowChange) -> None:
        """One window's hits, and its region seeds."""
        assert w.hit is not None
        sl = window_slices(window_core(w))
        self.hit.put(sl, w.hit)
        if self.strong is not None and self.peak is not None:
            self.strong.put(sl, region_seeds(w.hit, w.score, self.peak))

    def components(self, grid: Grid, *, min_area_m2: float, workers: int = 1) -> Components:
        """:class:`Components` of the hits: regions below ``min_area_m2`` (or without a seed) dropped."""
        return Components(self.hit, grid.pixel_area_m2(), min_area_m2=max(min_area_m2, 0.0), seed=self.strong,
                          workers=workers)


def score_hits(score: np.ndarray, threshold: float, windows: Iterable[tuple[Window, Window]], *,
               valid: np.ndarray, keep: np.ndarray | None = None,
               opening_radius: int = 0) -> Iterator[WindowChange]:
    """The hits of each ``(core, padded)`` window of scores known on the whole grid
    (:func:`window_hits`): the second score pass of :class:`SceneWindows` and the windows of
    :func:`clean_mask`.  ``threshold_open`` reads exact scores up to ``2 * opening_radius``
    pixels from the core, as a pass that scores the window again would; the padded windows
    need that halo.

    ``score``, ``valid`` and ``keep`` are (M, N) arrays on the grid.
    """
    for core, pad in windows:
        ps, cs, inner = window_slices(pad), window_slices(core), inner_slices(core, pad)
        hit = window_hits(score[ps], threshold, inner, valid=valid[cs], keep=None if keep is None else keep[ps],
                          opening_radius=opening_radius)
        yield WindowChange(score[cs], valid[cs], hit, None, core)


def clean_mask(score: np.ndarray, threshold: float, grid: Grid, *, valid: np.ndarray, min_area_m2: float = 0.0,
               opening_radius: int = 0, keep: np.ndarray | None = None,
               window_size: int | None = None, peak: float | None = None) -> np.ndarray:
    """Threshold, open, and drop regions below the minimum mapping unit, on scores already known
    (to try another threshold on a result's ``score``, say): the clean-up of :func:`run_passes`,
    through the same :func:`score_hits` and :class:`HitMask`.

    With ``peak``, a region (8-connected) is also dropped unless one of its pixels scores
    above ``peak`` (hysteresis; :func:`region_peak`).

    Returns an (M, N) uint8 mask: 1 change, 0 no change, 255 no data.

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid((6, 6), Affine(10, 0, 0, 0, -10, 0), "EPSG:32652")
    >>> s = np.zeros((6, 6), np.float32); s[0, 0] = 9; s[2:5, 2:5] = 9
    >>> m = clean_mask(s, 5.0, g, valid=np.ones((6, 6), bool), min_area_m2=200)
    >>> int(m.sum()), int(m[0, 0])
    (9, 0)
    >>> s[3, 3] = 12                                     # the 3 x 3 region peaks at 12: kept; the pixel is not
    >>> int(clean_mask(s, 5.0, g, valid=np.ones((6, 6), bool), peak=10.0).sum())
    9
    """
    hits = HitMask(grid.shape, peak=peak)
    halo = 2 * opening_radius  # erosion then dilation: each reaches r pixels
    for w in score_hits(score, threshold, grid.tiles(window_size or max(grid.shape), halo=halo), valid=valid,
                        keep=keep, opening_radius=opening_radius):
        hits.add(w)
    return hits.components(grid, min_area_m2=min_area_m2).to_mask(valid)
