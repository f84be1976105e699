"""Compiled per-pixel kernels of the streaming engine (numba).

Each kernel repeats, operation for operation and in the same floating-point types, the
numpy code it replaces, so the results are the same bits (``tests/test_engine.py``);
it only avoids the temporaries and the passes over memory.  Compiled on first use and
cached next to the module (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange  # noqa: F401

__all__ = ["bilinear_bands", "box_mean3", "cloud_spectral", "default_score", "dn_to_reflectance", "masked_moments", "relative_pass", "set_nan"]


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


@njit(cache=True, nogil=True, error_model="numpy")
def cloud_spectral(blue: np.ndarray, green: np.ndarray, red: np.ndarray, nir: np.ndarray, cirrus: np.ndarray,
                   swir: np.ndarray, valid: np.ndarray, th: np.ndarray, has_cirrus: bool,
                   has_swir: bool) -> np.ndarray:
    """(M, N) bool: the per-pixel tests of :func:`campwatch.masks.cloud_mask` (before its
    majority filter), in float32 as the numpy expressions they replace.  ``th`` holds the
    float32 thresholds (hot, strong hot, bright, whiteness, cirrus, cirrus haze); ``cirrus``
    and ``swir`` are read only when ``has_cirrus`` / ``has_swir``."""
    m, n = blue.shape
    out = np.zeros((m, n), np.bool_)
    f3 = np.float32(3.0)
    half = np.float32(0.5)
    c008 = np.float32(0.08)
    c02 = np.float32(0.2)
    c04 = np.float32(0.4)
    c06 = np.float32(0.6)
    c011 = np.float32(0.11)
    zero = np.float32(0.0)
    for r in range(m):
        for c in range(n):
            if not valid[r, c]:
                continue
            bl = blue[r, c]
            gr = green[r, c]
            rd = red[r, c]
            ni = nir[r, c]
            vis = (bl + gr) + rd
            vis = vis / f3
            dev = np.abs(bl - vis)
            dev = dev + np.abs(gr - vis)
            dev = dev + np.abs(rd - vis)
            white = (vis > zero) and (dev < th[3] * vis)
            ndvi = (ni - rd) / (ni + rd)
            hot = bl - half * rd
            hot = hot - c008
            haze = (hot > th[0]) and (ndvi > c02)
            if has_cirrus:
                haze = haze and (cirrus[r, c] > th[5])
            cl = haze or (hot > th[1])
            cl = cl or ((vis > th[2]) and white and (ndvi < c04))
            if has_cirrus:
                cl = cl or (cirrus[r, c] > th[4])
            if has_swir and cl:
                sw = swir[r, c]
                ndsi = (gr - sw) / (gr + sw)
                if (ndsi > c06) and (ni > c011):
                    cl = False
            out[r, c] = cl
    return out


@njit(cache=True, nogil=True)
def set_nan(data: np.ndarray, flags: np.ndarray) -> None:
    """``data[:, flags] = NaN`` in place."""
    nb, m, n = data.shape
    for r in range(m):
        for c in range(n):
            if flags[r, c]:
                for b in range(nb):
                    data[b, r, c] = np.nan


@njit(cache=True, nogil=True, error_model="numpy")
def box_mean3(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(M, N) float32: :func:`campwatch.detect._nanmean_filter` with size 3: the mean of the
    valid pixels of each 3 × 3 neighbourhood (edges repeated), NaN where none is valid.
    Sums in :func:`campwatch.detect._box_sum`'s order (three rows, then three columns)."""
    m, n = x.shape
    rows = np.empty((m, n), np.float32)
    cnt = np.empty((m, n), np.int32)
    zero = np.float32(0.0)
    for r in range(m):
        r0 = max(r - 1, 0)
        r2 = min(r + 1, m - 1)
        for c in range(n):
            v0 = x[r0, c] if valid[r0, c] else zero
            v1 = x[r, c] if valid[r, c] else zero
            v2 = x[r2, c] if valid[r2, c] else zero
            rows[r, c] = (v0 + v1) + v2
            cnt[r, c] = np.int32(valid[r0, c]) + np.int32(valid[r, c]) + np.int32(valid[r2, c])
    out = np.empty((m, n), np.float32)
    for r in range(m):
        for c in range(n):
            c0 = max(c - 1, 0)
            c2 = min(c + 1, n - 1)
            s = (rows[r, c0] + rows[r, c]) + rows[r, c2]
            k = cnt[r, c0] + cnt[r, c] + cnt[r, c2]
            out[r, c] = s / np.float32(k) if k > 0 else np.nan
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def default_score(b: np.ndarray, a: np.ndarray, v: np.ndarray, sel: np.ndarray, gain: np.ndarray,
                  offset: np.ndarray, sigma: np.ndarray, nir: int, red: int, swir: int) -> np.ndarray:
    """(M, N) float32: :func:`campwatch.detect._default_score` then ``window_score``'s NaN
    outside ``v``, in the float32 arithmetic of the numpy code (``gain``, ``offset``,
    ``sigma`` float32; ``swir`` -1 when the scene has no swir16)."""
    nb, m, n = b.shape
    mag = np.empty((m, n), np.float32)
    veg = np.empty((m, n), np.float32)
    vok = np.empty((m, n), np.bool_)
    water = np.zeros((m, n), np.bool_)
    eps = np.float32(1e-6)
    w8 = np.float32(0.08)
    w5 = np.float32(0.05)
    for r in range(m):
        for c in range(n):
            acc = np.float32(0.0)
            for i in range(sel.shape[0]):
                k = sel[i]
                z = b[k, r, c] * gain[i]
                z = z + offset[i]
                z = a[k, r, c] - z
                z = z / sigma[i]
                acc = acc + z * z
            mag[r, c] = np.sqrt(acc)
            bn = b[nir, r, c]
            an = a[nir, r, c]
            if swir >= 0:
                water[r, c] = ((b[swir, r, c] < w5) and (bn < w8)) or ((a[swir, r, c] < w5) and (an < w8))
            else:
                water[r, c] = (bn < w8) and (an < w8)
            br = b[red, r, c]
            ar = a[red, r, c]
            nb_ = (bn - br) / ((bn + br) + eps)
            na_ = (an - ar) / ((an + ar) + eps)
            # np.fmax: the other value where one is NaN
            if np.isnan(nb_):
                g = na_
            elif np.isnan(na_):
                g = nb_
            else:
                g = max(nb_, na_)
            veg[r, c] = g
            vok[r, c] = v[r, c] and np.isfinite(g)
    s = box_mean3(mag, v)
    vm = box_mean3(veg, vok)
    c075 = np.float32(0.75)
    c03 = np.float32(0.3)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for r in range(m):
        for c in range(n):
            if not v[r, c]:
                s[r, c] = np.nan
                continue
            wet = water[r, c] or (r > 0 and water[r - 1, c]) or (r < m - 1 and water[r + 1, c]) \
                or (c > 0 and water[r, c - 1]) or (c < n - 1 and water[r, c + 1])
            if wet:
                s[r, c] = zero
                continue
            g = vm[r, c]
            if np.isnan(g):
                g = zero
            g = (c075 - g) / c03
            g = min(max(g, zero), one)
            s[r, c] = s[r, c] * g
    return s


@njit(cache=True, nogil=True)
def dn_to_reflectance(dn: np.ndarray, offset: float, scale: float, nodata: np.ndarray, has_nodata: np.ndarray,
                      zero_fill: np.ndarray, all_zero: np.ndarray, saturation: float, has_saturation: bool,
                      data: np.ndarray, valid: np.ndarray) -> None:
    """:func:`campwatch.io.read_source`'s conversion of one multi-band read, in one pass:
    ``data[b] = float32((dn + offset) * scale)`` (float64 arithmetic, the values of its
    look-up table) and ``valid`` False where any band is nodata (``dn == nodata[b]``),
    zero fill (``zero_fill[b]`` and 0), saturated (``dn >= saturation``), or where every
    band flagged ``all_zero`` is 0; NaN in ``data`` where not valid."""
    nb, m, n = dn.shape
    # band by band, simple inner loops over contiguous rows (they vectorise)
    zeros = np.ones((m, n), np.bool_)
    any_all_zero = False
    valid[:, :] = True
    for b in range(nb):
        nd = nodata[b]
        chk_nd = has_nodata[b]
        chk_zero = zero_fill[b]
        chk_all = all_zero[b]
        any_all_zero = any_all_zero or chk_all
        for r in range(m):
            for c in range(n):
                v = np.float64(dn[b, r, c])
                bad = (chk_nd and v == nd) or (chk_zero and v == 0.0) or (has_saturation and not (v < saturation))
                valid[r, c] = valid[r, c] and not bad
                zeros[r, c] = zeros[r, c] and not (chk_all and v != 0.0)
    if any_all_zero:
        for r in range(m):
            for c in range(n):
                valid[r, c] = valid[r, c] and not zeros[r, c]
    nan = np.float32(np.nan)
    for b in range(nb):
        for r in range(m):
            for c in range(n):
                x = np.float32((np.float64(dn[b, r, c]) + offset) * scale)
                data[b, r, c] = x if valid[r, c] else nan
