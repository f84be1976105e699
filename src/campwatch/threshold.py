"""Thresholds for change scores, chosen from one global histogram.

Pure module.  A threshold is never chosen per window: windows add their counts into a
:class:`Histogram` with fixed bin edges (first pass), and the threshold is picked once
from the total (second pass applies it).

Methods
-------
``otsu``
    Otsu (1979): maximise the between-class variance of the histogram.
``ki``
    Kittler & Illingworth (1986) minimum error: fit two Gaussians, minimise the
    classification error criterion.
``chi2``
    Significance test for scores in noise-sigma units (normalised CVA magnitude, the
    square root of the IR-MAD chi-square): change where the no-change hypothesis has
    probability below ``alpha`` for a chi-square with ``dof`` degrees of freedom.
``fixed``
    A value given by the user.

A no-change pair must not be forced to show change: Otsu and KI always split a
histogram in two, so :func:`select_threshold` refuses a split whose upper class is not
separated from the lower one (``min_separation`` noise sigmas) and whose threshold would
sit inside the bulk of the data.  The chi-square test is safe by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import special

__all__ = ["Histogram", "ThresholdChoice", "otsu", "kittler_illingworth", "chi2_threshold",
           "select_threshold", "ThresholdMethod"]

ThresholdMethod = Literal["otsu", "ki", "chi2", "fixed"]


@dataclass
class Histogram:
    """Counts of a score over fixed bins; windows add into one histogram.

    Parameters
    ----------
    edges : (K + 1,) ndarray
        Bin edges, increasing.  Values beyond the last edge count in the last bin.

    Examples
    --------
    >>> h = Histogram.linear(0.0, 10.0, bins=10)
    >>> h.add(np.array([0.5, 1.5, 1.6, 99.0]))
    >>> h.counts.tolist()
    [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    """

    edges: np.ndarray
    counts: np.ndarray = field(default=None)  # type: ignore[assignment,arg-type]

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.float64)
        if self.counts is None:
            self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)

    @classmethod
    def linear(cls, lo: float, hi: float, *, bins: int = 1024) -> Histogram:
        """A histogram with ``bins`` equal bins between ``lo`` and ``hi``."""
        return cls(np.linspace(lo, hi, bins + 1))

    def add(self, values: np.ndarray) -> None:
        """Count the finite ``values`` (clipped into the first and last bins), in one compiled
        pass with the bins of ``np.histogram(values, bins=edges)``."""
        from campwatch._kernels import histogram_add

        v = np.ascontiguousarray(values)
        if v.dtype.kind not in "fiu" or v.dtype.itemsize > 8:
            v = v.astype(np.float64)
        histogram_add(v, self.edges, self.counts)

    def __iadd__(self, other: Histogram) -> Histogram:
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("histograms with different bin edges cannot be added")
        self.counts += other.counts
        return self

    @property
    def centers(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float:
        """Approximate quantile (bin centre) of the counted values."""
        c = np.cumsum(self.counts)
        if c[-1] == 0:
            return float("nan")
        return float(self.centers[min(int(np.searchsorted(c, q * c[-1])), len(c) - 1)])

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "counts": self.counts.tolist()}


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold, how it was chosen, and any refusal to split."""

    value: float
    method: str
    params: dict[str, Any]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"value": None if not np.isfinite(self.value) else float(self.value), "method": self.method,
                "params": self.params, "note": self.note}


def otsu(hist: Histogram) -> float:
    """Otsu's threshold on a histogram (upper edge of the lower class).

    Examples
    --------
    >>> h = Histogram.linear(0, 10, bins=100)
    >>> h.add(np.r_[np.full(900, 1.0), np.full(100, 8.0)])
    >>> 1.0 < otsu(h) <= 8.0
    True
    """
    p = hist.counts.astype(np.float64)
    if p.sum() == 0:
        return float("nan")
    p /= p.sum()
    c = hist.centers
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * c)
    mt = m0[-1]
    w1 = 1 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1
    k = int(np.argmax(between[:-1]))
    return float(hist.edges[k + 1])


def kittler_illingworth(hist: Histogram) -> float:
    """Kittler–Illingworth minimum-error threshold on a histogram.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> h = Histogram.linear(-5, 15, bins=200)
    >>> h.add(np.r_[rng.normal(0, 1, 9000), rng.normal(8, 1.5, 1000)])
    >>> 2.0 < kittler_illingworth(h) < 6.0
    True
    """
    h = hist.counts.astype(np.float64)
    n = h.sum()
    if n == 0:
        return float("nan")
    c = hist.centers
    p1 = np.cumsum(h)
    s1 = np.cumsum(h * c)
    q1 = np.cumsum(h * c * c)
    p2 = n - p1
    s2 = s1[-1] - s1
    q2 = q1[-1] - q1
    with np.errstate(divide="ignore", invalid="ignore"):
        m1, m2 = s1 / p1, s2 / p2
        v1 = q1 / p1 - m1 * m1
        v2 = q2 / p2 - m2 * m2
        P1, P2 = p1 / n, p2 / n
        j = 1 + P1 * np.log(v1) + P2 * np.log(v2) - 2 * (P1 * np.log(P1) + P2 * np.log(P2))
    width = hist.edges[1] - hist.edges[0]
    ok = (p1 >= 1) & (p2 >= 1) & (v1 > width ** 2 / 12) & (v2 > width ** 2 / 12) & np.isfinite(j)
    if not ok[:-1].any():
        return float("nan")
    j = np.where(ok, j, np.inf)
    k = int(np.argmin(j[:-1]))
    return float(hist.edges[k + 1])


def chi2_threshold(*, dof: int, alpha: float) -> float:
    """The score (in noise sigmas, the square root of a chi-square) above which the
    no-change hypothesis has probability below ``alpha``.

    Examples
    --------
    >>> round(chi2_threshold(dof=4, alpha=1e-6), 2)
    5.78
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(np.sqrt(special.chdtri(dof, alpha)))


def select_threshold(hist: Histogram, method: ThresholdMethod, *, value: float | None = None,
                     dof: int | None = None, alpha: float = 1e-6, floor: float | None = None) -> ThresholdChoice:
    """Choose a threshold from a global histogram.

    Parameters
    ----------
    hist : Histogram
        Counts of the score over all valid pixels.
    method : {"otsu", "ki", "chi2", "fixed"}
    value : float, optional
        The threshold for ``fixed``.
    dof, alpha :
        Degrees of freedom and significance level for ``chi2``.
    floor : float, optional
        For scores in noise-sigma units: Otsu and KI never return a threshold below
        this, so a no-change pair (whose scores are pure noise) is not forced to show
        change.  The note says when the floor was applied.

    Examples
    --------
    >>> h = Histogram.linear(0, 20, bins=200)
    >>> h.add(np.abs(np.random.default_rng(1).normal(0, 1, 10000)))   # noise only
    >>> select_threshold(h, "otsu", floor=5.0).value
    5.0
    """
    params: dict[str, Any] = {}
    if method == "fixed":
        if value is None or not np.isfinite(value):
            raise ValueError("a fixed threshold needs a finite value (--threshold 6.0)")
        return ThresholdChoice(float(value), "fixed", {"value": float(value)})
    if method == "chi2":
        if dof is None:
            raise ValueError("the chi2 threshold needs the score's degrees of freedom")
        params = {"dof": int(dof), "alpha": float(alpha)}
        return ThresholdChoice(chi2_threshold(dof=dof, alpha=alpha), "chi2", params,
                               f"P(no change) < {alpha:g} under a chi-square with {dof} degrees of freedom")
    if method == "otsu":
        t = otsu(hist)
    elif method == "ki":
        t = kittler_illingworth(hist)
    else:
        raise ValueError(f"unknown threshold method {method!r}; choose otsu, ki, chi2 or fixed")
    note = ""
    if floor is not None:
        params["floor"] = float(floor)
        if not np.isfinite(t) or t < floor:
            note = (f"{method} split at {t:.3g}, below the noise floor {floor:g}; the floor is used so that "
                    "noise is not reported as change")
            t = float(floor)
    return ThresholdChoice(float(t), method, params, note)
