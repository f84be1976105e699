"""Compiled per-pixel kernels of the streaming engine (numba).

Each kernel repeats, operation for operation and in the same floating-point types, the
numpy code it replaces, so the results are the same bits (``tests/test_engine.py``);
it only avoids the temporaries and the passes over memory.  Compiled on first use and
cached next to the module (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange  # noqa: F401

__all__ = ["bilinear_bands", "masked_moments", "relative_pass"]


@njit(cache=True, nogil=True)
def bilinear_bands(data: np.ndarray, valid: np.ndarray, new_valid: np.ndarray, ri: np.ndarray, rw0: np.ndarray,
                   rw1: np.ndarray, ci: np.ndarray, cw0: np.ndarray, cw1: np.ndarray) -> np.ndarray:
    """(B, M, N) float32: each band of ``data`` (zero where ``valid`` is False and outside the
    array) sampled bilinearly at the taps ``ri``/``ci`` with weights ``rw*``/``cw*``, in
    ``scipy.ndimage.shift``'s float64 order (row weight, then column weight, taps summed
    (r, c), (r, c + 1), (r + 1, c), (r + 1, c + 1)); NaN where ``new_valid`` is False."""
    nb, m, n = data.shape
    out = np.empty((nb, m, n), np.float32)
    for b in range(nb):
        for r in range(m):
            y0 = ri[r]
            y1 = y0 + 1
            a0 = rw0[r]
            a1 = rw1[r]
            ok0 = 0 <= y0 < m
            ok1 = 0 <= y1 < m
            for c in range(n):
                if not new_valid[r, c]:
                    out[b, r, c] = np.nan
                    continue
                x0 = ci[c]
                x1 = x0 + 1
                p00 = 0.0
                p01 = 0.0
                p10 = 0.0
                p11 = 0.0
                if ok0:
                    if 0 <= x0 < n and valid[y0, x0]:
                        p00 = np.float64(data[b, y0, x0])
                    if 0 <= x1 < n and valid[y0, x1]:
                        p01 = np.float64(data[b, y0, x1])
                if ok1:
                    if 0 <= x0 < n and valid[y1, x0]:
                        p10 = np.float64(data[b, y1, x0])
                    if 0 <= x1 < n and valid[y1, x1]:
                        p11 = np.float64(data[b, y1, x1])
                t = (p00 * a0) * cw0[c]
                t += (p01 * a0) * cw1[c]
                t += (p10 * a1) * cw0[c]
                t += (p11 * a1) * cw1[c]
                out[b, r, c] = np.float32(t)
    return out


@njit(cache=True, nogil=True)
def masked_moments(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(6, B) float64: count, sum x, sum y, sum x², sum xy, sum y² of each band's pixels
    where the (B, P) ``w`` is True, summed in float64 in pixel order (one pass, no BLAS)."""
    nb, npx = x.shape
    out = np.zeros((6, nb))
    for i in range(nb):
        n = 0.0
        sx = 0.0
        sy = 0.0
        sxx = 0.0
        sxy = 0.0
        syy = 0.0
        for p in range(npx):
            if w[i, p]:
                xv = np.float64(x[i, p])
                yv = np.float64(y[i, p])
                n += 1.0
                sx += xv
                sy += yv
                sxx += xv * xv
                sxy += xv * yv
                syy += yv * yv
        out[0, i] = n
        out[1, i] = sx
        out[2, i] = sy
        out[3, i] = sxx
        out[4, i] = sxy
        out[5, i] = syy
    return out


@njit(cache=True, nogil=True)
def relative_pass(x: np.ndarray, y: np.ndarray, valid: np.ndarray, gain: np.ndarray, offset: np.ndarray,
                  sigma: np.ndarray, clip: float, refit: bool) -> tuple[np.ndarray, np.ndarray]:
    """One pass of :func:`campwatch.normalise.fit_relative` over a (B, M, N) window pair:
    ((6, B) moments as :func:`masked_moments` sums them, (B,) count of finite pixel pairs).

    A pixel counts where ``valid``, both values are finite and, when ``refit``, its float64
    residual ``|y - (gain * x + offset)| / sigma`` is below ``clip``; pixels are summed in
    row-major order, the order of ``x[:, valid]``, so the sums are those of the numpy
    expression bit for bit."""
    nb, m, n = x.shape
    out = np.zeros((6, nb))
    total = np.zeros(nb)
    for i in range(nb):
        cnt = 0.0
        fin = 0.0
        sx = 0.0
        sy = 0.0
        sxx = 0.0
        sxy = 0.0
        syy = 0.0
        g = gain[i]
        o = offset[i]
        s = sigma[i]
        for r in range(m):
            for c in range(n):
                if not valid[r, c]:
                    continue
                xv = np.float64(x[i, r, c])
                yv = np.float64(y[i, r, c])
                if not (np.isfinite(xv) and np.isfinite(yv)):
                    continue
                fin += 1.0
                if refit and not (np.abs(yv - (g * xv + o)) / s < clip):
                    continue
                cnt += 1.0
                sx += xv
                sy += yv
                sxx += xv * xv
                sxy += xv * yv
                syy += yv * yv
        out[0, i] = cnt
        out[1, i] = sx
        out[2, i] = sy
        out[3, i] = sxx
        out[4, i] = sxy
        out[5, i] = syy
        total[i] = fin
    return out, total
