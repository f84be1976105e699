"""Compiled per-pixel kernels (numba), used by the in-memory and the streaming paths alike.

Each kernel repeats, operation for operation and in the same floating-point types, the
numpy expression it replaces, so the results are the same bits (``tests/test_kernels.py``
checks each against its numpy formula on real pixels; ``tests/test_engine.py`` checks
streamed against whole-array outputs); it only avoids the temporaries and the passes over
memory.  Pixel loops are written without branches where they can be, so LLVM vectorises
them; no ``fastmath`` (it would change bits).  Compiled on first use and cached next to
the module (``cache=True``); every kernel releases the GIL.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange  # noqa: F401

__all__ = ["bilinear_bands", "box_mean3", "cloud_spectral", "default_score", "dn_to_reflectance", "histogram_add", "label_row_areas", "label_sums", "majority", "masked_moments", "relative_pass", "set_nan",
           "trace_rings"]


@njit(cache=True, nogil=True)
def bilinear_bands(data: np.ndarray, valid: np.ndarray, new_valid: np.ndarray, ri: np.ndarray, rw0: np.ndarray,
                   rw1: np.ndarray, ci: np.ndarray, cw0: np.ndarray, cw1: np.ndarray) -> np.ndarray:
    """(B, M, N) float32: each band of ``data`` (zero where ``valid`` is False and outside the
    array) sampled bilinearly at the taps ``ri``/``ci`` with weights ``rw*``/``cw*``, in
    ``scipy.ndimage.shift``'s float64 order (row weight, then column weight, taps summed
    (r, c), (r, c + 1), (r + 1, c), (r + 1, c + 1)); NaN where ``new_valid`` is False.

    Each band is first copied into a zero-padded float32 buffer (invalid pixels 0) that
    every tap falls inside, so the sampling loop has no bounds or validity tests."""
    nb, m, n = data.shape
    r_lo = min(ri.min(), 0)
    r_hi = max(ri.max() + 2, m)
    c_lo = min(ci.min(), 0)
    c_hi = max(ci.max() + 2, n)
    pad = np.zeros((r_hi - r_lo, c_hi - c_lo), np.float32)
    out = np.empty((nb, m, n), np.float32)
    zero = np.float32(0.0)
    nan = np.float32(np.nan)
    regular = True
    for c in range(1, n):
        regular = regular and ci[c] == ci[0] + c
    # rows are taken as slices and indexed from 0: numba vectorises ``row[c]`` but not
    # ``row[c + offset]`` (the offset might be negative)
    for b in range(nb):
        for r in range(m):
            prow = pad[r - r_lo, -c_lo:n - c_lo]
            drow = data[b, r]
            vrow = valid[r]
            for c in range(n):
                prow[c] = drow[c] if vrow[c] else zero
        for r in range(m):
            y0 = ri[r] - r_lo
            a0 = rw0[r]
            a1 = rw1[r]
            orow = out[b, r]
            nv = new_valid[r]
            if regular:  # taps at c + shift: contiguous loads
                off = ci[0] - c_lo
                p00 = pad[y0, off:off + n]
                p01 = pad[y0, off + 1:off + 1 + n]
                p10 = pad[y0 + 1, off:off + n]
                p11 = pad[y0 + 1, off + 1:off + 1 + n]
                for c in range(n):
                    t = (np.float64(p00[c]) * a0) * cw0[c]
                    t += (np.float64(p01[c]) * a0) * cw1[c]
                    t += (np.float64(p10[c]) * a1) * cw0[c]
                    t += (np.float64(p11[c]) * a1) * cw1[c]
                    orow[c] = np.float32(t) if nv[c] else nan
            else:
                p0 = pad[y0]
                p1 = pad[y0 + 1]
                for c in range(n):
                    x0 = ci[c] - c_lo
                    t = (np.float64(p0[x0]) * a0) * cw0[c]
                    t += (np.float64(p0[x0 + 1]) * a0) * cw1[c]
                    t += (np.float64(p1[x0]) * a1) * cw0[c]
                    t += (np.float64(p1[x0 + 1]) * a1) * cw1[c]
                    orow[c] = np.float32(t) if nv[c] else nan
    return out


@njit(cache=True, nogil=True, inline="always")
def _add_pair(acc: np.ndarray, xv: float, yv: float) -> None:
    """Add one pair to the running (6,) sums: count, x, y, x², xy, y² (float64, in order)."""
    acc[0] += 1.0
    acc[1] += xv
    acc[2] += yv
    acc[3] += xv * xv
    acc[4] += xv * yv
    acc[5] += yv * yv


@njit(cache=True, nogil=True)
def masked_moments(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(6, B) float64: count, sum x, sum y, sum x², sum xy, sum y² of each band's pixels
    where the (B, P) ``w`` is True, summed in float64 in pixel order (one pass, no BLAS)."""
    nb, npx = x.shape
    out = np.zeros((6, nb))
    acc = np.zeros(6)
    for i in range(nb):
        acc[:] = 0.0
        for p in range(npx):
            if w[i, p]:
                _add_pair(acc, np.float64(x[i, p]), np.float64(y[i, p]))
        out[:, i] = acc
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
    acc = np.zeros(6)
    for i in range(nb):
        acc[:] = 0.0
        fin = 0.0
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
                _add_pair(acc, xv, yv)
        out[:, i] = acc
        total[i] = fin
    return out, total


@njit(cache=True, nogil=True, error_model="numpy")
def cloud_spectral(blue: np.ndarray, green: np.ndarray, red: np.ndarray, nir: np.ndarray, cirrus: np.ndarray,
                   swir: np.ndarray, valid: np.ndarray, th: np.ndarray, has_cirrus: bool,
                   has_swir: bool) -> np.ndarray:
    """(M, N) bool: the per-pixel tests of :func:`campwatch.masks.cloud_mask` (before its
    majority filter), in float32 as the numpy expressions they replace.  ``th`` holds the
    float32 thresholds (hot, strong hot, bright, whiteness, cirrus, cirrus haze); without
    ``has_cirrus`` / ``has_swir`` their tests are switched off and ``cirrus`` / ``swir``
    may be any array of the same shape (its values are not used)."""
    m, n = blue.shape
    out = np.empty((m, n), np.bool_)
    f3 = np.float32(3.0)
    half = np.float32(0.5)
    c008 = np.float32(0.08)
    c02 = np.float32(0.2)
    c04 = np.float32(0.4)
    c06 = np.float32(0.6)
    c011 = np.float32(0.11)
    zero = np.float32(0.0)
    t_hot, t_strong, t_bright, t_white, t_cirrus, t_haze = th[0], th[1], th[2], th[3], th[4], th[5]
    # row slices indexed from 0, no branches (bitwise & and |): the pixel loop vectorises
    for r in range(m):
        blr, grr, rdr, nir_r, cir, swr, vr, o = blue[r], green[r], red[r], nir[r], cirrus[r], swir[r], valid[r], out[r]
        for c in range(n):
            bl = blr[c]
            gr = grr[c]
            rd = rdr[c]
            ni = nir_r[c]
            ci = cir[c]
            sw = swr[c]
            vis = (bl + gr) + rd
            vis = vis / f3
            dev = np.abs(bl - vis)
            dev = dev + np.abs(gr - vis)
            dev = dev + np.abs(rd - vis)
            white = (vis > zero) & (dev < t_white * vis)
            ndvi = (ni - rd) / (ni + rd)
            hot = bl - half * rd
            hot = hot - c008
            haze = (hot > t_hot) & (ndvi > c02) & ((ci > t_haze) | (not has_cirrus))
            cl = haze | (hot > t_strong) | ((vis > t_bright) & white & (ndvi < c04)) | ((ci > t_cirrus) & has_cirrus)
            ndsi = (gr - sw) / (gr + sw)
            snow = (ndsi > c06) & (ni > c011) & has_swir
            o[c] = cl & ~snow & vr[c]
    return out


@njit(cache=True, nogil=True)
def majority(mask: np.ndarray, valid: np.ndarray, r: int) -> np.ndarray:
    """(M, N) bool: ``valid`` and more than half of the ``(2r + 1)`` square around the pixel
    True in ``mask``, edges repeated (``mode="nearest"``); exact integer counts.
    ``tests/test_kernels.py`` holds the numpy formula it repeats."""
    m, n = mask.shape
    size = 2 * r + 1
    need = size * size
    col = np.empty(n + 2 * r, np.int32)  # column counts of the row's square, edges repeated
    acc = np.empty(n, np.int32)
    out = np.empty((m, n), np.bool_)
    for i in range(m):
        inner = col[r:r + n]
        for c in range(n):
            inner[c] = 0
        for k in range(-r, r + 1):
            src = mask[min(max(i + k, 0), m - 1)]
            for c in range(n):
                inner[c] += np.int32(src[c])
        for k in range(r):
            col[k] = col[r]
            col[r + n + k] = col[r + n - 1]
        for c in range(n):
            acc[c] = 0
        for k in range(size):
            sh = col[k:k + n]
            for c in range(n):
                acc[c] += sh[c]
        o, v = out[i], valid[i]
        for c in range(n):
            o[c] = (2 * acc[c] > need) & v[c]
    return out


@njit(cache=True, nogil=True)
def set_nan(data: np.ndarray, flags: np.ndarray) -> None:
    """``data[:, flags] = NaN`` in place."""
    nb, m, n = data.shape
    nan = np.float32(np.nan)
    for b in range(nb):
        for r in range(m):
            d, f = data[b, r], flags[r]
            for c in range(n):
                d[c] = nan if f[c] else d[c]


@njit(cache=True, nogil=True, error_model="numpy")
def box_mean3(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(M, N) float32: the mean of the valid pixels of each 3 × 3 neighbourhood (edges
    repeated), NaN where none is valid.  Each pixel's sum is taken in a fixed order (its
    three rows, then three columns), so it does not depend on where the window starts;
    ``tests/test_kernels.py`` holds the numpy formula it repeats."""
    m, n = x.shape
    out = np.empty((m, n), np.float32)
    # one row at a time: the column sums of its three rows, the edge columns repeated into a
    # one-pixel border, then the sums of three neighbouring columns (row slices indexed from 0)
    rows = np.empty(n + 2, np.float32)
    cnt = np.empty(n + 2, np.int32)
    zero = np.float32(0.0)
    nan = np.float32(np.nan)
    for r in range(m):
        x0, x1, x2 = x[max(r - 1, 0)], x[r], x[min(r + 1, m - 1)]
        v0, v1, v2 = valid[max(r - 1, 0)], valid[r], valid[min(r + 1, m - 1)]
        rs, cs = rows[1:n + 1], cnt[1:n + 1]
        for c in range(n):
            a0 = x0[c] if v0[c] else zero
            a1 = x1[c] if v1[c] else zero
            a2 = x2[c] if v2[c] else zero
            rs[c] = (a0 + a1) + a2
            cs[c] = np.int32(v0[c]) + np.int32(v1[c]) + np.int32(v2[c])
        rows[0], cnt[0] = rows[1], cnt[1]
        rows[n + 1], cnt[n + 1] = rows[n], cnt[n]
        left, mid, right = rows[0:n], rows[1:n + 1], rows[2:n + 2]
        cl, cm, cr = cnt[0:n], cnt[1:n + 1], cnt[2:n + 2]
        o = out[r]
        for c in range(n):
            sm = (left[c] + mid[c]) + right[c]
            k = cl[c] + cm[c] + cr[c]
            q = sm / np.float32(k)
            o[c] = q if k > 0 else nan
    return out


@njit(cache=True, nogil=True)
def _grow_cross(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by the 4-neighbour cross (outside the array: False), row by row on
    row slices indexed from 0 (slice expressions such as ``wet[1:, :] |= mask[:-1, :]``
    run forty times slower here)."""
    m, n = mask.shape
    out = np.empty((m, n), np.bool_)
    for r in range(m):
        row = mask[r]
        up = mask[max(r - 1, 0)]
        down = mask[min(r + 1, m - 1)]
        o = out[r]
        for c in range(n):
            o[c] = (row[c] | up[c]) | down[c]
        if n > 1:
            left, right = row[:n - 1], row[1:]
            o_right, o_left = out[r, 1:], out[r, :n - 1]
            for c in range(n - 1):
                o_right[c] = o_right[c] | left[c]
            for c in range(n - 1):
                o_left[c] = o_left[c] | right[c]
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def default_score(b: np.ndarray, a: np.ndarray, v: np.ndarray, sel: np.ndarray, gain: np.ndarray,
                  offset: np.ndarray, sigma: np.ndarray, nir: int, red: int, swir: int) -> np.ndarray:
    """(M, N) float32: :func:`campwatch.detect.methods._default_score` then ``window_score``'s NaN
    outside ``v``, in the float32 arithmetic of the numpy code (``gain``, ``offset``,
    ``sigma`` float32; ``swir`` -1 when the scene has no swir16)."""
    _, m, n = b.shape
    # one pass, row by row: the squared z-scores summed over the bands (band by band, as
    # the numpy code accumulates), then the vegetation index and water of the pixel; row
    # slices indexed from 0, selects and bitwise & and |, so the loops vectorise
    mag = np.empty((m, n), np.float32)
    veg = np.empty((m, n), np.float32)
    vok = np.empty((m, n), np.bool_)
    water = np.empty((m, n), np.bool_)
    eps = np.float32(1e-6)
    w8 = np.float32(0.08)
    w5 = np.float32(0.05)
    zero = np.float32(0.0)
    hs = 1 if swir >= 0 else 0
    ks = swir if swir >= 0 else 0
    for r in range(m):
        mrow = mag[r]
        for c in range(n):
            mrow[c] = zero
        for i in range(sel.shape[0]):
            k = sel[i]
            g, o, sg = gain[i], offset[i], sigma[i]
            brow, arow = b[k, r], a[k, r]
            for c in range(n):
                z = brow[c] * g
                z = z + o
                z = arow[c] - z
                z = z / sg
                mrow[c] = mrow[c] + z * z
        bn_r, an_r, bs_r, as_r, br_r, ar_r = b[nir, r], a[nir, r], b[ks, r], a[ks, r], b[red, r], a[red, r]
        vrow, vg, vk, wt = v[r], veg[r], vok[r], water[r]
        for c in range(n):
            mrow[c] = np.sqrt(mrow[c])
            bn = bn_r[c]
            an = an_r[c]
            bs = bs_r[c]
            as_ = as_r[c]
            wet_swir = ((bs < w5) & (bn < w8)) | ((as_ < w5) & (an < w8))
            wet_nir = (bn < w8) & (an < w8)
            wt[c] = (wet_swir & (hs == 1)) | (wet_nir & (hs == 0))
            br = br_r[c]
            ar = ar_r[c]
            nb_ = (bn - br) / ((bn + br) + eps)
            na_ = (an - ar) / ((an + ar) + eps)
            # np.fmax: the other value where one is NaN
            gv = max(nb_, na_)
            gv = na_ if np.isnan(nb_) else gv
            gv = nb_ if np.isnan(na_) else gv
            vg[c] = gv
            vk[c] = vrow[c] & np.isfinite(gv)
    s = box_mean3(mag, v)
    vm = box_mean3(veg, vok)
    wet = _grow_cross(water)
    c075 = np.float32(0.75)
    c03 = np.float32(0.3)
    one = np.float32(1.0)
    nan = np.float32(np.nan)
    for r in range(m):
        srow, vmr, wr, vr = s[r], vm[r], wet[r], v[r]
        for c in range(n):
            gv = vmr[c]
            gv = zero if np.isnan(gv) else gv
            gv = (c075 - gv) / c03
            gv = min(max(gv, zero), one)
            x = srow[c] * gv
            x = zero if wr[c] else x
            srow[c] = x if vr[c] else nan
    return s


@njit(cache=True, nogil=True)
def dn_to_reflectance(dn: np.ndarray, offset: float, scale: float, nodata: np.ndarray, has_nodata: np.ndarray,
                      zero_fill: np.ndarray, all_zero: np.ndarray, saturation: float, has_saturation: bool,
                      data: np.ndarray, valid: np.ndarray, r0: int, c0: int) -> None:
    """:func:`campwatch.io.read_source`'s conversion of one (B, M, N) multi-band read, in one
    pass, into rows ``r0:r0+M`` and columns ``c0:c0+N`` of ``data`` and ``valid``:
    ``float32((dn + offset) * scale)`` (float64 arithmetic, the values of its look-up
    table), and valid False where any band is nodata (``dn == nodata[b]``), zero fill
    (``zero_fill[b]`` and 0), saturated (``dn >= saturation``), or where every band
    flagged ``all_zero`` is 0; NaN in ``data`` where not valid.

    ``data`` and ``valid`` are whole C-contiguous arrays with the offset passed apart: a
    kernel writing through a strided view is not vectorised (about three times slower)."""
    nb, m, n = dn.shape
    # row by row: the flags of a row over every band, then its values (contiguous loops that
    # vectorise, on data that stays in cache)
    bad = np.empty(n, np.bool_)
    nonzero = np.empty(n, np.bool_)
    any_all_zero = False
    for b in range(nb):
        any_all_zero = any_all_zero or all_zero[b]
    nan = np.float32(np.nan)
    for r in range(m):
        for c in range(n):
            bad[c] = False
            nonzero[c] = not any_all_zero
        for b in range(nb):
            nd = nodata[b]
            chk_nd = has_nodata[b]
            chk_zero = zero_fill[b]
            chk_all = all_zero[b]
            for c in range(n):
                v = np.float64(dn[b, r, c])
                bad[c] = bad[c] | (chk_nd & (v == nd)) | (chk_zero & (v == 0.0)) | (has_saturation & (not (v < saturation)))
                nonzero[c] = nonzero[c] | (chk_all & (v != 0.0))
        # row slices, indexed from 0: an offset index (c0 + c) is not vectorised either
        vrow = valid[r0 + r, c0:c0 + n]
        for c in range(n):
            vrow[c] = (not bad[c]) & nonzero[c]
        for b in range(nb):
            drow = data[b, r0 + r, c0:c0 + n]
            for c in range(n):
                x = np.float32((np.float64(dn[b, r, c]) + offset) * scale)
                drow[c] = x if vrow[c] else nan


@njit(cache=True, nogil=True)
def histogram_add(values: np.ndarray, edges: np.ndarray, counts: np.ndarray) -> None:
    """Add the finite ``values`` (as float64, clipped into ``[edges[0], edges[-1])``) to
    ``counts``: bin ``i`` holds ``edges[i] <= v < edges[i + 1]``, the bins of
    ``np.histogram(v, bins=edges)`` (a first guess from the bin width, corrected against
    the edges themselves)."""
    nbins = edges.shape[0] - 1
    lo = edges[0]
    top = np.nextafter(edges[nbins], -np.inf)
    scale = nbins / (edges[nbins] - lo)
    flat = values.ravel()
    for p in range(flat.shape[0]):
        v = np.float64(flat[p])
        if not np.isfinite(v):
            continue
        v = min(max(v, lo), top)
        i = int((v - lo) * scale)
        i = min(max(i, 0), nbins - 1)
        while i > 0 and v < edges[i]:
            i -= 1
        while i < nbins - 1 and v >= edges[i + 1]:
            i += 1
        counts[i] += 1


@njit(cache=True, nogil=True, inline="always")
def _is(lab: np.ndarray, r: int, c: int, value: int) -> bool:
    return 0 <= r < lab.shape[0] and 0 <= c < lab.shape[1] and lab[r, c] == value


@njit(cache=True, nogil=True)
def trace_rings(lab: np.ndarray, eight: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """The boundary rings of every labelled region of ``lab`` (int32, 0 = none), as GDAL's
    polygonizer traces them: along pixel edges, region on the left (y down), corners only,
    each ring starting at its top-left corner.  Where two pixels of a label touch only at a
    corner, the ring passes through it (``eight``: one region, as 8-connectivity) or turns
    away (4-connectivity).

    Returns ``x``, ``y`` (int32 corner coordinates, column and row of the pixel lattice;
    each ring closed), ``starts`` (ring ``k`` is ``starts[k]:starts[k + 1]``), ``label``
    of each ring, and twice its signed area (negative: an outer ring; positive: a hole)."""
    m, n = lab.shape
    sides = np.zeros((m, n), np.uint8)  # 1 left, 2 bottom, 4 right, 8 top: boundary, not yet traced
    total = 0
    for r in range(m):
        for c in range(n):
            v = lab[r, c]
            if v <= 0:
                continue
            b = 0
            if c == 0 or lab[r, c - 1] != v:
                b |= 1
            if r == m - 1 or lab[r + 1, c] != v:
                b |= 2
            if c == n - 1 or lab[r, c + 1] != v:
                b |= 4
            if r == 0 or lab[r - 1, c] != v:
                b |= 8
            sides[r, c] = b
            total += (b & 1) + ((b >> 1) & 1) + ((b >> 2) & 1) + ((b >> 3) & 1)
    cap = total + total // 4 + 8
    xs = np.empty(cap, np.int32)
    ys = np.empty(cap, np.int32)
    starts = np.empty(total // 4 + 2, np.int64)
    labels = np.empty(total // 4 + 1, np.int32)
    area2 = np.empty(total // 4 + 1, np.int64)
    cx = np.empty(total + 4, np.int32)  # corners of the ring being traced
    cy = np.empty(total + 4, np.int32)
    dx = (1, 0, -1, 0)  # directions: 0 east, 1 south, 2 west, 3 north
    dy = (0, 1, 0, -1)
    nv = 0
    nr = 0
    starts[0] = 0
    for r in range(m):
        for c in range(n):
            while sides[r, c]:
                v = lab[r, c]
                b = sides[r, c]
                # the start edge: the first untraced side (left, bottom, right, top)
                if b & 1:
                    x0, y0, d0 = c, r, 1
                elif b & 2:
                    x0, y0, d0 = c, r + 1, 0
                elif b & 4:
                    x0, y0, d0 = c + 1, r + 1, 3
                else:
                    x0, y0, d0 = c + 1, r, 2
                x, y, d = x0, y0, d0
                k = 0
                while True:
                    # mark the edge (x, y, d) traced, then move along it
                    if d == 1:
                        sides[y, x] &= ~np.uint8(1)
                    elif d == 0:
                        sides[y - 1, x] &= ~np.uint8(2)
                    elif d == 3:
                        sides[y - 1, x - 1] &= ~np.uint8(4)
                    else:
                        sides[y, x - 1] &= ~np.uint8(8)
                    x += dx[d]
                    y += dy[d]
                    nw = _is(lab, y - 1, x - 1, v)
                    ne = _is(lab, y - 1, x, v)
                    sw = _is(lab, y, x - 1, v)
                    se = _is(lab, y, x, v)
                    south = se and not sw
                    east = ne and not se
                    north = nw and not ne
                    west = sw and not nw
                    turn = (d + 1) % 4 if eight else (d + 3) % 4
                    if south + east + north + west > 1:  # a corner-touch: turn as the connectivity says
                        nd = turn
                    elif south:
                        nd = 1
                    elif east:
                        nd = 0
                    elif north:
                        nd = 3
                    else:
                        nd = 2
                    if nd != d:
                        cx[k] = x
                        cy[k] = y
                        k += 1
                    if x == x0 and y == y0 and nd == d0:
                        break
                    d = nd
                # rotate the corners to start at the top-left one, close the ring
                best = 0
                for i in range(1, k):
                    if cy[i] < cy[best] or (cy[i] == cy[best] and cx[i] < cx[best]):
                        best = i
                a2 = 0
                for i in range(k):
                    j = (best + i) % k
                    xs[nv + i] = cx[j]
                    ys[nv + i] = cy[j]
                    j2 = (best + i + 1) % k
                    a2 += np.int64(cx[j]) * cy[j2] - np.int64(cx[j2]) * cy[j]
                xs[nv + k] = cx[best]
                ys[nv + k] = cy[best]
                nv += k + 1
                labels[nr] = v
                area2[nr] = a2
                nr += 1
                starts[nr] = nv
    return xs[:nv], ys[:nv], starts[:nr + 1], labels[:nr], area2[:nr]


@njit(cache=True, nogil=True)
def label_sums(labels: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label ``0..n-1`` of a 2-D ``labels`` array: pixel count, and the float64 sum and count
    of the finite ``values`` (same shape) — the sums of ``np.bincount`` over the labelled
    pixels in raster order, without gathering them first.  Label 0 is not counted."""
    counts = np.zeros(n, np.int64)
    sums = np.zeros(n)
    finite = np.zeros(n, np.int64)
    m, k = labels.shape
    for r in range(m):
        for c in range(k):
            lab = labels[r, c]
            if lab <= 0:
                continue
            counts[lab] += 1
            v = np.float64(values[r, c])
            if np.isfinite(v):
                sums[lab] += v
                finite[lab] += 1
    return counts, sums, finite


@njit(cache=True, nogil=True)
def label_row_areas(labels: np.ndarray, row_areas: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The labels of the labelled pixels of ``labels`` in raster order, and the area of each
    label ``1..n`` (index 0 unused) summed from ``row_areas[r]`` in that order (the sums of
    ``np.bincount(vals, weights=...)``)."""
    m, k = labels.shape
    total = 0
    for r in range(m):
        for c in range(k):
            if labels[r, c] > 0:
                total += 1
    vals = np.empty(total, labels.dtype)
    area = np.zeros(n + 1)
    j = 0
    for r in range(m):
        a = row_areas[r]
        for c in range(k):
            lab = labels[r, c]
            if lab > 0:
                vals[j] = lab
                area[lab] += a
                j += 1
    return vals, area
