"""VHR mode: buildings as the unit on sub-metre RGB(N) imagery.

Pure module: scenes and arrays in, arrays, GeoDataFrames and records out; no file is
opened here.

At about half a metre a house covers a few hundred pixels, so campwatch counts
buildings.  Everything here is classical image processing, with no trained model:

1. **Building evidence per date** (:func:`building_index`, :func:`building_objects`).
   A roof is grey (low chromatic saturation) or at least not green, not in shadow, and
   compact.  Roads are grey too: they are removed as long, narrow structures (they
   survive an opening with a 30 m line but not with a 12 m disc).  A building casts a
   shadow, so an object must touch dark pixels along part of its rim.
2. **Radiometric normalisation** (:func:`normalise_to`): the second date's bands are
   fitted linearly to the first's by orthogonal regression on the pixels IR-MAD calls
   invariant (Canty's radcal, shared with the 10 m path), so a different sensor or colour
   balance does not read as change, and a weak correlation cannot shrink the gain.
3. **Co-registration** with :func:`campwatch.coregister.coregister_local` (local shifts
   over a grid of windows, a translation or affine model fitted by RANSAC), then a **shift-tolerant difference** (:func:`tolerant_difference`)
   that forgives residual shifts and building lean of up to ``tolerance_m``.
4. **Growth classes** per building (:func:`vhr_change`): new, demolished, expanded,
   shrunk and unchanged, as polygons with geodesic areas and counts.  A change whose
   grey levels still correlate with the other date's (:func:`structure_similarity`:
   same outline, ridge and shadow, whatever the colour) is dropped.
5. **Rubble test** (:func:`debris_objects`): roof-like segments of any roof colour on
   the first date that turned into bright, finely broken texture are also demolished
   (the grey-roof detector of step 1 misses most brown and red roofs), and so are
   small compact objects (sheds) whose outline and cast shadow are gone.

Parameters are in metres and scaled by the grid's pixel size, so the same defaults
work at 0.3 m and at 1 m.  Limits are listed in ``docs/vhr.md``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import ndimage
from skimage import filters, measure, morphology, segmentation
from skimage.draw import line as draw_line

from campwatch.errors import CampwatchWarning, GridMismatchError
from campwatch.grid import Grid
from campwatch.normalise import fit_irmad, radcal_from_mad
from campwatch.scene import Scene
from campwatch.vectorize import mask_to_polygons

__all__ = [
    "GROWTH_CLASSES",
    "VHRChangeResult",
    "building_index",
    "building_mask",
    "building_objects",
    "debris_objects",
    "naive_cva",
    "normalise_to",
    "rgb_stack",
    "road_mask",
    "smoothed_grey",
    "structure_similarity",
    "tolerant_difference",
    "vegetation_index",
    "vhr_change",
]

#: Above this pixel size (m) a VHR result is flagged low-confidence and its change mask also holds
#: pixel change (Otsu on the score): a 20 m² house is under 20 px there.  Measured on DSIFN (~2 m)
#: and SZTAKI AirChange (1.5 m), building objects alone recalled 4-8% of the change (``docs/vhr.md``).
COARSE_VHR_M = 1.0

#: Smallest demolition the rubble test reports, m² (its segmentation's smallest segment).
_SMALL_DEMOLITION_M2 = 8.0

#: Growth classes of :func:`vhr_change`, in report order.
GROWTH_CLASSES: tuple[str, ...] = ("new", "demolished", "expanded", "shrunk", "unchanged")


def _px(metres: float, pixel_size_m: float, *, minimum: int = 1) -> int:
    """``metres`` as a whole number of pixels (at least ``minimum``)."""
    return max(minimum, round(metres / pixel_size_m))


def _otsu_cut(values: np.ndarray) -> float:
    """Otsu's threshold of ``values``; inf (nothing changes) when they are too few or all equal."""
    return float(filters.threshold_otsu(values)) if values.size > 16 and np.ptp(values) > 0 else float("inf")


def _fill_invalid(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy of ``image`` (B, M, N) with invalid pixels set to their nearest valid neighbour."""
    if valid.all():
        return image.astype(np.float32, copy=True)
    if not valid.any():
        return np.zeros_like(image, dtype=np.float32)
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return image[:, idx[0], idx[1]].astype(np.float32)


def rgb_stack(scene: Scene) -> np.ndarray:
    """Red, green, blue (and NIR when present) of a VHR scene, scaled to 0..1 per scene.

    Each band is divided by its own 99th percentile over valid pixels (a "white patch"
    balance: the brightest surfaces, concrete and light roofs, are taken as neutral), so
    uint8 and uint16 products and different sensors' colour casts look alike.  Invalid
    pixels take the value of their nearest valid neighbour (the valid mask still travels
    with the scene).

    Parameters
    ----------
    scene : Scene
        Needs ``red``, ``green`` and ``blue``; ``nir`` is used when present.

    Returns
    -------
    (B, M, N) float32 ndarray
        B is 3 (red, green, blue) or 4 (with nir).

    Examples
    --------
    >>> from affine import Affine
    >>> from campwatch.grid import Grid
    >>> g = Grid((2, 2), Affine(0.5, 0, 0, 0, -0.5, 0), "EPSG:32652")
    >>> d = np.array([[[10, 20], [30, 200]], [[10, 20], [30, 100]], [[5, 5], [5, 5]]], np.float32)
    >>> s = Scene(d, ("red", "green", "blue"), g, np.ones((2, 2), bool))
    >>> rgb_stack(s).shape, float(rgb_stack(s).max()) <= 1.0
    ((3, 2, 2), True)
    """
    scene.require(["red", "green", "blue"], method="VHR mode")
    names = ["red", "green", "blue"] + (["nir"] if scene.has("nir") else [])
    data = np.stack([scene.band(n) for n in names]).astype(np.float32)
    valid = scene.valid & np.all(np.isfinite(data), axis=0)
    data = _fill_invalid(data, valid)
    ref = data[:, valid] if valid.any() else data.reshape(data.shape[0], -1)
    scale = np.percentile(ref, 99.0, axis=1) if ref.size else np.ones(data.shape[0])
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return np.clip(data / scale[:, None, None], 0.0, 1.0).astype(np.float32)


def vegetation_index(rgb: np.ndarray) -> np.ndarray:
    """Vegetation evidence: NDVI with a NIR band, else excess green of chromaticity.

    Parameters
    ----------
    rgb : (B, M, N) ndarray
        Red, green, blue (and optionally NIR), as from :func:`rgb_stack`.

    Returns
    -------
    (M, N) float32 ndarray
        Positive for green vegetation (roughly > 0.05 without NIR, > 0.3 with NIR).

    Examples
    --------
    >>> px = np.array([[[0.2]], [[0.5]], [[0.2]]], np.float32)  # green pixel
    >>> float(vegetation_index(px)[0, 0]) > 0.05
    True
    """
    r, g, b = rgb[0].astype(np.float32), rgb[1].astype(np.float32), rgb[2].astype(np.float32)
    if rgb.shape[0] >= 4:
        nir = rgb[3].astype(np.float32)
        return ((nir - r) / np.maximum(nir + r, 1e-6)).astype(np.float32)
    s = np.maximum(r + g + b, 1e-6)
    return ((2 * g - r - b) / s).astype(np.float32)


def building_index(rgb: np.ndarray, *, pixel_size_m: float, smooth_m: float = 5.0) -> np.ndarray:
    """Roof evidence, 0..1: grey (low saturation), not vegetated and not in shadow, smoothed.

    Parameters
    ----------
    rgb : (B, M, N) ndarray
        As from :func:`rgb_stack` (0..1; NIR as a 4th band is used for vegetation).
    pixel_size_m : float
    smooth_m : float
        Width of the box filter that averages the per-pixel evidence (about a third of
        a house), so a roof's ridge line or a skylight does not break it.

    Returns
    -------
    (M, N) float32 ndarray
        1 for a grey, lit, non-vegetated neighbourhood; 0 for grass, trees, deep shadow
        or strongly coloured soil.

    Examples
    --------
    >>> img = np.zeros((3, 20, 20), np.float32)
    >>> img[:, :, :10] = np.array([0.5, 0.5, 0.48])[:, None, None]  # grey roof
    >>> img[:, :, 10:] = np.array([0.2, 0.45, 0.15])[:, None, None]  # grass
    >>> bi = building_index(img, pixel_size_m=0.5, smooth_m=1.5)
    >>> round(float(bi[10, 2]), 2), round(float(bi[10, 17]), 2)
    (0.83, 0.0)
    """
    x = np.asarray(rgb, dtype=np.float32)
    value = x[:3].mean(axis=0)
    mx, mn = x[:3].max(axis=0), x[:3].min(axis=0)
    sat = (mx - mn) / np.maximum(mx, 1e-3)
    veg = vegetation_index(x)
    veg_cut = 0.3 if x.shape[0] >= 4 else 0.08
    grey = np.clip((0.25 - sat) / 0.2, 0.0, 1.0)
    not_veg = np.clip((veg_cut - veg) / veg_cut, 0.0, 1.0)
    lit = np.clip((value - 0.12) / 0.1, 0.0, 1.0)
    size = _px(smooth_m, pixel_size_m) | 1
    return ndimage.uniform_filter(grey * not_veg * lit, size=size, mode="nearest").astype(np.float32)


def _line(length_px: int, theta: float) -> np.ndarray:
    """A one-pixel-wide line structuring element of about ``length_px`` at angle ``theta``."""
    r = max(1, length_px // 2)
    dy, dx = round(r * np.sin(theta)), round(r * np.cos(theta))
    se = np.zeros((2 * abs(dy) + 1, 2 * abs(dx) + 1), bool)
    rr, cc = draw_line(abs(dy) - dy, abs(dx) - dx, abs(dy) + dy, abs(dx) + dx)
    se[rr, cc] = True
    return se


def road_mask(mask: np.ndarray, *, pixel_size_m: float, min_length_m: float = 30.0,
              max_width_m: float = 12.0) -> np.ndarray:
    """The long, narrow parts of ``mask``: roads, paths and driveways joined to them.

    A pixel is road when it survives an opening with a ``min_length_m`` line in one of
    eight directions but not an opening with a ``max_width_m`` disc (which a large
    building survives).

    Parameters
    ----------
    mask : (M, N) bool ndarray
    pixel_size_m : float
    min_length_m, max_width_m : float

    Returns
    -------
    (M, N) bool ndarray

    Examples
    --------
    >>> m = np.zeros((100, 100), bool); m[48:56, :] = True   # a 4 m wide road
    >>> m[10:40, 10:40] = True                                # a 15 m x 15 m block
    >>> r = road_mask(m, pixel_size_m=0.5)
    >>> bool(r[50, 80]), bool(r[25, 25])
    (True, False)
    """
    mask = np.asarray(mask, dtype=bool)
    length = _px(min_length_m, pixel_size_m, minimum=3)
    along = np.zeros(mask.shape, bool)
    for k in range(8):
        along |= ndimage.binary_opening(mask, structure=_line(length, k * np.pi / 8))
    wide = ndimage.binary_opening(mask, structure=morphology.disk(_px(max_width_m / 2, pixel_size_m)))
    return along & ~wide


def building_objects(rgb: np.ndarray, valid: np.ndarray, *, pixel_size_m: float, threshold: float = 0.45,
                     min_area_m2: float = 20.0, max_area_m2: float = 50000.0,
                     min_shadow_fraction: float = 0.12, shadow_percentile: float = 20.0,
                     shadow_ring_m: float = 3.0) -> np.ndarray:
    """Label the buildings of one date: roof evidence, minus roads, with a cast shadow.

    Parameters
    ----------
    rgb : (B, M, N) ndarray
        As from :func:`rgb_stack`.
    valid : (M, N) bool ndarray
    pixel_size_m : float
    threshold : float
        Cut on :func:`building_index`.
    min_area_m2, max_area_m2 : float
        Objects outside this range are dropped (a shed; a field of grey soil).
    min_shadow_fraction : float
        Share of the ``shadow_ring_m`` wide rim around an object that must be dark
        (below the scene's ``shadow_percentile`` brightness): a building casts a shadow,
        a patch of bare soil or a car park does not.  0 turns the test off.

    Returns
    -------
    (M, N) int32 ndarray
        0 for background, 1..K for buildings.

    Examples
    --------
    >>> img = np.full((3, 80, 80), 0.1, np.float32)
    >>> img[1] = 0.4                                         # grass (green)
    >>> img[:, 20:40, 20:40] = 0.5                           # a 10 m grey roof ...
    >>> img[:, 40:44, 20:40] = 0.02                          # ... with its shadow
    >>> lab = building_objects(img, np.ones((80, 80), bool), pixel_size_m=0.5)
    >>> int(lab.max()), bool(lab[30, 30]), bool(lab[70, 70])
    (1, True, False)
    """
    valid = np.asarray(valid, dtype=bool)
    index = building_index(rgb, pixel_size_m=pixel_size_m)
    cand = (index > threshold) & valid
    roads = road_mask(cand, pixel_size_m=pixel_size_m)
    cand &= ~ndimage.binary_dilation(roads, iterations=_px(1.0, pixel_size_m))
    cand = ndimage.binary_fill_holes(cand)
    lab, n = ndimage.label(cand)
    if n == 0:
        return np.zeros(cand.shape, np.int32)
    counts = np.bincount(lab.ravel(), minlength=n + 1)
    area = counts * pixel_size_m**2
    keep = (area >= min_area_m2) & (area <= max_area_m2)
    if min_shadow_fraction > 0:
        value = rgb[:3].mean(axis=0)
        dark = value < np.percentile(value[valid], shadow_percentile) if valid.any() else np.zeros_like(valid)
        ring = ndimage.grey_dilation(lab, size=(_px(shadow_ring_m, pixel_size_m) | 1,) * 2)
        ring[lab > 0] = 0
        ring_n = np.bincount(ring.ravel(), minlength=n + 1)
        ring_dark = np.bincount(ring.ravel(), weights=dark.ravel().astype(np.float64), minlength=n + 1)
        keep &= ring_dark / np.maximum(ring_n, 1) >= min_shadow_fraction
    keep[0] = False
    new_id = np.zeros(n + 1, np.int32)
    new_id[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_id[lab]


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
                                    min_size=max(2, round(_SMALL_DEMOLITION_M2 / pixel_size_m**2))).astype(np.int32) + 1
    vb, va = xb[:3].mean(axis=0), xa[:3].mean(axis=0)
    veg_cut = 0.3 if xb.shape[0] >= 4 else 0.08
    dark_cut = np.percentile(vb[valid], 20.0)
    # lawn and shadow pixels are not roof: a brown roof and a dry lawn often fall into one
    # segment, so segments are cut along vegetated (smoothed over 1 m) and shadowed pixels
    veg = vegetation_index(xb)
    green = ndimage.uniform_filter(veg, _px(1.0, pixel_size_m) | 1, mode="nearest") >= veg_cut
    seg = measure.label(np.where(valid & ~green & (vb >= dark_cut), seg, 0), connectivity=1).astype(np.int32)
    n = int(seg.max()) + 1
    flat = seg.ravel()
    count = np.bincount(flat, minlength=n)

    def mean(x: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=x.ravel().astype(np.float64), minlength=n) / np.maximum(count, 1)

    size = _px(texture_m, pixel_size_m, minimum=3) | 1
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
    ring = ndimage.grey_dilation(lab, size=(_px(3.0, pixel_size_m) | 1,) * 2)
    ring[lab > 0] = 0
    ring_n = np.bincount(ring.ravel(), minlength=cand.size)[: cand.size]
    ring_dark = np.bincount(ring.ravel(), weights=dark.ravel().astype(np.float64), minlength=cand.size)[: cand.size]
    return cand & (sim < max_similarity) & (ring_dark / np.maximum(ring_n, 1) <= max_dark_rim)


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
    grown = ndimage.grey_dilation(labels, size=(2 * _px(rim_m, pixel_size_m, minimum=0) + 1,) * 2)
    grown = np.where(labels > 0, labels, grown).ravel()
    count = np.maximum(np.bincount(grown, minlength=n), 1)

    def mean(x: np.ndarray) -> np.ndarray:
        return np.bincount(grown, weights=x.ravel(), minlength=n) / count

    mb, ma = mean(gb), mean(ga)
    vb, va = mean(gb * gb) - mb * mb, mean(ga * ga) - ma * ma
    cov = mean(gb * ga) - mb * ma
    ok = (vb > 1e-8) & (va > 1e-8)
    return np.where(ok, cov / np.sqrt(np.where(ok, vb * va, 1.0)), 0.0)


def building_mask(scene: Scene, *, threshold: float = 0.45, min_area_m2: float = 20.0,
                  min_shadow_fraction: float = 0.12) -> np.ndarray:
    """Building (structure) pixels of one sub-metre RGB(N) scene.

    See :func:`building_objects` for the method and the parameters.

    Parameters
    ----------
    scene : Scene
        A VHR scene (pixels finer than 5 m) with ``red``, ``green``, ``blue`` (``nir`` optional).

    Returns
    -------
    (M, N) bool ndarray
        False outside ``scene.valid``.

    Raises
    ------
    MissingBandsError
        The scene lacks red, green or blue.
    ValueError
        The pixels are 5 m or coarser (use the Sentinel-2 / Landsat methods).

    Examples
    --------
    >>> from affine import Affine
    >>> from campwatch.grid import Grid
    >>> g = Grid((80, 80), Affine(0.5, 0, 0, 0, -0.5, 0), "EPSG:32652")
    >>> d = np.full((3, 80, 80), 25.0, np.float32); d[1] = 100        # grass
    >>> d[:, 20:40, 20:40] = 128; d[:, 40:44, 20:40] = 5               # grey roof and its shadow
    >>> m = building_mask(Scene(d, ("red", "green", "blue"), g, np.ones((80, 80), bool)))
    >>> bool(m[30, 30]), bool(m[70, 70]), 400 <= int(m.sum()) <= 440
    (True, False, True)
    """
    px = scene.grid.pixel_size_m()
    if px >= 5.0:
        raise ValueError(f"building_mask needs sub-5 m pixels, but {scene.label} has {px:.1f} m pixels; "
                         "use campwatch.structures.builtup_mask for Sentinel-2 or Landsat")
    lab = building_objects(rgb_stack(scene), scene.valid, pixel_size_m=px, threshold=threshold,
                           min_area_m2=min_area_m2, min_shadow_fraction=min_shadow_fraction)
    return (lab > 0) & scene.valid


# --------------------------------------------------------------------------------------
# two dates: normalisation, tolerant difference, growth classes
# --------------------------------------------------------------------------------------
class VHRLowConfidenceWarning(CampwatchWarning):
    """A VHR change result carries low-confidence flags (see ``VHRChangeResult.flags``)."""


def normalise_to(reference: np.ndarray, moving: np.ndarray, valid: np.ndarray, *,
                 p_no_change: float = 0.95) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit ``moving`` band by band onto ``reference`` (gain and offset) on invariant pixels.

    Canty's *radcal*, shared with the 10 m path (:mod:`campwatch.normalise`): IR-MAD
    (:func:`~campwatch.normalise.fit_irmad`) gives each pixel a chi-square probability of
    no change, and an orthogonal (total least squares) regression over the pixels with
    ``P(no change) > p_no_change`` (:func:`~campwatch.normalise.radcal_from_mad`) maps each
    band of ``moving`` onto ``reference``.  Orthogonal regression treats both dates as
    noisy, so a weak correlation between dates (another sensor, season or sun angle) does
    not shrink the gain towards 0 as an ordinary least-squares slope does.  With fewer than
    64 invariant pixels the bands are matched by mean and standard deviation over all
    valid pixels instead (``method`` says which).

    Parameters
    ----------
    reference, moving : (B, M, N) ndarray
    valid : (M, N) bool ndarray
    p_no_change : float
        The no-change probability a pixel needs to be invariant (radcal's 0.95).

    Returns
    -------
    normalised : (B, M, N) float32 ndarray
        A new array; ``moving`` is not modified.
    fit : dict
        ``gain`` and ``offset`` per band (``normalised = gain * moving + offset``),
        ``method`` (``"irmad-radcal"`` or ``"mean-std"``), ``invariant_fraction`` (of the
        valid pixels), ``canonical_correlations`` and ``stable_pixels``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.random((3, 50, 50)).astype(np.float32)
    >>> mov = 0.5 * ref + 0.2
    >>> out, fit = normalise_to(ref, mov, np.ones((50, 50), bool))
    >>> bool(np.allclose(out, ref, atol=1e-4)), [round(g, 2) for g in fit["gain"]], fit["method"]
    (True, [2.0, 2.0, 2.0], 'irmad-radcal')
    """
    ref = np.asarray(reference, dtype=np.float64)
    mov = np.asarray(moving, dtype=np.float64)
    if ref.shape != mov.shape:
        raise GridMismatchError(f"normalise_to needs arrays of one shape, got {ref.shape} and {mov.shape}")
    valid = np.asarray(valid, dtype=bool)
    nb = ref.shape[0]
    record: dict[str, Any] = {"gain": [1.0] * nb, "offset": [0.0] * nb, "method": "none", "invariant_fraction": 0.0,
                              "canonical_correlations": None, "stable_pixels": 0}
    n_valid = int(valid.sum())
    if n_valid < 16:
        return mov.astype(np.float32), record
    names = tuple(f"b{i}" for i in range(nb))
    windows = lambda: [(mov, ref, valid)]  # noqa: E731 - x = moving, y = reference
    fitted: tuple[np.ndarray, np.ndarray] | None = None
    try:
        mad = fit_irmad(windows, names)
        rel = radcal_from_mad(windows, mad, p_no_change=p_no_change)
        used = round(float(np.min(rel.used_fraction)) * n_valid)
        record["canonical_correlations"] = [round(float(r), 4) for r in mad.rho]
        if used >= 64:
            fitted = np.asarray(rel.gain, float), np.asarray(rel.offset, float)
            record.update(method="irmad-radcal", invariant_fraction=round(used / n_valid, 4), stable_pixels=used)
    except (ValueError, np.linalg.LinAlgError):
        pass
    if fitted is None:  # no invariant pixels to fit on: match the moments of the whole scene
        r, m = ref[:, valid], mov[:, valid]
        sd = m.std(axis=1)
        g = np.where(sd > 1e-9, r.std(axis=1) / np.maximum(sd, 1e-12), 1.0)
        fitted = g, r.mean(axis=1) - g * m.mean(axis=1)
        record.update(method="mean-std", stable_pixels=n_valid)
    gain, offset = fitted
    out = (mov * gain[:, None, None] + offset[:, None, None]).astype(np.float32)
    record.update(gain=[float(g) for g in gain], offset=[float(o) for o in offset])
    return out, record


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


@dataclass(frozen=True, eq=False)
class VHRChangeResult:
    """Building-level change between two VHR dates, on the BEFORE grid.

    Attributes
    ----------
    grid : Grid
        BEFORE's grid; every array below is on it.
    score : (M, N) float32 ndarray
        Tolerant colour difference after normalisation, smoothed over ~2 m.
    threshold : float
        Global Otsu threshold on ``score`` (or the one given).
    mask : (M, N) bool ndarray
        Pixels of new, demolished, expanded or shrunk polygons: building change.  On pixels
        coarser than :data:`COARSE_VHR_M` also every pixel whose score exceeds the scene's
        Otsu threshold (``params["pixel_change_threshold"]``), attributed to no building.
    buildings_before, buildings_after : (M, N) int32 ndarray
        Building object labels per date (0 = none).
    growth : GeoDataFrame
        One polygon per building change, columns ``growth_class`` (one of
        :data:`GROWTH_CLASSES`), ``area_m2`` (geodesic), ``changed_fraction``,
        ``low_confidence`` and ``reason``, plus :func:`campwatch.vectorize.mask_to_polygons`'s.
    counts : dict
        Number of buildings per growth class.
    flags : list of str
        Scene-level low-confidence flags, each a sentence naming the value that tripped it.
    params, coregistration, normalisation : dict
        Provenance of the run.
    """

    grid: Grid
    score: np.ndarray
    threshold: float
    mask: np.ndarray
    buildings_before: np.ndarray
    buildings_after: np.ndarray
    growth: gpd.GeoDataFrame
    counts: dict[str, int]
    flags: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    coregistration: dict[str, Any] = field(default_factory=dict)
    normalisation: dict[str, Any] = field(default_factory=dict)

    @property
    def low_confidence(self) -> bool:
        return bool(self.flags)

    def sentence(self) -> str:
        """A report line, such as ``"14 buildings demolished, 6 built, 2 expanded, 0 shrunk"``."""
        c = self.counts

        def n(k: int) -> str:
            return f"{k} building{'s' if k != 1 else ''}"

        return (f"{n(c['demolished'])} demolished, {c['new']} built, {c['expanded']} expanded, "
                f"{c['shrunk']} shrunk, {c['unchanged']} unchanged")

    def summary(self) -> dict[str, Any]:
        """JSON-ready record: counts, areas per class, flags and provenance (no pixels)."""
        g = self.growth
        area = {k: round(float(g.loc[g["growth_class"] == k, "area_m2"].sum()), 1) for k in GROWTH_CLASSES}
        return {
            "mode": "vhr",
            "sentence": self.sentence(),
            "counts": dict(self.counts),
            "area_m2": area,
            "changed_fraction": round(float(self.mask.mean()), 6),
            "threshold": round(float(self.threshold), 6),
            "buildings_before": int(self.buildings_before.max()),
            "buildings_after": int(self.buildings_after.max()),
            "low_confidence": self.low_confidence,
            "flags": list(self.flags),
            "low_confidence_polygons": int(g["low_confidence"].sum()) if len(g) else 0,
            "pixel_size_m": round(self.grid.pixel_size_m(), 3),
            "params": dict(self.params),
            "coregistration": dict(self.coregistration),
            "normalisation": dict(self.normalisation),
        }


def _object_fractions(labels: np.ndarray, *masks: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pixel count per label and, for each mask, the fraction of each label's pixels in it."""
    n = int(labels.max()) + 1
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n)
    fracs = [np.bincount(flat, weights=m.ravel().astype(np.float64), minlength=n) / np.maximum(counts, 1)
             for m in masks]
    return counts, fracs


def _polygons(labels: np.ndarray, grid: Grid, growth_class: str, changed: np.ndarray,
              low: dict[int, str]) -> gpd.GeoDataFrame:
    gdf = mask_to_polygons(labels > 0, grid, labels=labels, values={"changed": changed.astype(np.float32)})
    gdf = gdf.rename(columns={"mean_changed": "changed_fraction"})
    gdf.insert(0, "growth_class", growth_class)
    gdf["reason"] = [low.get(int(i), "") for i in gdf["object_id"]]
    gdf["low_confidence"] = gdf["reason"] != ""
    return gdf


def vhr_change(before: Scene, after: Scene, *, coregister: bool = True, tolerance_m: float = 0.5,
               smooth_m: float = 2.0, threshold: float | None = None, min_fraction: float = 0.2,
               whole_fraction: float = 0.7, lost_fraction: float = 0.7, min_area_m2: float = 20.0, building_threshold: float = 0.45,
               min_shadow_fraction: float = 0.12, debris: bool = True,
               max_similarity: float = 0.6, otsu_fraction: float = 0.5) -> VHRChangeResult:
    """Building-level change between two sub-metre RGB(N) dates, with growth classes.

    Parameters
    ----------
    before, after : Scene
        Two VHR dates on one grid (read ``after`` with ``grid=before.grid``).
    coregister : bool
        Fit and correct a shift model of ``after`` (local shifts over a grid of windows,
        a translation or affine transform by RANSAC, :func:`campwatch.coregister.coregister_local`)
        before comparing.
    tolerance_m : float
        Shifts up to this are forgiven pixel by pixel (:func:`tolerant_difference`):
        residual misregistration and the lean of a house seen from another angle.
    smooth_m : float
        Box filter on the difference before thresholding.
    threshold : float, optional
        Change threshold on the score; by default ``otsu_fraction`` (a half) of Otsu's
        threshold over all valid pixels (one global histogram).  Otsu's cut alone misses grey roofs built on grey
        soil, whose colour barely changes; the building logic below supplies the rest.
    min_fraction, whole_fraction : float
        A building on one date with no building within ``tolerance_m`` on the other
        (post-classification comparison) is new or demolished when at least
        ``min_fraction`` of its pixels changed colour.  One that overlaps a building on
        the other date is new or demolished only when ``whole_fraction`` changed (and
        flagged low-confidence: re-roofed and rebuilt look alike), otherwise its changed
        part outside the other date's building is expanded or shrunk.
    lost_fraction : float
        ``min_fraction`` for demolition: a building missing on the second date must also
        have changed colour over this share of its footprint, because the per-date
        detector misses buildings (odd roof colours, tree cover) more often than it
        invents them.
    min_area_m2, building_threshold, min_shadow_fraction : float
        Passed to :func:`building_objects` for both dates; ``min_area_m2`` also to
        :func:`debris_objects` (below it, only its small-object test applies).
    debris : bool
        Also report as demolished the roof-like segments of the first date, of any roof
        colour, that turned into rubble-like texture and hold no building on the second
        date (:func:`debris_objects`).  The per-date building detector misses most
        brown and red roofs, so without this test few destroyed houses are found.
    max_similarity : float
        A new, demolished, expanded or shrunk building (or part) whose grey levels, over it
        and a 2 m rim, correlate with the other date's at least this much
        (:func:`structure_similarity`) is the same structure on both dates: it is dropped
        (a before-date building is then unchanged).  This removes roofs that only changed
        colour under the other date's colour balance and that the per-date detector saw on
        one date only.  1 turns the test off.  Not applied to the rubble test.

    Returns
    -------
    VHRChangeResult

    Examples
    --------
    >>> from affine import Affine
    >>> from campwatch.grid import Grid
    >>> g = Grid((120, 120), Affine(0.5, 0, 500000, 0, -0.5, 4000000), "EPSG:32652")
    >>> d0 = np.full((3, 120, 120), 25.0, np.float32); d0[1] = 100; d0[:, 5:15, 5:115] = 90  # grass, a path
    >>> d1 = d0.copy(); d1[:, 30:60, 30:60] = 128; d1[:, 60:66, 30:60] = 5               # a new roof, its shadow
    >>> v = np.ones((120, 120), bool)
    >>> r = vhr_change(Scene(d0, ("red", "green", "blue"), g, v), Scene(d1, ("red", "green", "blue"), g, v),
    ...                coregister=False)
    >>> r.counts["new"], r.counts["demolished"], bool(r.mask[45, 45]), bool(r.mask[100, 100])
    (1, 0, True, False)
    """
    if not before.grid.same_as(after.grid):
        raise GridMismatchError(f"vhr_change needs both dates on one grid; before is {before.grid}, after is "
                                f"{after.grid}; read the second date with read_scene(..., grid=before.grid)")
    px = before.grid.pixel_size_m()
    if px >= 5.0:
        raise ValueError(f"vhr_change needs sub-5 m pixels, but {before.label} has {px:.1f} m pixels; "
                         "use the Sentinel-2 / Landsat change detection (campwatch compare) instead")
    flags: list[str] = []
    coarse = px > COARSE_VHR_M
    if coarse:
        flags.append(f"pixels of {px:.1f} m: the building detector needs sub-metre pixels (a 20 m² house is "
                     f"{20 / px**2:.0f} px here), so building counts are unreliable; the change mask also holds "
                     "pixel change above the scene's own Otsu threshold, not attributed to any building "
                     "(docs/vhr.md); check every figure by eye")
    shift_record: dict[str, Any] = {}
    if coregister:
        from campwatch.coregister import coregister_local
        from campwatch.errors import MisregistrationWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MisregistrationWarning)
            after, shift = coregister_local(before, after, max_shift_px=max(10.0, 10.0 / px))
        shift_record = shift.to_dict()
        for w in caught:
            if issubclass(w.category, MisregistrationWarning):
                flags.append(f"misregistration: {w.message}")
            else:  # pragma: no cover - re-raise anything else
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        residual = shift.residual_px if shift.applied and shift.residual_px is not None else 0.0
        if residual * px > tolerance_m:
            flags.append(f"residual shift {residual * px:.2f} m exceeds the {tolerance_m:g} m tolerance; "
                         "expect false change along building edges")
    valid = before.valid & after.valid
    xb, xa = rgb_stack(before), rgb_stack(after)
    xa_n, fit = normalise_to(xb, xa, valid)
    gains = np.asarray(fit["gain"])
    if np.any(gains > 1.5) or np.any(gains < 1 / 1.5):
        flags.append(f"colour balance differs strongly between dates (band gains {np.round(gains, 2).tolist()}); "
                     "different sensors or seasons, change of roof colour is less certain")
    radius = _px(tolerance_m, px, minimum=0)
    score = tolerant_difference(xb[:3], xa_n[:3], radius_px=radius)
    score = ndimage.uniform_filter(score, size=_px(smooth_m, px) | 1, mode="nearest")
    score = np.where(valid, score, 0.0).astype(np.float32)
    otsu = _otsu_cut(score[valid])
    if threshold is None:
        threshold = otsu_fraction * otsu
    changed = (score > threshold) & valid
    # at coarse pixels buildings are a few pixels each and the object logic misses most change:
    # report the pixel change too, at the scene's own Otsu cut of the score (as the naive baseline
    # does on its CVA), so detection degrades to a pixel method instead of going silent
    pixel_cut = otsu if coarse else None
    pixel_change = (score > otsu) & valid if coarse else np.zeros(valid.shape, bool)

    kw = {"pixel_size_m": px, "threshold": building_threshold, "min_area_m2": min_area_m2,
          "min_shadow_fraction": min_shadow_fraction}
    lab_b = building_objects(xb, before.valid, **kw)
    lab_a = building_objects(xa, after.valid, **kw)
    # shadows: dark in one date only, over a large share of the scene, means other sun or season
    vb, va = xb[:3].mean(axis=0), xa_n[:3].mean(axis=0)
    dark_cut = np.percentile(vb[valid], 20) if valid.any() else 0.0
    shadow_change = float(((vb < dark_cut) != (va < dark_cut))[valid].mean()) if valid.any() else 0.0
    if shadow_change > 0.35:
        flags.append(f"shadows differ on {shadow_change:.0%} of the scene (sun angle or season); "
                     "changes next to tall objects are less certain")

    near = _px(tolerance_m, px, minimum=1)
    near_b = ndimage.binary_dilation(lab_b > 0, iterations=near)
    near_a = ndimage.binary_dilation(lab_a > 0, iterations=near)
    edge = np.zeros(valid.shape, bool)
    edge[:near, :], edge[-near:, :], edge[:, :near], edge[:, -near:] = True, True, True, True
    touches_gap = ndimage.binary_dilation(~valid | edge, iterations=near)

    empty = np.zeros(valid.shape, np.int32)
    parts: dict[str, np.ndarray] = {k: empty.copy() for k in GROWTH_CLASSES}
    low: dict[str, dict[int, str]] = {k: {} for k in GROWTH_CLASSES}
    min_px = min_area_m2 / px**2

    def reason_for(gap_frac: float, other_near_frac: float, frac: float) -> str:
        why = []
        if other_near_frac >= 0.3 and frac >= whole_fraction:
            why.append("a building stands here on both dates: re-roofed or replaced cannot be told apart")
        if gap_frac > 0:
            why.append("touches the image edge or invalid pixels")
        return "; ".join(why)

    # after-date objects: new (whole) or expanded (changed part)
    counts_a, (chg_a, old_a, gap_a) = _object_fractions(lab_a, changed, near_b, touches_gap)
    for i in range(1, counts_a.size):
        if chg_a[i] < min_fraction:
            continue
        if old_a[i] < 0.3 or chg_a[i] >= whole_fraction:  # nothing there before, or all of it changed
            parts["new"][lab_a == i] = i
            r = reason_for(gap_a[i], old_a[i], chg_a[i])
            if r:
                low["new"][i] = r
        else:
            part = (lab_a == i) & changed & ~near_b
            if part.sum() >= min_px:
                parts["expanded"][part] = i
                if gap_a[i] > 0:
                    low["expanded"][i] = "touches the image edge or invalid pixels"
    # before-date objects: demolished (whole), shrunk (changed part) or unchanged
    counts_b, (chg_b, new_b, gap_b) = _object_fractions(lab_b, changed, near_a, touches_gap)
    for i in range(1, counts_b.size):
        if chg_b[i] < min_fraction:
            parts["unchanged"][lab_b == i] = i
            continue
        if (new_b[i] < 0.3 and chg_b[i] >= lost_fraction) or chg_b[i] >= whole_fraction:
            parts["demolished"][lab_b == i] = i
            r = reason_for(gap_b[i], new_b[i], chg_b[i])
            if r:
                low["demolished"][i] = r
        elif new_b[i] < 0.3:
            parts["unchanged"][lab_b == i] = i
            low["unchanged"][i] = "not found on the second date, but its colour barely changed"
        else:
            part = (lab_b == i) & changed & ~near_a
            if part.sum() >= min_px:
                parts["shrunk"][part] = i
                if gap_b[i] > 0:
                    low["shrunk"][i] = "touches the image edge or invalid pixels"
            else:
                parts["unchanged"][lab_b == i] = i

    # both dates' smoothed grey levels, made once for every similarity test below
    grey = smoothed_grey(xb, xa_n, pixel_size_m=px) if max_similarity < 1.0 or debris else None
    if max_similarity < 1.0:
        # the same structure on both dates (outline, ridge, shadow in place; colour balance aside)
        # is not new, demolished, expanded or shrunk, whatever the per-date detector says
        for k in ("new", "demolished", "expanded", "shrunk"):
            if not parts[k].any():
                continue
            same = structure_similarity(parts[k], xb, xa_n, pixel_size_m=px, grey=grey) >= max_similarity
            same[0] = False
            if not same.any():
                continue
            drop = same[parts[k]]
            if k in ("demolished", "shrunk"):  # a before-date building still standing
                for i in np.unique(parts[k][drop]):
                    parts["unchanged"][lab_b == i] = i
                    low["unchanged"].pop(int(i), None)
            parts[k][drop] = 0
            for j in np.flatnonzero(same):
                low[k].pop(int(j), None)
    if debris:
        # roof-like segments of any colour that became rubble, where no building stands after
        lab_d = debris_objects(xb, xa_n, valid, pixel_size_m=px, exclude=near_a, min_area_m2=min_area_m2, grey=grey)
        taken = (parts["demolished"] > 0) | (parts["shrunk"] > 0)
        counts_d, (taken_d, gap_d) = _object_fractions(lab_d, taken, touches_gap)
        rubble = np.zeros(valid.shape, np.int32)
        small = counts_d < min_px  # from the small-object test
        for i in range(1, counts_d.size):
            if counts_d[i] == 0 or taken_d[i] >= 0.5:
                continue
            part = (lab_d == i) & ~taken
            if part.sum() >= (_SMALL_DEMOLITION_M2 / px**2 if small[i] else min_px):
                rubble[part] = i
        # segments less than about 1 m apart are one demolition: a roof cut by its ridge shadow,
        # a tree or a strip of lawn is one building (one object_id, one count, a MultiPolygon)
        where = rubble > 0
        comp = ndimage.label(ndimage.binary_dilation(where, iterations=_px(0.5, px)))[0][where]
        segs = rubble[where]
        offset = int(lab_b.max())
        parts["demolished"][where] = offset + comp
        nc = int(comp.max()) + 1 if comp.size else 1
        regular = np.bincount(comp, weights=~small[segs], minlength=nc) > 0
        gap = np.bincount(comp, weights=gap_d[segs] > 0, minlength=nc) > 0
        n_segs = np.bincount(np.unique(np.stack([comp, segs]), axis=1)[0], minlength=nc)
        for c in np.unique(comp):
            if regular[c]:
                why = "roof-like before, rubble-like texture after"
            else:
                why = "small compact object before, its outline and cast shadow gone after"
            what = "segment" if n_segs[c] == 1 else f"{n_segs[c]} segments"
            why += f" ({what}, not a detected building"
            why += ")" if regular[c] else "; under the building size, may be a car or clutter)"
            if gap[c]:
                why += "; touches the image edge or invalid pixels"
            low["demolished"][offset + int(c)] = why
    frames = [_polygons(parts[k], before.grid, k, changed, low[k]) for k in GROWTH_CLASSES]
    frames = [f for f in frames if len(f)]
    if frames:
        growth = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=before.grid.crs)
    else:
        growth = _polygons(empty, before.grid, "unchanged", changed, {})
    counts = {k: int(np.unique(parts[k][parts[k] > 0]).size) for k in GROWTH_CLASSES}
    mask = (parts["new"] > 0) | (parts["demolished"] > 0) | (parts["expanded"] > 0) | (parts["shrunk"] > 0) | pixel_change
    params = {"tolerance_m": tolerance_m, "smooth_m": smooth_m, "threshold": threshold, "min_fraction": min_fraction,
              "whole_fraction": whole_fraction, "lost_fraction": lost_fraction, "min_area_m2": min_area_m2, "building_threshold": building_threshold,
              "min_shadow_fraction": min_shadow_fraction, "coregister": coregister, "debris": debris,
              "max_similarity": max_similarity, "otsu_fraction": otsu_fraction, "pixel_change_threshold": pixel_cut}
    return VHRChangeResult(before.grid, score, float(threshold), mask & valid, lab_b, lab_a, growth, counts,
                           flags, params, shift_record, fit)


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
    return (mag > _otsu_cut(mag[valid])) & valid
