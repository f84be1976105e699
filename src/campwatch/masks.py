"""Validity masks: nodata, zeros and saturation, L2A scene classification, user masks.

Pure module: arrays in, boolean masks out (True = valid).  Cloud tests for
imagery without an SCL band live here too.
"""

from __future__ import annotations

import numpy as np

__all__ = ["nodata_mask", "scl_valid", "SCL_INVALID"]

#: Sentinel-2 L2A scene classification values treated as invalid:
#: 0 no data, 1 saturated/defective, 3 cloud shadow, 8 cloud medium probability,
#: 9 cloud high probability, 10 thin cirrus, 11 snow/ice.
SCL_INVALID: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)


def nodata_mask(dn: np.ndarray, *, nodata: float | None = None, zero_is_nodata: bool = False,
                saturation: float | None = None) -> np.ndarray:
    """True where a band's raw value is usable.

    Parameters
    ----------
    dn : (M, N) ndarray
        Raw digital numbers (or reflectance) of one band.
    nodata : float, optional
        The file's nodata value.
    zero_is_nodata : bool
        Treat 0 as nodata (unsigned products such as Sentinel-2 DN use 0 as fill).
    saturation : float, optional
        Values at or above this are saturated.

    Examples
    --------
    >>> nodata_mask(np.array([[0, 5, 65535]]), zero_is_nodata=True, saturation=65535).tolist()
    [[False, True, False]]
    """
    ok = np.isfinite(dn)
    if nodata is not None and not np.isnan(nodata):
        ok &= dn != nodata
    if zero_is_nodata:
        ok &= dn != 0
    if saturation is not None:
        ok &= dn < saturation
    return ok


def scl_valid(scl: np.ndarray, *, invalid: tuple[int, ...] = SCL_INVALID) -> np.ndarray:
    """True where the L2A scene classification is neither nodata, cloud, shadow, cirrus nor snow.

    Examples
    --------
    >>> scl_valid(np.array([[4, 9, 3, 5]], dtype=np.uint8)).tolist()
    [[True, False, False, True]]
    """
    return ~np.isin(scl, invalid)
