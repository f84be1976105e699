"""Units and scene statistics shared by the VHR stages: metres to pixels, Otsu's cut, the
growth classes."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import filters

__all__ = ["GROWTH_CLASSES", "SMALL_DEMOLITION_M2", "fill_invalid", "otsu_cut", "to_px"]

#: Smallest demolition the rubble test reports, m² (its segmentation's smallest segment).
SMALL_DEMOLITION_M2 = 8.0

#: Growth classes of :func:`campwatch.vhr.vhr_change`, in report order.
GROWTH_CLASSES: tuple[str, ...] = ("new", "demolished", "expanded", "shrunk", "unchanged")


def to_px(metres: float, pixel_size_m: float, *, minimum: int = 1) -> int:
    """``metres`` as a whole number of pixels (at least ``minimum``)."""
    return max(minimum, round(metres / pixel_size_m))


def otsu_cut(values: np.ndarray) -> float:
    """Otsu's threshold of ``values``; inf (nothing changes) when they are too few or all equal."""
    return float(filters.threshold_otsu(values)) if values.size > 16 and np.ptp(values) > 0 else float("inf")


def fill_invalid(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy of ``image`` (B, M, N) with invalid pixels set to their nearest valid neighbour."""
    if valid.all():
        return image.astype(np.float32, copy=True)
    if not valid.any():
        return np.zeros_like(image, dtype=np.float32)
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return image[:, idx[0], idx[1]].astype(np.float32)
