"""Stage 2 of VHR mode: the buildings of one date (grey, lit, not vegetated roof evidence,
roads removed, a cast shadow on the rim)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import morphology
from skimage.draw import line as draw_line

from campwatch.scene import Scene
from campwatch.vhr.common import to_px
from campwatch.vhr.normalise import rgb_stack

__all__ = ["building_index", "building_mask", "building_objects", "road_mask", "vegetation_index"]


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
    size = to_px(smooth_m, pixel_size_m) | 1
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
    length = to_px(min_length_m, pixel_size_m, minimum=3)
    along = np.zeros(mask.shape, bool)
    for k in range(8):
        along |= ndimage.binary_opening(mask, structure=_line(length, k * np.pi / 8))
    wide = ndimage.binary_opening(mask, structure=morphology.disk(to_px(max_width_m / 2, pixel_size_m)))
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
    cand &= ~ndimage.binary_dilation(roads, iterations=to_px(1.0, pixel_size_m))
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
        ring = ndimage.grey_dilation(lab, size=(to_px(shadow_ring_m, pixel_size_m) | 1,) * 2)
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
