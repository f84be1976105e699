"""Co-registration: estimate and correct the sub-pixel shift between two dates.

Pure module: scenes and arrays in, scenes and :class:`Shift` records out.

**Sign convention.** ``dx_px`` and ``dy_px`` say how far the second scene's content
sits from the first's, in pixels of the first scene's grid: ``dx`` positive east
(towards larger column numbers), ``dy`` positive south (towards larger row numbers).
A road at column 100 in ``before`` and column 102.3 in ``after`` gives ``dx_px = +2.3``.

**Method.** Cross-correlation (``skimage.registration.phase_cross_correlation`` with
``normalization=None`` and 1000x upsampling) of one band, centred on its mean over the
pixels valid on both dates (invalid pixels 0) and tapered by a Hann window, so that shared
nodata borders and image edges cannot pin the estimate to zero.  Measured on the 35
known-shift cases of ``benchmarks/clouds_coreg.py`` this is 4x more precise than phase
correlation of gradient magnitudes, which is still what the reliability below measures
(edges are what must match when the radiometry changes between dates).

**Reliability** is ``1 - second / first``: the height of the strongest phase
correlation peak against the strongest peak more than 2 pixels away from it.
A unique, sharp match gives values near 1; noise, cloud or a featureless scene gives
values near 0.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import ransac
from skimage.registration import phase_cross_correlation
from skimage.transform import AffineTransform

from campwatch.errors import GridMismatchError, MisregistrationWarning, MissingBandsError
from campwatch.scene import Scene

__all__ = ["DEFAULT_MIN_RELIABILITY", "Shift", "apply_shift", "coregister", "coregister_local", "estimate_shift",
           "fit_local", "local_shifts", "PREFERRED_BANDS", "pick_band"]

#: Below this reliability a shift estimate is not trusted (and not applied).
DEFAULT_MIN_RELIABILITY = 0.2

#: Bands tried, in order, when ``band`` is not given (sharp 10 m bands first).
PREFERRED_BANDS = ("red", "nir", "green", "blue", "swir16")


@dataclass(frozen=True)
class Shift:
    """A shift estimate between two dates, and what was done with it.

    Attributes
    ----------
    dx_px, dy_px : float
        How far the second scene's content sits from the first's, in pixels of the
        first scene's grid; ``dx`` positive east, ``dy`` positive south.
    reliability : float
        0..1; see the module docstring.
    applied : bool
        Whether the second scene was resampled to remove the shift.
    residual_px : float or None
        Shift length re-estimated after the correction (None when not applied).
    reason : str
        Why the shift was, or was not, applied.
    flagged : bool
        The estimate was not trusted (unreliable, too large to correct, or no local model
        fits): a :class:`~campwatch.errors.MisregistrationWarning` was raised with ``reason``,
        and the pair is low confidence (:func:`campwatch.compare.pair_flags`).
    band : str or None
        The band the estimate was made on.
    model, windows, inliers, matrix
        Local co-registration (:func:`coregister_local`) only: the model fitted
        (``"translation"``, ``"affine"`` or None when none fits), the windows estimated,
        those the model explains, and the affine matrix's first two rows (pixels).
    """

    dx_px: float
    dy_px: float
    reliability: float
    applied: bool = False
    residual_px: float | None = None
    reason: str = ""
    flagged: bool = False
    band: str | None = None
    model: str | None = None
    windows: int | None = None
    inliers: int | None = None
    matrix: tuple[tuple[float, ...], ...] | None = None

    @property
    def magnitude_px(self) -> float:
        """Length of the shift in pixels."""
        return math.hypot(self.dx_px, self.dy_px)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (rounded to 1/1000 px).

        Examples
        --------
        >>> Shift(1.23456, -0.5, 0.9).to_dict()["dx_px"]
        1.235
        """
        return {
            "dx_px": round(self.dx_px, 3),
            "dy_px": round(self.dy_px, 3),
            "magnitude_px": round(self.magnitude_px, 3),
            "reliability": round(self.reliability, 3),
            "applied": self.applied,
            "residual_px": None if self.residual_px is None else round(self.residual_px, 3),
            "reason": self.reason,
            "flagged": self.flagged,
            "band": self.band,
            **({} if self.model is None and self.windows is None else {
                "model": self.model, "windows": self.windows, "inliers": self.inliers,
                "matrix": None if self.matrix is None else [list(r) for r in self.matrix]}),
        }



#: Shifts larger than this (pixels) are reported but not corrected by default.
MAX_SHIFT_PX = 10.0

@functools.lru_cache(maxsize=8)
def _taper(shape: tuple[int, int]) -> np.ndarray:
    """The radial 2-D Hann window of ``shape``, the numbers of ``skimage.filters.window("hann",
    shape)`` (``tests/test_coregister.py``) without importing ``scipy.signal`` (half a second
    of every command's start): a symmetric 1-D Hann window sampled at each pixel's distance
    from the centre; computed once per shape."""
    m = np.int64(max(shape))  # a numpy integer, as in skimage: the axis ratios are float64
    fac = np.linspace(-np.pi, np.pi, int(m))
    w = np.zeros(int(m))
    for k, a in enumerate((0.5, 0.5)):  # scipy.signal's general cosine window
        w += a * np.cos(k * fac)
    axes = [np.arange(s, dtype=np.float32) * (m / np.int64(s)) for s in shape]
    center = (m / 2) - 0.5
    dist: Any = 0
    for g in np.meshgrid(*axes, sparse=True, indexing="ij"):
        g -= center
        dist = dist + g * g
    coords = np.zeros((2, *np.shape(dist)), dtype=np.float32)
    coords[0] = np.sqrt(dist) + center
    out = ndimage.map_coordinates(w.reshape(-1, 1), coords, order=1, mode="grid-constant", cval=0.0,
                                  prefilter=False)
    out.setflags(write=False)
    return out


def _gradient(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Gradient magnitude of ``image`` with invalid pixels (and a 2 px rim) set to 0."""
    img = np.asarray(image, dtype=np.float64)
    ok = valid & np.isfinite(img)
    if not ok.any():
        return np.zeros(img.shape)
    filled = np.where(ok, img, float(np.median(img[ok])))
    g = np.hypot(ndimage.sobel(filled, axis=0), ndimage.sobel(filled, axis=1))
    keep = ndimage.binary_erosion(ok, structure=np.ones((3, 3), bool), iterations=2, border_value=1)
    g = np.where(keep, g, 0.0)
    # centre on the mean of the kept pixels so the taper does not create a DC artefact
    if keep.any():
        g = np.where(keep, g - g[keep].mean(), 0.0)
    return g


def _peak_reliability(ref: np.ndarray, mov: np.ndarray) -> float:
    """``1 - second/first`` phase-correlation peak height (peaks > 2 px apart)."""
    f = np.fft.fft2(ref) * np.conj(np.fft.fft2(mov))
    mag = np.abs(f)
    f = np.where(mag > 1e-12 * max(float(mag.max()), 1e-300), f / np.maximum(mag, 1e-300), 0)
    corr = np.fft.fftshift(np.abs(np.fft.ifft2(f)))
    r, c = np.unravel_index(int(np.argmax(corr)), corr.shape)
    first = float(corr[r, c])
    if first <= 0:
        return 0.0
    masked = corr.copy()
    masked[max(0, r - 2):r + 3, max(0, c - 2):c + 3] = 0
    second = float(masked.max())
    return float(np.clip(1.0 - second / first, 0.0, 1.0))


def _centred(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``image`` minus its mean over ``valid``, 0 elsewhere (float64): what the cross-correlation sees."""
    img = np.asarray(image, dtype=np.float64)
    return np.where(valid, img - float(img[valid].mean()), 0.0)


def estimate_shift(reference: np.ndarray, moving: np.ndarray, *, valid: np.ndarray | None = None,
                   upsample_factor: int = 1000, reliability: bool = True) -> Shift:
    """Estimate the sub-pixel shift of ``moving`` relative to ``reference``.

    Parameters
    ----------
    reference, moving : (M, N) ndarray
        One band of each date on the same grid; NaN where invalid.
    valid : (M, N) bool ndarray, optional
        Pixels usable in both images (default: where both are finite).
    upsample_factor : int
        Sub-pixel precision is ``1 / upsample_factor`` px.
    reliability : bool
        Measure the reliability (a second phase correlation); False leaves it NaN (the
        residual check after a correction only needs the shift).

    Returns
    -------
    Shift
        ``dx_px``/``dy_px`` (content of ``moving`` relative to ``reference``; positive
        east/south) and ``reliability``; ``applied`` is False.

    Examples
    --------
    >>> from scipy import ndimage
    >>> from campwatch.io import read_scene
    >>> red = read_scene("data/sample_tiles/rennes/imgs_1", bands=["red"]).band("red")
    >>> moved = ndimage.shift(red, (-1.5, 2.0), order=3, mode="nearest")  # 2 px east, 1.5 px north
    >>> s = estimate_shift(red, moved)
    >>> round(s.dx_px, 1), round(s.dy_px, 1), s.reliability > 0.5
    (2.0, -1.5, True)
    """
    ref = np.asarray(reference)
    mov = np.asarray(moving)
    if ref.shape != mov.shape or ref.ndim != 2:
        raise GridMismatchError(f"estimate_shift needs two (M, N) arrays of one shape, got {ref.shape} and {mov.shape}")
    ok = np.isfinite(ref) & np.isfinite(mov)
    if valid is not None:
        ok &= valid
    if ok.sum() < 64:
        return Shift(0.0, 0.0, 0.0, reason=f"only {int(ok.sum())} valid pixels in common; nothing to correlate")
    taper = _taper(ref.shape)
    g_ref = _gradient(ref, ok) * taper
    g_mov = _gradient(mov, ok) * taper
    if not (np.any(g_ref) and np.any(g_mov)):
        return Shift(0.0, 0.0, 0.0, reason="no texture (flat images); nothing to correlate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # the position: plain (not phase-normalised) cross-correlation of the Hann-tapered band,
        # upsampled 1000x; on the 35 OSCD cases of benchmarks/clouds_coreg.py its error is p95
        # 0.049 px, max 0.050 px, where phase correlation of the gradients gave p95 0.132, max 0.198
        shift, _, _ = phase_cross_correlation(_centred(ref, ok) * taper, _centred(mov, ok) * taper,
                                              upsample_factor=upsample_factor, normalization=None)
    # skimage returns the shift that registers moving onto reference: the opposite of ours.
    dy, dx = -float(shift[0]), -float(shift[1])
    return Shift(dx + 0.0, dy + 0.0, _peak_reliability(g_ref, g_mov) if reliability else float("nan"))


def apply_shift(scene: Scene, dx_px: float, dy_px: float, *, origin: tuple[int, int] = (0, 0)) -> Scene:
    """Resample ``scene`` so that content at ``(+dx, +dy)`` moves back by that much.

    Bilinear interpolation of each band; a pixel is valid only when all four
    neighbours it is interpolated from are valid.  Pixels shifted in from outside the
    grid are invalid.  The input scene is not modified.  The numbers are those of
    ``scipy.ndimage.shift`` (order 1, float64); float32 scenes (every scene campwatch
    reads) take a compiled path with the same arithmetic.

    ``origin``: the (row, col) of the scene's first pixel in a larger grid it was cut
    from (float32 scenes).  Each pixel's sample position is then computed as on that
    grid (``index + shift`` rounds differently at different indices), so a window with
    enough margin gives, bit for bit, the pixels of shifting the whole grid.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> s = read_scene("data/sample_tiles/rennes/imgs_1", bands=["red"])
    >>> moved = apply_shift(s, 1.0, 0.0)
    >>> bool(np.allclose(moved.band("red")[:, :-1], s.band("red")[:, 1:], equal_nan=True))
    True
    """
    if scene.data.dtype == np.float32:
        return _shift_float32(scene, dx_px, dy_px, origin)
    if origin != (0, 0):
        raise ValueError(f"apply_shift with an origin needs float32 data, got {scene.data.dtype}")
    return _shift_ndimage(scene, dx_px, dy_px)


def _shift_ndimage(scene: Scene, dx_px: float, dy_px: float) -> Scene:
    """:func:`apply_shift` by ``scipy.ndimage.shift`` (order 1, float64), band by band: the
    reference the float32 path repeats, and the path for other dtypes."""
    offset = (dy_px, dx_px)  # output(r, c) = input(r + dy, c + dx)
    valid_f = ndimage.shift(scene.valid.astype(np.float64), [-o for o in offset], order=1, mode="constant", cval=0.0)
    new_valid = valid_f > 1 - 1e-6
    data = np.empty_like(scene.data)
    for i in range(scene.data.shape[0]):
        band = np.where(scene.valid, scene.data[i], 0.0).astype(np.float64)
        data[i] = ndimage.shift(band, [-o for o in offset], order=1, mode="constant", cval=0.0)
    data[:, ~new_valid] = np.nan
    return dataclasses.replace(scene, data=data, valid=new_valid)


def _axis_weights(n: int, o: float, origin: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Linear-spline taps along one axis of length ``n`` sampled at ``k + o``, in the
    arithmetic of ``scipy.ndimage``'s zoom/shift (order 1): first tap, its two weights,
    and whether the sample lies inside ``[0, n - 1]`` (``mode="constant"``).  With
    ``origin``, the axis starts at index ``origin`` of a longer one, and ``k + o`` is
    computed there (the taps returned are still this axis's)."""
    cc = np.arange(origin, origin + n, dtype=np.float64) + o
    start = np.floor(cc)
    x = cc - start
    w0 = 1.0 - x
    w1 = 1.0 - w0
    first = start.astype(np.int64) - origin
    inside = (first >= 0) & ((first < n - 1) | ((first == n - 1) & (x == 0)))  # 0 <= k + o <= n - 1
    return first, w0, w1, inside


def _bilinear_into(out: np.ndarray, src: np.ndarray, rows: tuple[np.ndarray, ...], cols: tuple[np.ndarray, ...],
                   pad: np.ndarray, k: int, block: int = 32) -> None:
    """``out[...] = ndimage.shift(src.astype(float64), (-dy, -dx), order=1, mode="constant")``
    bit for bit (``tests/test_engine.py``), in row blocks that stay in cache; the float64
    path of the valid mask when :func:`_shifted_valid` cannot decide."""
    m, n = src.shape
    ri, rw0, rw1, rin = rows
    ci, cw0, cw1, cin = cols
    pad[...] = 0.0
    pad[k:k + m, k:k + n] = src
    c0 = ci + k
    if np.array_equal(c0, np.arange(n) + c0[0]):
        s0: Any = slice(int(c0[0]), int(c0[0]) + n)
        s1: Any = slice(int(c0[0]) + 1, int(c0[0]) + 1 + n)
    else:  # rounding put a tap off the regular lattice: gather
        s0, s1 = c0, c0 + 1
    for r in range(0, m, block):
        e = min(r + block, m)
        rr = ri[r:e] + k
        p = pad[rr] * rw0[r:e, None]
        q = pad[rr + 1] * rw1[r:e, None]
        t = p[:, s0] * cw0
        t += p[:, s1] * cw1
        t += q[:, s0] * cw0
        t += q[:, s1] * cw1
        out[r:e] = t
    out[~rin] = 0
    out[:, ~cin] = 0


def _shift_float32(scene: Scene, dx_px: float, dy_px: float, origin: tuple[int, int] = (0, 0)) -> Scene:
    """:func:`_shift_ndimage` on float32 data with the same float64 arithmetic, bit for bit
    (``tests/test_engine.py``), at a fraction of its cost: no generic spline machinery, one
    compiled pass per band (:func:`campwatch._kernels.bilinear_bands`)."""
    m, n = scene.grid.shape
    rows, cols = _axis_weights(m, dy_px, origin[0]), _axis_weights(n, dx_px, origin[1])
    k = 2 + math.ceil(max(abs(dx_px), abs(dy_px)))
    new_valid = _shifted_valid(scene.valid, rows, cols, k)
    if new_valid is None:
        pad = np.empty((m + 2 * k, n + 2 * k), np.float64)
        tmp = np.empty((m, n), np.float64)
        _bilinear_into(tmp, scene.valid.view(np.uint8), rows, cols, pad, k)
        new_valid = tmp > 1 - 1e-6
    from campwatch._kernels import bilinear_bands

    data = bilinear_bands(scene.data, scene.valid, new_valid, rows[0], rows[1], rows[2], cols[0], cols[1], cols[2])
    return dataclasses.replace(scene, data=data, valid=new_valid)


def _shifted_valid(valid: np.ndarray, rows: tuple[np.ndarray, ...], cols: tuple[np.ndarray, ...],
                   k: int) -> np.ndarray | None:
    """``ndimage.shift(valid, ...) > 1 - 1e-6`` as a logical AND of the taps that carry weight,
    when that is exact: along each axis either every second tap weighs exactly 0 (a whole-pixel
    shift) or every tap weighs at least 0.01 (so a missing tap costs at least 1e-4, and a full
    set sums to 1 within a few ulps).  None when neither holds (the float path decides)."""
    m, n = valid.shape
    taps: list[tuple[int, tuple[int, ...]]] = []
    for idx, w0, w1, sel in (rows, cols):
        if not sel.any():
            return np.zeros((m, n), bool)
        start = idx[sel][0] - np.flatnonzero(sel)[0]
        if not np.array_equal(idx[sel], np.flatnonzero(sel) + start):
            return None
        if np.all(w1[sel] == 0) and np.all(w0[sel] == 1):
            taps.append((int(start), (0,)))
        elif min(float(w0[sel].min()), float(w1[sel].min())) >= 0.01:
            taps.append((int(start), (0, 1)))
        else:
            return None
    pv = np.zeros((m + 2 * k, n + 2 * k), bool)
    pv[k:k + m, k:k + n] = valid
    (rs, rt), (cs, ct) = taps
    out = np.ones((m, n), bool)
    for dr in rt:
        for dc in ct:
            out &= pv[k + rs + dr:k + rs + dr + m, k + cs + dc:k + cs + dc + n]
    out &= rows[3][:, None]
    out &= cols[3][None, :]
    return out


def pick_band(before: Scene, after: Scene, band: str | None) -> str:
    """The band a shift is estimated on: ``band`` if given (both scenes must have it), else the first
    of :data:`PREFERRED_BANDS` both have, else the first band they share."""
    if band is not None:
        before.require([band], method="coregister")
        after.require([band], method="coregister")
        return band
    for b in PREFERRED_BANDS:
        if before.has(b) and after.has(b):
            return b
    common = [b for b in before.bands if b in after.bands]
    if not common:
        raise MissingBandsError(f"coregister needs a band both dates have; before has {', '.join(before.bands)}, "
                                f"after has {', '.join(after.bands)}")
    return common[0]


def coregister(before: Scene, after: Scene, *, max_shift_px: float = MAX_SHIFT_PX, min_shift_px: float = 0.1,
               min_reliability: float = DEFAULT_MIN_RELIABILITY, band: str | None = None) -> tuple[Scene, Shift]:
    """Estimate the shift of ``after`` against ``before`` and correct it when it is safe to.

    Parameters
    ----------
    before, after : Scene
        Two dates on the same grid (read ``after`` with ``grid=before.grid``).
    max_shift_px : float
        Larger shifts are not corrected: a :class:`MisregistrationWarning` is raised
        and ``after`` is returned unchanged.
    min_shift_px : float
        Smaller shifts are left alone (resampling would blur more than it fixes).
    min_reliability : float
        Estimates below this reliability are not applied (warning as above).
    band : str, optional
        The band to correlate; by default red, else nir, green, blue, swir16.

    Returns
    -------
    after : Scene
        Resampled onto ``before``'s pixels when the shift was applied, else ``after``
        itself.  ``meta["coregistration"]`` holds ``Shift.to_dict()``.
    shift : Shift
        The estimate, whether it was applied, the residual after correction, and why.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> a = read_scene("data/sample_tiles/rennes/imgs_1", bands=["red", "nir"])
    >>> b = read_scene("data/sample_tiles/rennes/imgs_2", grid=a.grid, bands=["red", "nir"])
    >>> _, shift = coregister(a, b)
    >>> shift.magnitude_px < 1.0, shift.reliability > 0.2
    (True, True)
    """
    if not before.grid.same_as(after.grid):
        raise GridMismatchError(f"coregister needs both dates on one grid; before is {before.grid}, after is "
                                f"{after.grid}; read the second date with read_scene(..., grid=before.grid)")
    name = pick_band(before, after, band)
    est = estimate_shift(before.band(name), after.band(name), valid=before.valid & after.valid)
    mag = est.magnitude_px
    where = f"{after.label} vs {before.label}"
    if est.reliability < min_reliability:
        reason = (f"{where}: shift estimate unreliable (reliability {est.reliability:.2f} < {min_reliability:.2f}, "
                  f"dx={est.dx_px:+.2f}, dy={est.dy_px:+.2f} px); not corrected. Check for cloud or a featureless AOI")
        warnings.warn(reason, MisregistrationWarning, stacklevel=2)
        shift = dataclasses.replace(est, reason=reason, flagged=True, band=name)
        return _tag(after, shift), shift
    if mag > max_shift_px:
        reason = (f"{where}: {mag:.1f} px off (dx={est.dx_px:+.2f}, dy={est.dy_px:+.2f}), more than the "
                  f"{max_shift_px:g} px that is corrected; not corrected. Check the scenes cover the same place "
                  f"or raise max_shift_px")
        warnings.warn(reason, MisregistrationWarning, stacklevel=2)
        shift = dataclasses.replace(est, reason=reason, flagged=True, band=name)
        return _tag(after, shift), shift
    if mag < min_shift_px:
        shift = dataclasses.replace(est, residual_px=mag, band=name,
                                    reason=f"shift {mag:.3f} px below {min_shift_px:g} px; left as is")
        return _tag(after, shift), shift
    moved = apply_shift(after, est.dx_px, est.dy_px)
    check = estimate_shift(before.band(name), moved.band(name), valid=before.valid & moved.valid, reliability=False)
    shift = dataclasses.replace(est, applied=True, residual_px=check.magnitude_px, band=name,
                                reason=f"corrected {mag:.2f} px by bilinear resampling")
    return _tag(moved, shift), shift


def _tag(scene: Scene, shift: Shift) -> Scene:
    return dataclasses.replace(scene, meta={**scene.meta, "coregistration": shift.to_dict()})


# ---------------------------------------------------------------------------------------------
# Local co-registration (VHR): a grid of windows, a robust transform fitted by RANSAC
# ---------------------------------------------------------------------------------------------

#: Side of the windows of :func:`local_shifts` (pixels); smaller images use half their short side.
LOCAL_WINDOW_PX = 256

#: A window's shift is an inlier of a model when it lies within this many pixels of it.
LOCAL_INLIER_PX = 1.0


def local_shifts(reference: np.ndarray, moving: np.ndarray, *, valid: np.ndarray | None = None,
                 window: int | None = None, min_valid: float = 0.5) -> np.ndarray:
    """The shift of ``moving`` against ``reference`` in each window of a half-overlapping grid.

    Returns an ``(n, 5)`` float array, one row per window with at least ``min_valid`` of its
    pixels valid and some texture: the window centre ``x`` (column) and ``y`` (row) in
    pixels, the shift ``dx_px``, ``dy_px`` (:func:`estimate_shift`'s convention) and the
    window's reliability.  ``window`` defaults to :data:`LOCAL_WINDOW_PX`, or half the
    image's short side when that is smaller.

    Examples
    --------
    >>> from scipy import ndimage
    >>> from campwatch.io import read_scene
    >>> red = read_scene("data/sample_tiles/rennes/imgs_1", bands=["red"]).band("red")
    >>> rows = local_shifts(red, ndimage.shift(red, (0.0, 2.0), order=3, mode="nearest"))
    >>> len(rows) >= 9, bool(abs(np.median(rows[:, 2]) - 2.0) < 0.1)
    (True, True)
    """
    ref = np.asarray(reference)
    mov = np.asarray(moving)
    ok = np.isfinite(ref) & np.isfinite(mov)
    if valid is not None:
        ok &= valid
    h, w = ref.shape
    win = int(window or min(LOCAL_WINDOW_PX, min(h, w) // 2))
    if win < 16:
        return np.empty((0, 5))
    step = max(win // 2, 1)
    rows = []
    for r in range(0, h - win + 1, step):
        for c in range(0, w - win + 1, step):
            sl = (slice(r, r + win), slice(c, c + win))
            if ok[sl].mean() < min_valid:
                continue
            s = estimate_shift(ref[sl], mov[sl], valid=ok[sl], upsample_factor=100)
            if s.reason:  # nothing to correlate in this window
                continue
            rows.append((c + (win - 1) / 2, r + (win - 1) / 2, s.dx_px, s.dy_px, s.reliability))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


class _Translation:
    """A pure translation as a RANSAC model (``skimage.measure.ransac``): ``dst = src + t``."""

    def __init__(self, t: np.ndarray | None = None) -> None:
        self.t = np.zeros(2) if t is None else np.asarray(t, dtype=np.float64)

    @classmethod
    def from_estimate(cls, src: np.ndarray, dst: np.ndarray) -> _Translation:
        return cls(np.median(dst - src, axis=0))

    def estimate(self, src: np.ndarray, dst: np.ndarray) -> bool:  # skimage < 0.26
        self.t = np.median(dst - src, axis=0)
        return True

    def __bool__(self) -> bool:
        return bool(np.all(np.isfinite(self.t)))

    def residuals(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        return np.asarray(np.hypot(*(dst - src - self.t).T))

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) + self.t


def fit_local(rows: np.ndarray, *, inlier_px: float = LOCAL_INLIER_PX,
              min_inliers: int = 5) -> tuple[str, Any, np.ndarray] | None:
    """Fit a translation, then an affine transform, to :func:`local_shifts` rows by RANSAC.

    The affine model is kept only when it explains at least 3 more windows (and 10% more)
    than the translation: it has six parameters against two, and more freedom always fits
    a little better.  Returns ``(model name, model, inlier mask)``, or None when no model
    has ``min_inliers`` windows and at least a quarter of them within ``inlier_px``.
    The model maps a pixel ``(x, y)`` of the first date to where its content lies in the second.
    """
    n = len(rows)
    need = max(min_inliers, math.ceil(0.25 * n))
    if n < need:
        return None
    src = rows[:, :2]
    dst = src + rows[:, 2:4]
    rng = np.random.default_rng(0)  # a fixed seed: one input, one answer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr, tr_in = ransac((src, dst), _Translation, min_samples=1, residual_threshold=inlier_px,
                           max_trials=200, rng=rng)
        best: tuple[str, Any, np.ndarray] | None = None
        if tr is not None and tr_in is not None and int(tr_in.sum()) >= need:
            best = ("translation", tr, tr_in)
        if n >= 6:
            af, af_in = ransac((src, dst), AffineTransform, min_samples=3, residual_threshold=inlier_px,
                               max_trials=500, rng=rng)
            if af is not None and af_in is not None and int(af_in.sum()) >= need:
                base = 0 if best is None else int(best[2].sum())
                if best is None or int(af_in.sum()) >= base + max(3, math.ceil(0.1 * n)):
                    best = ("affine", af, af_in)
    return best


def _warp(scene: Scene, model: Any) -> Scene:
    """``scene`` resampled so that pixel ``(x, y)`` takes the content at ``model((x, y))``
    (bilinear; a pixel is valid only when every neighbour it is drawn from is valid)."""
    m, n = scene.grid.shape
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float64)
    xy = model(np.column_stack([xx.ravel(), yy.ravel()]))
    coords = np.stack([xy[:, 1].reshape(m, n), xy[:, 0].reshape(m, n)])
    valid_f = ndimage.map_coordinates(scene.valid.astype(np.float64), coords, order=1, mode="constant", cval=0.0)
    new_valid = valid_f > 1 - 1e-6
    data = np.empty_like(scene.data)
    for i in range(scene.data.shape[0]):
        band = np.where(scene.valid, scene.data[i], 0.0).astype(np.float64)
        data[i] = ndimage.map_coordinates(band, coords, order=1, mode="constant", cval=0.0)
    data[:, ~new_valid] = np.nan
    return dataclasses.replace(scene, data=data, valid=new_valid)


def coregister_local(before: Scene, after: Scene, *, max_shift_px: float = MAX_SHIFT_PX,
                     band: str | None = None, inlier_px: float = LOCAL_INLIER_PX,
                     window: int | None = None) -> tuple[Scene, Shift]:
    """Co-register ``after`` onto ``before`` by a transform fitted to local shifts (VHR).

    A single whole-image shift fails on sub-metre pairs from two sensors: the offset varies
    across the image (terrain, off-nadir angle) and a few changed blocks can outvote the
    rest.  Here the shift is estimated in each window of a half-overlapping grid
    (:func:`local_shifts`), shifts longer than ``max_shift_px`` are dropped, and a
    translation, or an affine transform when it explains clearly more windows, is fitted by
    RANSAC (:func:`fit_local`).  The fit is applied by bilinear resampling and its residual
    is the median shift left in the inlier windows afterwards.  The pair is left unshifted
    only when no model fits (too few windows agree), with the reason.

    The returned :class:`Shift` holds the fitted shift at the image centre, ``model``
    (``"translation"``, ``"affine"`` or None), ``windows`` and ``inliers``, the affine
    ``matrix`` when there is one, and ``residual_px``; ``reliability`` is the inlier share.
    """
    if not before.grid.same_as(after.grid):
        raise GridMismatchError(f"coregister needs both dates on one grid; before is {before.grid}, after is "
                                f"{after.grid}; read the second date with read_scene(..., grid=before.grid)")
    name = pick_band(before, after, band)
    where = f"{after.label} vs {before.label}"
    ok = before.valid & after.valid
    rows = local_shifts(before.band(name), after.band(name), valid=ok, window=window)
    rows = rows[np.hypot(rows[:, 2], rows[:, 3]) <= max_shift_px] if len(rows) else rows
    fit = fit_local(rows, inlier_px=inlier_px)
    m, n = before.grid.shape
    if fit is None:
        reason = (f"{where}: no shift model fits: of {len(rows)} windows, too few agree within {inlier_px:g} px "
                  f"(need at least 5 and a quarter); not corrected. Check for cloud, a featureless AOI or "
                  f"scenes of different places")
        warnings.warn(reason, MisregistrationWarning, stacklevel=2)
        shift = Shift(0.0, 0.0, 0.0, reason=reason, flagged=True, band=name, windows=len(rows), inliers=0)
        return _tag(after, shift), shift
    kind, model, inl = fit
    centre = np.array([[(n - 1) / 2, (m - 1) / 2]])
    dx, dy = (model(centre) - centre)[0]
    matrix = None if kind == "translation" else tuple(tuple(round(float(v), 6) for v in r) for r in model.params[:2])
    moved = apply_shift(after, float(dx), float(dy)) if kind == "translation" else _warp(after, model)
    check = local_shifts(before.band(name), moved.band(name), valid=before.valid & moved.valid, window=window)
    # the windows that were inliers, matched by centre
    keep = {(float(x), float(y)) for x, y in rows[inl, :2]}
    left = [math.hypot(r[2], r[3]) for r in check if (float(r[0]), float(r[1])) in keep]
    residual = float(np.median(left)) if left else None
    shift = Shift(float(dx) + 0.0, float(dy) + 0.0, round(float(inl.mean()), 3), applied=True,
                  residual_px=residual, band=name, model=kind, windows=len(rows), inliers=int(inl.sum()),
                  matrix=matrix,
                  reason=f"corrected by a {kind} fitted to {int(inl.sum())} of {len(rows)} windows "
                         f"({math.hypot(dx, dy):.2f} px at the centre), bilinear resampling")
    return _tag(moved, shift), shift
