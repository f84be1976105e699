"""Stage 4 of VHR mode: roof-like segments of the first date, of any roof colour, that became
rubble on the second; small compact objects that vanished."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import measure, segmentation

from campwatch.vhr.buildings import vegetation_index
from campwatch.vhr.change import segment_mean, structure_similarity
from campwatch.vhr.common import SMALL_DEMOLITION_M2, to_px

__all__ = ["debris_objects", "deep_confirmed"]


def _local_std(x: np.ndarray, size: int) -> np.ndarray:
    """Standard deviation of ``x`` in a ``size`` x ``size`` window."""
    m = ndimage.uniform_filter(x, size, mode="nearest")
    m2 = ndimage.uniform_filter(x * x, size, mode="nearest")
    return np.sqrt(np.maximum(m2 - m * m, 0.0)).astype(np.float32)


def debris_objects(before: np.ndarray, after: np.ndarray, valid: np.ndarray, *, pixel_size_m: float,
                   exclude: np.ndarray | None = None, segment_m2: float = 30.0, min_area_m2: float = 20.0,
                   max_area_m2: float = 5000.0, texture_m: float = 1.5, max_roof_cv: float = 0.07,
                   min_texture_gain: float = 1.8, max_debris_cv: float = 0.12, min_colour_change: float = 0.4,
                   max_darkening: float = 0.1, min_solidity: float = 0.6, loose: tuple[float, float, float] = (0.15, 0.3, 0.4),
                   max_similarity: float = 0.3, strong_texture_gain: float = 2.5,
                   grey: tuple[np.ndarray, np.ndarray] | None = None,
                   small: tuple[float, float, float, float, float] | None = (8.0, 0.8, 0.1, 0.5, 0.1),
                   max_blue_after: float = 0.0) -> np.ndarray:
    """Label roof-like segments of the first date that became rubble on the second.

    A demolition test that does not need the per-date building detector, so it accepts
    roofs of any colour.  The first date is cut into segments (Felzenszwalb graph
    segmentation, scale ``segment_m2``), and the segments are cut again along vegetated
    pixels (vegetation index smoothed over 1 m) and shadowed ones (below the scene's 20th
    brightness percentile): a brown roof and a dry lawn often fall into one segment.
    A segment is **roof-like before** when it is
    not vegetated, not in shadow (above the scene's 20th brightness percentile),
    compact (filled area over convex-hull area >= ``min_solidity``), of ``min_area_m2``
    to ``max_area_m2``, and homogeneous (local standard deviation over ``texture_m``
    at most ``max_roof_cv`` of its brightness).  It **became rubble** when, on the
    second (normalised) date, its texture grew at least ``min_texture_gain`` times,
    its colour changed by at least ``min_colour_change`` (sum of absolute band
    differences on the 0..1 scale), it did not get darker by more than
    ``max_darkening`` and its texture stays below ``max_debris_cv`` of its brightness.
    The last two separate bright, finely broken debris from trees and new buildings,
    whose texture comes from deep shadows.

    Parameters
    ----------
    before, after : (B, M, N) ndarray
        First date as from :func:`rgb_stack`; second date normalised onto it
        (:func:`normalise_to`).
    valid : (M, N) bool ndarray
    pixel_size_m : float
    exclude : (M, N) bool ndarray, optional
        Segments with 30 % or more of their pixels here are dropped (pass the
        second date's buildings: a building that still stands is not rubble).
    loose : (float, float, float)
        Looser ``max_debris_cv``, ``max_darkening`` and ``min_solidity`` (darker, coarser
        debris; roofs split by trees) for segments that also lost their shading: their
        grey levels correlate with the second date's below ``max_similarity``
        (:func:`structure_similarity` over the segment alone).
    max_similarity : float
        1 turns the looser tier and the small-object test off.
    strong_texture_gain : float
        The looser cuts also apply, without the correlation test, to a segment of
        ``min_solidity`` or more whose texture grew at least this many times: debris
        that keeps the roof's broad shading but is much rougher than any roof.
    small : (float, float, float, float, float) or None
        Objects below ``min_area_m2`` (sheds, garages), whose texture is too few pixels
        to measure, are tested for having *vanished* instead: at least ``small[0]`` m²,
        solidity at least ``small[1]``, texture at most ``small[2]`` of their brightness
        before, colour change at least ``small[3]``, grey levels over the object and a
        2 m rim no longer correlating (below ``max_similarity``), and at most
        ``small[4]`` of a 3 m rim dark on the second date (a standing shed still casts a
        shadow).  None turns this off.
    max_blue_after : float
        Segments whose second-date mean blue exceeds the mean of their red and green by
        more than this are left out, whatever the tier: a blue tarp spread over a damaged
        roof (or a roof painted blue) is a standing structure; debris is grey to warm.

    Returns
    -------
    (M, N) int32 ndarray
        0 for background, 1..K for roof-like segments that became rubble.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> b = np.full((3, 60, 60), 0.3, np.float32); b[1] = 0.5            # grass
    >>> b[:, 15:45, 15:45] = np.array([0.55, 0.35, 0.3])[:, None, None]   # a 15 m brown roof
    >>> a = b.copy()
    >>> a[:, 15:45, 15:45] = 0.7 + 0.05 * rng.standard_normal((30, 30)).astype(np.float32)  # rubble
    >>> lab = debris_objects(b, a, np.ones((60, 60), bool), pixel_size_m=0.5)
    >>> int(lab.max()), bool(lab[30, 30]), bool(lab[5, 5])
    (1, True, False)
    >>> int(debris_objects(b, b, np.ones((60, 60), bool), pixel_size_m=0.5).max())
    0
    >>> tarp = a.copy(); tarp[2, 15:45, 15:45] += 0.2                      # the same, under a blue tarp
    >>> int(debris_objects(b, tarp, np.ones((60, 60), bool), pixel_size_m=0.5).max())
    0
    """
    valid = np.asarray(valid, dtype=bool)
    if not valid.any():
        return np.zeros(valid.shape, np.int32)
    xb = np.asarray(before, dtype=np.float32)
    xa = np.asarray(after, dtype=np.float32)
    image = np.moveaxis(xb[:3], 0, -1)
    seg = segmentation.felzenszwalb(image, scale=segment_m2 / pixel_size_m**2, sigma=0.5,
                                    min_size=max(2, round(SMALL_DEMOLITION_M2 / pixel_size_m**2))).astype(np.int32) + 1
    vb, va = xb[:3].mean(axis=0), xa[:3].mean(axis=0)
    veg_cut = 0.3 if xb.shape[0] >= 4 else 0.08
    dark_cut = np.percentile(vb[valid], 20.0)
    # lawn and shadow pixels are not roof: a brown roof and a dry lawn often fall into one
    # segment, so segments are cut along vegetated (smoothed over 1 m) and shadowed pixels
    veg = vegetation_index(xb)
    green = ndimage.uniform_filter(veg, to_px(1.0, pixel_size_m) | 1, mode="nearest") >= veg_cut
    seg = measure.label(np.where(valid & ~green & (vb >= dark_cut), seg, 0), connectivity=1).astype(np.int32)
    n = int(seg.max()) + 1
    flat = seg.ravel()
    count = np.bincount(flat, minlength=n)

    def mean(x: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=x.ravel().astype(np.float64), minlength=n) / np.maximum(count, 1)

    size = to_px(texture_m, pixel_size_m, minimum=3) | 1
    tb, ta = mean(_local_std(vb, size)), mean(_local_std(va, size))
    bright_b, bright_a = mean(vb), mean(va)
    area = count * pixel_size_m**2
    colour = mean(np.abs(xb[:3] - xa[:3]).sum(axis=0))
    # a blue second date (mean blue above the mean of red and green) is a tarp over the roof or a
    # painted roof: debris of wood, shingle, brick and insulation is grey to warm
    blue_a = mean(xa[2]) - 0.5 * (mean(xa[0]) + mean(xa[1]))
    base = (mean(veg) < veg_cut) & (bright_b > dark_cut) & (blue_a <= max_blue_after)
    if exclude is not None:
        base &= mean(np.asarray(exclude, dtype=bool)) < 0.3
    base[0] = False
    loose_cv, loose_dark, loose_solid = loose if max_similarity < 1.0 else (max_debris_cv, max_darkening, min_solidity)
    # texture gains are taken against at least 0.01 (about the noise of an 8-bit image): flat on
    # both dates is not "texture grew"
    ok = (base & (area >= min_area_m2) & (area <= max_area_m2) & (tb <= max_roof_cv * bright_b)
          & (ta >= min_texture_gain * np.maximum(tb, 0.01)) & (ta <= max(loose_cv, max_debris_cv) * bright_a)
          & (bright_a >= bright_b - max(loose_dark, max_darkening)) & (colour >= min_colour_change))
    solid = np.zeros(n)
    if ok.any():  # compactness only for the few segments left (convex hulls are the slow part)
        props = measure.regionprops_table(np.where(ok[seg], seg, 0), properties=("label", "area_filled", "area_convex"))
        solid[props["label"]] = props["area_filled"] / np.maximum(props["area_convex"], 1)
        ok &= solid >= min(loose_solid, min_solidity)
    strict = ok & (ta <= max_debris_cv * bright_a) & (bright_a >= bright_b - max_darkening) & (solid >= min_solidity)
    if ok.any() and not np.array_equal(ok, strict):  # looser cuts: the roof's shading must be gone
        sim = structure_similarity(np.where((ok & ~strict)[seg], seg, 0), xb, xa, pixel_size_m=pixel_size_m, rim_m=0.0,
                                   grey=grey)
        loose_ok = np.zeros(n, bool)
        loose_ok[: sim.size] = sim < max_similarity
        # or, for a segment as compact as the strict tier asks, texture grown well past the roof's
        loose_ok |= (solid >= min_solidity) & (ta >= strong_texture_gain * np.maximum(tb, 0.01))
        ok = strict | (ok & loose_ok)
    if small is not None and max_similarity < 1.0:
        ok |= _vanished_small(seg, base & (area < min_area_m2) & (tb <= small[2] * bright_b) & (colour >= small[3])
                              & (area >= small[0]), xb, xa, valid, pixel_size_m=pixel_size_m, min_solidity=small[1],
                              max_similarity=max_similarity, max_dark_rim=small[4], grey=grey)
    new_id = np.zeros(n, np.int32)
    new_id[ok] = np.arange(1, int(ok.sum()) + 1, dtype=np.int32)
    return new_id[seg]


def deep_confirmed(labels: np.ndarray, evidence: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """The segments of ``labels`` whose mean ``evidence`` over their valid pixels is above 1.

    ``evidence`` is a change map in units of its scene's own cut (for VHR mode, the deep change
    of :func:`campwatch.vhr.deep.deep_change` over its Otsu cut), so the rule has no constant
    of its own.  A roof that the texture and colour tests take for rubble, but whose
    neighbourhood a pretrained network sees as unchanged (a roof in another colour balance,
    a car park filling up), is dropped.

    Returns
    -------
    labels : (M, N) int32 ndarray
        The kept segments with their ids; 0 elsewhere.
    record : dict
        ``segments`` tested and ``confirmed``.

    Examples
    --------
    >>> lab = np.array([[1, 1, 2, 2]]); ev = np.array([[2.0, 0.5, 0.2, 0.9]])
    >>> deep_confirmed(lab, ev, np.ones((1, 4), bool))
    (array([[1, 1, 0, 0]], dtype=int32), {'segments': 2, 'confirmed': 1})
    """
    labels = np.asarray(labels, np.int32)
    keep = (labels > 0) & (segment_mean(evidence, labels, np.asarray(valid, bool)) > 1.0)
    record = {"segments": int(np.unique(labels[labels > 0]).size), "confirmed": int(np.unique(labels[keep]).size)}
    return np.where(keep, labels, 0).astype(np.int32), record


def _vanished_small(seg: np.ndarray, cand: np.ndarray, before: np.ndarray, after: np.ndarray, valid: np.ndarray, *,
                    pixel_size_m: float, min_solidity: float, max_similarity: float, max_dark_rim: float,
                    grey: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Which candidate segments (``cand`` per label of ``seg``) look like a small object that vanished.

    Compact (solidity >= ``min_solidity``), its grey levels over it and a 2 m rim no longer
    correlate with the second date's (< ``max_similarity``), and at most ``max_dark_rim``
    of a 3 m rim is dark (below the second date's 20th brightness percentile) on the
    second date.
    """
    out = np.zeros(cand.size, bool)
    if not cand.any():
        return out
    lab = np.where(cand[seg], seg, 0)
    props = measure.regionprops_table(lab, properties=("label", "area_filled", "area_convex"))
    solid = np.zeros(cand.size)
    solid[props["label"]] = props["area_filled"] / np.maximum(props["area_convex"], 1)
    cand = cand & (solid >= min_solidity)
    if not cand.any():
        return out
    lab = np.where(cand[seg], seg, 0)
    sim = np.ones(cand.size)
    s = structure_similarity(lab, before, after, pixel_size_m=pixel_size_m, rim_m=2.0, grey=grey)
    sim[: s.size] = s
    va = np.asarray(after, np.float32)[:3].mean(axis=0)
    dark = va < np.percentile(va[valid], 20.0)
    ring = ndimage.grey_dilation(lab, size=(to_px(3.0, pixel_size_m) | 1,) * 2)
    ring[lab > 0] = 0
    ring_n = np.bincount(ring.ravel(), minlength=cand.size)[: cand.size]
    ring_dark = np.bincount(ring.ravel(), weights=dark.ravel().astype(np.float64), minlength=cand.size)[: cand.size]
    return cand & (sim < max_similarity) & (ring_dark / np.maximum(ring_n, 1) <= max_dark_rim)
