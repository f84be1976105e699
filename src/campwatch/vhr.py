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
   fitted linearly to the first's on pixels that did not change (an iterated
   radcal-like fit), so a different sensor or colour balance does not read as change.
3. **Co-registration** with :func:`campwatch.coregister.coregister` (phase correlation
   on gradients), then a **shift-tolerant difference** (:func:`tolerant_difference`)
   that forgives residual shifts and building lean of up to ``tolerance_m``.
4. **Growth classes** per building (:func:`vhr_change`): new, demolished, expanded,
   shrunk and unchanged, as polygons with geodesic areas and counts.

Parameters are in metres and scaled by the grid's pixel size, so the same defaults
work at 0.3 m and at 1 m.  Limits are listed in ``docs/vhr.md``.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import ndimage
from skimage import filters, morphology
from skimage.draw import line as draw_line

from campwatch.errors import CampwatchWarning, GridMismatchError
from campwatch.grid import Grid
from campwatch.scene import Scene
from campwatch.vectorize import mask_to_polygons

__all__ = [
    "GROWTH_CLASSES",
    "VHRChangeResult",
    "rgb_stack",
    "vegetation_index",
    "building_index",
    "road_mask",
    "building_objects",
    "building_mask",
    "normalise_to",
    "tolerant_difference",
    "vhr_change",
    "naive_cva",
]

#: Growth classes of :func:`vhr_change`, in report order.
GROWTH_CLASSES: tuple[str, ...] = ("new", "demolished", "expanded", "shrunk", "unchanged")


def _px(metres: float, pixel_size_m: float, *, minimum: int = 1) -> int:
    """``metres`` as a whole number of pixels (at least ``minimum``)."""
    return max(minimum, int(round(metres / pixel_size_m)))


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

    Each band is divided by the 99.5th percentile of the scene's brightest valid band,
    so uint8 and uint16 products look alike; invalid pixels take the value of their
    nearest valid neighbour (the valid mask still travels with the scene).

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
    ref = data[:3][:, valid] if valid.any() else data[:3].reshape(3, -1)
    scale = float(np.percentile(ref, 99.5)) if ref.size else 1.0
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return np.clip(data / scale, 0.0, 1.0).astype(np.float32)


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
    dy, dx = int(round(r * np.sin(theta))), int(round(r * np.cos(theta)))
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
