"""VHR mode: building-level evidence and change on sub-metre RGB(N) imagery.

Pure module: scenes and arrays in, arrays and records out; no file is opened here.

At about half a metre a house is a few hundred pixels, so campwatch treats buildings
as the unit.  Everything here is classical image processing (no trained model):

* **Building evidence** (:func:`building_index`): a morphological building index
  (MBI, Huang & Zhang 2011: white top-hats of brightness over several sizes), a dark
  top-hat for dark roofs, a shadow index, vegetation from chromaticity (or NDVI when
  a NIR band exists) and local texture.  :func:`building_mask` thresholds it and keeps
  compact, building-sized objects, dropping roads (long and thin), vegetation and
  bare soil.
* **Parameters are in metres** and scaled by the grid's pixel size, so the same
  defaults work at 0.3 m and at 1 m.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage
from skimage import filters, measure, morphology

from campwatch.scene import Scene

__all__ = [
    "rgb_stack",
    "vegetation_index",
    "shadow_index",
    "building_index",
    "building_mask",
]


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


def shadow_index(rgb: np.ndarray, *, pixel_size_m: float, max_width_m: float = 12.0) -> np.ndarray:
    """Morphological shadow index: mean black top-hat of brightness over several sizes.

    Dark, compact regions darker than their surroundings (cast shadows, and some dark
    roofs) score high; open dark areas (water, large tarmac) do not.

    Parameters
    ----------
    rgb : (B, M, N) ndarray
    pixel_size_m : float
    max_width_m : float
        Largest shadow width looked for.

    Returns
    -------
    (M, N) float32 ndarray, >= 0

    Examples
    --------
    >>> img = np.full((3, 20, 20), 0.6, np.float32); img[:, 8:11, 8:11] = 0.1
    >>> msi = shadow_index(img, pixel_size_m=0.5, max_width_m=3)
    >>> bool(msi[9, 9] > 0.3), float(msi[0, 0])
    (True, 0.0)
    """
    bright = rgb[:3].mean(axis=0)
    sizes = _scales(pixel_size_m, 2.0, max_width_m)
    out = np.zeros(bright.shape, np.float32)
    for s in sizes:
        out += ndimage.grey_closing(bright, size=(s, s)) - bright
    return (out / len(sizes)).astype(np.float32)


def _scales(pixel_size_m: float, smallest_m: float, largest_m: float, n: int = 4) -> list[int]:
    """Up to ``n`` structuring-element widths in pixels, from ``smallest_m`` to ``largest_m``."""
    sizes = np.geomspace(smallest_m, largest_m, n) / pixel_size_m
    return sorted({max(3, int(round(s)) | 1) for s in sizes})


def building_index(rgb: np.ndarray, *, pixel_size_m: float, min_width_m: float = 4.0,
                   max_width_m: float = 40.0) -> np.ndarray:
    """Morphological building index (MBI): how much brighter than its surroundings a roof is.

    The mean, over structuring-element widths from ``min_width_m`` to ``max_width_m``,
    of the white top-hat of brightness (max of R, G, B), plus the same for darkness on
    non-vegetated pixels (grey and dark roofs on bright soil), with vegetation set to 0.

    Parameters
    ----------
    rgb : (B, M, N) ndarray
        As from :func:`rgb_stack`.
    pixel_size_m : float
    min_width_m, max_width_m : float
        Range of building widths looked for.

    Returns
    -------
    (M, N) float32 ndarray, >= 0

    Examples
    --------
    >>> img = np.full((3, 60, 60), 0.3, np.float32); img[:, 20:36, 20:36] = 0.8
    >>> mbi = building_index(img, pixel_size_m=0.5, min_width_m=2, max_width_m=20)
    >>> bool(mbi[28, 28] > 0.2), float(mbi[2, 2])
    (True, 0.0)
    """
    bright = rgb[:3].max(axis=0)
    sizes = _scales(pixel_size_m, min_width_m, max_width_m)
    white = np.zeros(bright.shape, np.float32)
    for s in sizes:
        white += bright - ndimage.grey_opening(bright, size=(s, s))
    white /= len(sizes)
    veg = vegetation_index(rgb) > (0.3 if rgb.shape[0] >= 4 else 0.06)
    return np.where(veg, 0.0, white).astype(np.float32)


def _object_filter(mask: np.ndarray, *, pixel_size_m: float, min_area_m2: float, max_area_m2: float,
                   min_width_m: float, min_solidity: float, max_elongation: float) -> np.ndarray:
    """Keep connected components whose size and shape fit a building."""
    lab = measure.label(mask, connectivity=1)
    if lab.max() == 0:
        return np.zeros(mask.shape, bool)
    px_area = pixel_size_m**2
    keep = np.zeros(lab.max() + 1, bool)
    for rp in measure.regionprops(lab):
        area = rp.area * px_area
        if area < min_area_m2 or area > max_area_m2:
            continue
        minor = rp.axis_minor_length * pixel_size_m
        major = rp.axis_major_length * pixel_size_m
        if minor < min_width_m or major / max(minor, 1e-6) > max_elongation:
            continue
        if rp.solidity < min_solidity:
            continue
        keep[rp.label] = True
    return keep[lab]


def building_mask(scene: Scene, *, method: Literal["mbi"] = "mbi", min_area_m2: float = 20.0,
                  max_area_m2: float = 20000.0, min_width_m: float = 3.0, min_solidity: float = 0.6,
                  max_elongation: float = 6.0, threshold: float | None = None) -> np.ndarray:
    """Building (structure) pixels of one sub-metre RGB(N) scene.

    Parameters
    ----------
    scene : Scene
        A VHR scene (pixels finer than 5 m) with ``red``, ``green``, ``blue`` (``nir`` optional).
    method : {"mbi"}
        ``"mbi"``: morphological building index, Otsu threshold, then compact,
        building-sized objects only.
    min_area_m2, max_area_m2 : float
        Objects outside this range are dropped (a garden shed; a field).
    min_width_m, max_elongation : float
        Roads and paths are long and thin: objects narrower than ``min_width_m`` or
        longer than ``max_elongation`` times their width are dropped.
    min_solidity : float
        Area over convex-hull area; ragged objects (tree crowns, soil patches) are dropped.
    threshold : float, optional
        MBI threshold; by default Otsu's over the scene's valid pixels.

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
    >>> d = np.full((3, 80, 80), 60, np.float32); d[:, 20:40, 30:50] = 200  # a 10 m x 10 m roof
    >>> s = Scene(d, ("red", "green", "blue"), g, np.ones((80, 80), bool))
    >>> m = building_mask(s)
    >>> bool(m[30, 40]), bool(m[5, 5])
    (True, False)
    """
    if method != "mbi":
        raise ValueError(f"building_mask: unknown method {method!r}; choose 'mbi'")
    px = scene.grid.pixel_size_m()
    if px >= 5.0:
        raise ValueError(f"building_mask needs sub-5 m pixels, but {scene.label} has {px:.1f} m pixels; "
                         "use campwatch.structures.builtup_mask for Sentinel-2 or Landsat")
    rgb = rgb_stack(scene)
    mbi = building_index(rgb, pixel_size_m=px)
    valid = scene.valid
    if threshold is None:
        vals = mbi[valid & (mbi > 0)]
        threshold = float(filters.threshold_otsu(vals)) if vals.size > 16 and np.ptp(vals) > 0 else np.inf
    raw = (mbi > threshold) & valid
    raw = ndimage.binary_opening(raw, morphology.disk(_px(1.0, px)))
    raw = ndimage.binary_fill_holes(raw)
    return _object_filter(raw, pixel_size_m=px, min_area_m2=min_area_m2, max_area_m2=max_area_m2,
                          min_width_m=min_width_m, min_solidity=min_solidity, max_elongation=max_elongation) & valid

