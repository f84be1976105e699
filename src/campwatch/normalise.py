"""Relative radiometric normalisation between two dates, fitted on no-change pixels.

Pure module.  Every fit is built from statistics that windows *add up* (first pass) and
is then applied window by window (second pass), so a full Sentinel-2 tile never has to
sit in memory as float64.

- :class:`Moments` holds per-band weighted sums; :func:`fit_relative` iterates a robust
  per-band linear fit ``after ≈ gain · before + offset``, each round keeping only the
  pixels whose residual is within ``clip`` sigmas (the no-change pixels), in the spirit
  of Canty's *radcal*.  The residual divided by its sigma is the per-band change
  evidence in noise units that campwatch's default detector uses.
- :class:`Covariance` and :func:`fit_irmad` implement IR-MAD (Nielsen 2007):
  canonical correlation of the two dates, reweighted by the chi-square probability of
  no change; :func:`radcal_from_mad` fits reduced-major-axis lines on the pixels IR-MAD
  calls invariant (P(no change) > 0.95), as radcal does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg, special

__all__ = ["Moments", "RelativeFit", "fit_relative", "Covariance", "MADFit", "fit_irmad", "radcal_from_mad"]

#: Residual sigmas are never taken below this (reflectance units), so a scene compared
#: with itself gives zero evidence instead of 0/0.
SIGMA_FLOOR = 1e-4

WindowPairs = Callable[[], Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]]


def _flat(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(B, M, N) → (P, B) float64 of the valid pixels."""
    return x[:, valid].T.astype(np.float64)


@dataclass
class Moments:
    """Per-band weighted sums for a linear fit ``y ≈ gain · x + offset``.

    Examples
    --------
    >>> m = Moments.zeros(1)
    >>> x = np.array([[0.1, 0.2, 0.3]]); y = 2 * x + 0.01
    >>> m.add(x, y, np.ones_like(x, dtype=bool))
    >>> gain, offset, sigma = m.fit()
    >>> np.round(gain, 3).tolist(), np.round(offset, 3).tolist()
    ([2.0], [0.01])
    """

    n: np.ndarray
    sx: np.ndarray
    sy: np.ndarray
    sxx: np.ndarray
    sxy: np.ndarray
    syy: np.ndarray

    @classmethod
    def zeros(cls, bands: int) -> Moments:
        return cls(*(np.zeros(bands) for _ in range(6)))

    def add(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        """Add (B, P) samples ``x``, ``y`` where the (B, P) bool ``w`` is True.

        Summed in float64 in pixel order by one compiled pass (no BLAS threads, which
        spin against a busy CPU); the same numbers whichever path calls it."""
        x, y, w = np.asarray(x), np.asarray(y), np.asarray(w)
        if x.ndim == 2 and x.shape == y.shape == w.shape and x.dtype.kind == y.dtype.kind == "f":
            from campwatch._kernels import masked_moments

            self.add_sums(masked_moments(x, y, w))
            return
        for i in range(x.shape[0]):
            xi = np.asarray(x[i], dtype=np.float64)[w[i]]
            yi = np.asarray(y[i], dtype=np.float64)[w[i]]
            self.n[i] += xi.size
            self.sx[i] += xi.sum()
            self.sy[i] += yi.sum()
            self.sxx[i] += xi @ xi
            self.sxy[i] += xi @ yi
            self.syy[i] += yi @ yi

    def add_sums(self, mom: np.ndarray) -> None:
        """Add (6, B) sums: count, sum x, sum y, sum x², sum xy, sum y²."""
        self.n += mom[0]
        self.sx += mom[1]
        self.sy += mom[2]
        self.sxx += mom[3]
        self.sxy += mom[4]
        self.syy += mom[5]

    def __iadd__(self, other: Moments) -> Moments:
        for k in ("n", "sx", "sy", "sxx", "sxy", "syy"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        return self

    def fit(self, *, symmetric: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gain, offset and residual sigma per band: least squares of ``y`` on ``x``, or with
        ``symmetric`` the reduced major axis (gain = sign(cov) · σy / σx).

        The reduced major axis treats both dates as noisy, like an orthogonal fit, but it does
        not depend on the two axes' units, and a weak correlation changes neither its size nor
        (unlike least squares) shrinks it towards 0.  An orthogonal fit does depend on the
        units: on weakly correlated sub-metre pairs its slope ran off to 20.2 (LEVIR-CD
        ``test_2_0000_0000``, red) and 0.08 (DSIFN ``6_3``, green) (``docs/vhr.md``).
        """
        n = np.maximum(self.n, 1.0)
        mx, my = self.sx / n, self.sy / n
        vxx = np.maximum(self.sxx / n - mx * mx, 0.0)
        vyy = np.maximum(self.syy / n - my * my, 0.0)
        vxy = self.sxy / n - mx * my
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.sign(vxy) * np.sqrt(vyy / vxx) if symmetric else vxy / vxx
        gain = np.where(np.isfinite(gain) & (gain > 0), gain, 1.0)
        offset = my - gain * mx
        resid = np.maximum(vyy - 2 * gain * vxy + gain * gain * vxx, 0.0)
        return gain, offset, np.maximum(np.sqrt(resid), SIGMA_FLOOR)


@dataclass(frozen=True)
class RelativeFit:
    """Per-band ``after ≈ gain · before + offset`` with residual ``sigma``, fitted on no-change pixels."""

    bands: tuple[str, ...]
    gain: np.ndarray
    offset: np.ndarray
    sigma: np.ndarray
    iterations: int
    clip: float
    used_fraction: np.ndarray

    def residuals(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """(B, M, N) float32 residual of ``after`` against the prediction from ``before``, in sigmas.

        Computed in float32 (the reflectances are float32; the fit itself is float64).
        """
        g, o, s = (np.asarray(v, dtype=np.float32)[:, None, None] for v in (self.gain, self.offset, self.sigma))
        r = np.multiply(before, g, dtype=np.float32)
        r += o
        np.subtract(after, r, out=r, dtype=np.float32)
        r /= s
        return r

    def residual(self, i: int, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """(M, N) float32 residual of band ``i`` alone (the arithmetic of :meth:`residuals`)."""
        g, o, s = (np.float32(v[i]) for v in (self.gain, self.offset, self.sigma))
        r = np.multiply(before, g, dtype=np.float32)
        r += o
        np.subtract(after, r, out=r, dtype=np.float32)
        r /= s
        return r

    def to_dict(self) -> dict[str, Any]:
        return {"bands": list(self.bands), "gain": np.round(self.gain, 6).tolist(),
                "offset": np.round(self.offset, 6).tolist(), "sigma": np.round(self.sigma, 6).tolist(),
                "iterations": self.iterations, "clip_sigma": self.clip,
                "no_change_fraction": np.round(self.used_fraction, 4).tolist()}


def fit_relative(windows: WindowPairs, bands: tuple[str, ...], *, iterations: int = 3,
                 clip: float = 2.5) -> RelativeFit:
    """Robust per-band linear fit of ``after`` on ``before`` over no-change pixels.

    Parameters
    ----------
    windows : callable
        Returns a fresh iterable of ``(before, after, valid)`` windows, (B, m, n) float
        and (m, n) bool; it is called once per iteration (one pass over the data each).
    bands : tuple of str
    iterations : int
        Rounds of refitting; each keeps pixels within ``clip`` sigmas of the previous fit.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> b = rng.uniform(0.05, 0.3, (1, 50, 50)); a = 1.1 * b + 0.02 + rng.normal(0, 0.003, b.shape)
    >>> a[0, :5, :5] += 0.2                                  # a changed patch
    >>> fit = fit_relative(lambda: [(b, a, np.ones((50, 50), bool))], ("red",))
    >>> round(float(fit.gain[0]), 2), round(float(fit.offset[0]), 2), round(float(fit.sigma[0]), 3)
    (1.1, 0.02, 0.003)
    """
    nb = len(bands)
    gain = offset = sigma = None
    used = np.zeros(nb)
    from campwatch._kernels import relative_pass

    for it in range(iterations + 1):
        acc = Moments.zeros(nb)
        total = np.zeros(nb)
        refit = gain is not None
        g, o, s = (gain, offset, sigma) if refit else (np.ones(nb), np.zeros(nb), np.ones(nb))
        assert g is not None and o is not None and s is not None
        for before, after, valid in windows():
            # one compiled pass per window: the sums of the numpy expression
            # ``w = isfinite(x) & isfinite(y) [& |y - (g x + o)| / s < clip]`` over
            # ``x, y = before[:, valid], after[:, valid]``, without its copies
            mom, fin = relative_pass(before, after, np.asarray(valid, bool), g, o, s, float(clip), refit)
            total += fin
            acc.add_sums(mom)
        if not acc.n.any():
            break
        gain, offset, sigma = acc.fit()
        used = acc.n / np.maximum(total, 1)
        if it == iterations:
            break
    if gain is None:
        gain, offset, sigma = np.ones(nb), np.zeros(nb), np.full(nb, SIGMA_FLOOR)
    assert offset is not None and sigma is not None
    return RelativeFit(tuple(bands), gain, offset, sigma, iterations, clip, used)


# --------------------------------------------------------------------------------------
# IR-MAD
# --------------------------------------------------------------------------------------
@dataclass
class Covariance:
    """Weighted first and second moments of stacked (P, D) samples; windows add into one."""

    dim: int
    w: float = 0.0
    s: np.ndarray = field(default=None)  # type: ignore[assignment,arg-type]
    ss: np.ndarray = field(default=None)  # type: ignore[assignment,arg-type]

    def __post_init__(self) -> None:
        if self.s is None:
            self.s = np.zeros(self.dim)
        if self.ss is None:
            self.ss = np.zeros((self.dim, self.dim))

    def add(self, z: np.ndarray, w: np.ndarray | None = None) -> None:
        """Add (P, D) samples ``z`` with optional (P,) weights."""
        w = np.ones(len(z)) if w is None else w
        self.w += float(w.sum())
        self.s += w @ z
        self.ss += (z * w[:, None]).T @ z

    def __iadd__(self, other: Covariance) -> Covariance:
        self.w += other.w
        self.s += other.s
        self.ss += other.ss
        return self

    @property
    def mean(self) -> np.ndarray:
        return self.s / max(self.w, 1e-12)

    @property
    def cov(self) -> np.ndarray:
        m = self.mean
        return self.ss / max(self.w, 1e-12) - np.outer(m, m)


@dataclass(frozen=True)
class MADFit:
    """IR-MAD transform: MAD variates ``(x - mx) @ A - (y - my) @ B`` with variance ``var``."""

    bands: tuple[str, ...]
    mean_x: np.ndarray
    mean_y: np.ndarray
    A: np.ndarray
    B: np.ndarray
    rho: np.ndarray
    var: np.ndarray
    iterations: int
    no_change_share: float = float("nan")

    def chi2(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """(M, N) sum of squared standardised MAD variates (chi-square with B dof under no change)."""
        x = before.reshape(len(self.bands), -1).T.astype(np.float64) - self.mean_x
        y = after.reshape(len(self.bands), -1).T.astype(np.float64) - self.mean_y
        mad = x @ self.A - y @ self.B
        return ((mad * mad) / self.var).sum(1).reshape(before.shape[1:]).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"bands": list(self.bands), "canonical_correlations": np.round(self.rho, 6).tolist(),
                "mad_variance": np.round(self.var, 8).tolist(), "iterations": self.iterations,
                "no_change_share": None if np.isnan(self.no_change_share) else round(self.no_change_share, 4)}


def _mad_transform(cov: Covariance, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    S = cov.cov + np.eye(2 * p) * 1e-12
    sxx, syy, sxy = S[:p, :p], S[p:, p:], S[:p, p:]
    lam, A = linalg.eigh(sxy @ linalg.solve(syy, sxy.T), sxx)
    A = A / np.sqrt(np.maximum(np.einsum("ij,ik,kj->j", A, sxx, A), 1e-30))
    rho = np.sqrt(np.clip(lam, 0.0, 1.0))
    B = linalg.solve(syy, sxy.T @ A) / np.maximum(rho, 1e-9)
    B = B / np.sqrt(np.maximum(np.einsum("ij,ik,kj->j", B, syy, B), 1e-30))
    B = B * np.sign(np.einsum("ij,ik,kj->j", A, sxy, B))
    corr = np.einsum("ij,ik,kj->j", A, sxy, B)
    var = np.maximum(2 * (1 - corr), 1e-12)
    return A, B, rho, var


#: The robust scale of the MAD variates is taken on at most this many pixels (an even
#: subsample of the valid ones), kept in memory across iterations.
SCALE_SAMPLE = 1_000_000


def _robust_var(mad: np.ndarray) -> np.ndarray:
    """Per-variate variance from the median absolute deviation (1.4826 · MAD)², consistent
    for Gaussian no-change pixels while they are the majority (50% breakdown)."""
    dev = np.abs(mad - np.median(mad, axis=0))
    return np.maximum((1.4826 * np.median(dev, axis=0)) ** 2, 1e-12)


def fit_irmad(windows: WindowPairs, bands: tuple[str, ...], *, iterations: int = 10) -> MADFit:
    """Iteratively reweighted MAD (Nielsen 2007), one pass over the windows per iteration.

    Each pixel's weight is its chi-square probability of no change under the previous
    transform, so change pixels stop pulling the canonical correlation.

    The MAD variates are standardised by a robust scale (the median absolute deviation over
    an even sample of the scene's valid pixels), not by the weighted variance ``2(1 - ρ)``.
    The weighted variance is biased low, because the weights favour the small no-change
    residuals too; fed back, it narrows the weights at every iteration and never settles.  On
    LEVIR-CD test_12 (RGB, 0.5 m) twice the mean weight (the share of no-change pixels those
    weights imply: a no-change pixel's weight has mean 1/2) fell from 1.1 to 0.17 in 10
    iterations, the chi-square median of the scene was 21.2 against 2.37 expected for 3 dof,
    and radcal's invariant pixels were the darkest 0.4%.  With the robust scale the share stays
    0.95, the median is 2.45 and 7.3% of the pixels are invariant.  The robust scale holds while
    most of the scene did not change, which IR-MAD and radcal assume anyway; the implied share
    is ``no_change_share``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> b = rng.normal(0.2, 0.05, (3, 40, 40)); a = 0.9 * b + rng.normal(0, 0.005, b.shape)
    >>> a[:, :4, :4] += 0.3
    >>> fit = fit_irmad(lambda: [(b, a, np.ones((40, 40), bool))], ("red", "green", "blue"))
    >>> chi = fit.chi2(b, a)
    >>> bool(chi[:4, :4].min() > chi[10:, 10:].max()), 0.9 < fit.no_change_share < 1.1
    (True, True)
    """
    p = len(bands)
    A = B = None
    mx = my = None
    rho = None
    var = np.ones(p)
    share = float("nan")
    sample: list[np.ndarray] = []  # every stride-th valid pixel of the first pass, for the scale
    stride = 1
    for _ in range(iterations):
        cov = Covariance(2 * p)
        n, sw = 0, 0.0
        for before, after, valid in windows():
            x, y = _flat(before, valid), _flat(after, valid)
            ok = np.isfinite(x).all(1) & np.isfinite(y).all(1)
            x, y = x[ok], y[ok]
            xy = np.hstack([x, y])
            if A is None:
                w = None
                # copies, so the sample does not keep every window's whole array alive
                sample.append(xy[::stride].copy())
                if sum(len(z) for z in sample) > 2 * SCALE_SAMPLE:  # halve the sample, keep it even
                    sample, stride = [z[::2].copy() for z in sample], 2 * stride
            else:
                mad = (x - mx) @ A - (y - my) @ B
                w = special.chdtrc(p, ((mad * mad) / var).sum(1))
                sw += float(w.sum())
            n += len(x)
            cov.add(xy, w)
        if A is not None:
            share = 2 * sw / max(n, 1)
        if cov.w <= 2 * p:
            break
        mx, my = cov.mean[:p], cov.mean[p:]
        A, B, rho, _ = _mad_transform(cov, p)
        z = np.vstack(sample)
        var = _robust_var((z[:, :p] - mx) @ A - (z[:, p:] - my) @ B)
    if A is None:
        raise ValueError("IR-MAD needs more valid pixels than bands")
    assert mx is not None and my is not None and B is not None and rho is not None
    return MADFit(tuple(bands), mx, my, A, B, rho, var, iterations, share)


def radcal_from_mad(windows: WindowPairs, fit: MADFit, *, p_no_change: float = 0.95) -> RelativeFit:
    """Symmetric (reduced major axis) fit of ``after`` on ``before`` over IR-MAD's invariant
    pixels: Canty's radcal, with the reduced major axis in place of its orthogonal regression
    (:meth:`Moments.fit`)."""
    nb = len(fit.bands)
    acc = Moments.zeros(nb)
    total = 0
    for before, after, valid in windows():
        chi = fit.chi2(before, after)
        inv = valid & (special.chdtrc(nb, chi) > p_no_change)
        x, y = _flat(before, valid).T, _flat(after, valid).T
        total += int(valid.sum())
        acc.add(x, y, np.broadcast_to(inv[valid], x.shape))
    gain, offset, sigma = acc.fit(symmetric=True)
    return RelativeFit(fit.bands, gain, offset, sigma, fit.iterations, float("nan"), acc.n / max(total, 1))
