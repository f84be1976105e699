"""The change-score methods: the global fit of each method (pass 1), the score of one window,
the threshold choice, and the ``params`` they report.

Pure module: arrays in, scores and fitted statistics out; it never opens a file.  The passes
that run these over windows are :mod:`campwatch.detect.passes`; the window's hits, the region
peak and the minimum mapping unit are :mod:`campwatch.detect.components`.

Methods (``method=``)
---------------------
``default``
    Robust relative normalisation of blue, green, red and NIR (per-band fit on no-change
    pixels, see :func:`~campwatch.normalise.fit_relative`); change magnitude in noise
    sigmas; 3 × 3 mean; open water (low NIR and SWIR at either date) gets no evidence;
    evidence is down-weighted where the neighbourhood was densely vegetated at either date
    (max NDVI 0.45 → weight 1, 0.75 → weight 0).  Thresholded by a chi-square
    significance test (4 dof, ``alpha = 1e-6``); a change region (8-connected) is then kept
    only if its strongest pixel exceeds :data:`REGION_PEAK_SIGMA` (10 noise sigmas), a
    hysteresis that decides per region instead of per pixel, and if a pretrained network's
    features changed there too (:func:`confirm_regions`).
``naive-cva``
    The baseline: every band of each date standardised on its own, Euclidean distance,
    Otsu.  Kept to measure against.
``cva``
    Change-vector magnitude over the relatively normalised bands (sigma units) and
    direction (degrees: ``atan2`` of mean visible residual against the NIR residual).
``irmad``
    IR-MAD (Nielsen 2007); the score is √χ² of the standardised MAD variates. The
    radcal fit on its invariant pixels is reported in ``params``.
``diff``, ``ratio``
    Brightness difference and log ratio, each relatively normalised (sigma units).
``pca-diff``
    First principal component of the normalised band differences (sigma units).
``pca-kmeans``
    Celik (2009): 5 × 5 blocks of the difference image, PCA, two-class k-means; the score
    is the membership of the change cluster (threshold 0.5).
``ndvi``, ``ndbi``, ``bui``
    Index differencing (sigma units after relative normalisation of the index).  ``bui`` is
    a built-up index from 10 m bands only: ``(mean(blue, green, red) - nir) / (... + nir)``.

Why the default ranks built-up change above vegetation phenology
----------------------------------------------------------------
Measured on the 7 labelled OSCD cities in ``../shared/data/oscd`` (pooled F1, counts
summed over all pixels), ``campwatch bench oscd``:

- naive CVA (per-band standardisation + Otsu): 0.065;
- relative normalisation of the 4 10 m bands, σ units, 3 × 3 mean, χ² threshold: 0.25;
- + open-water exclusion: 0.26;
- + vegetation down-weighting: 0.29 (saclay_e best-F1 0.16 → 0.24);
- + region peak ≥ 10 σ (issue 18): 0.326, precision 0.224 → 0.299, recall
  0.405 → 0.359; leave one city out (peak chosen on 6 cities from 7-14 σ, scored on the 7th)
  0.324, 6 of 7 cities up (pisa 0.194 → 0.175).
- + deep confirmation (the default since 2026-12-08, :func:`confirm_regions`): a kept region
  stays only if the mean over its pixels of a pretrained network's feature change (VHR mode's
  :func:`campwatch.vhr.deep.deep_change`, EfficientNet-lite0's ImageNet features of red, green
  and blue, no training) exceeds that change's Otsu cut over the scene: 0.357 (P 0.355, R 0.359),
  no city lower (bercy 0.235 -> 0.235, bordeaux 0.252 -> 0.256, nantes 0.499 -> 0.502, paris
  0.172 -> 0.174, pisa 0.185 -> 0.244, rennes 0.548 -> 0.554, saclay_e 0.289 -> 0.289).  It
  has no parameter chosen on the cities (the cut is each scene's own), so its
  leave-one-city-out figure is its pooled one.  The same test per pixel instead of per
  region (``benchmarks/oscd_deep.py``) gives 0.354 with bercy level and 6 cities up.  Its cost:
  the network over every 1024-px tile that holds a kept region and over the fit sample, about
  1 s per megapixel and date (see README, full tiles).

Measured for issue 18 and not kept (pooled F1 on the same 7 cities, today's 0.289):
SWIR (swir16, swir22 resampled from 20 m) in the magnitude, 5 or 6 dof: 0.271 / 0.251, lower
in every city (their noise is spatially correlated at 10 m, so they add more false than true
pixels); averaging the residual vector 3 × 3 before the magnitude, re-standardised on the
scene: 0.259-0.300 at any level; other vegetation weights (min, mean or AFTER's NDVI instead of
the max): 0.239-0.245; per-scene self-training (scikit-learn HistGradientBoosting on 31 band
features, trained on the scene's own confident change > 10 σ and no-change < 2 σ, predicted where
the score is > 3 σ): 0.300-0.315, below the region peak alone; the peak from the scene's
histogram (Otsu or Kittler-Illingworth above the chi-square level): 0.315 / 0.306 with 3-4 cities down; a stricter pixel level chosen with the
peak (leave one city out over 5.78-7.5 × 9-13 σ): 0.334 held out, but against the kept rule it
lowers 3 folds and raises 3, for a second tuned constant; a wider cloud buffer (3-20 px) or
dropping regions that touch no data: 0.294-0.342, paris up (cloud haze) but 3-4 of the other
cities down against the kept rule (bercy's and saclay_e's clouds border labelled change); growing kept regions by one pixel: 0.287-0.303;
keeping only regions that brightened, lost NDVI or gained the built-up index: 0.260-0.319;
self-trained HGB needs scikit-learn and was not better, so it is not a dependency (a per-scene
logistic regression on 66 band features, trained on the confident change that the deep change
confirms: 0.166-0.229). SLIC
superpixels over both dates were too slow to measure on 1.5 M pixels (> 12 CPU minutes), far over
a whole tile's budget (on 2026-12-08, SLIC at 4-64 px per segment on the 7 cities'
cached maps, mean score over the chi-square level, with or without the deep change and the
region peak: 0.268-0.323).  Felzenszwalb segments of both dates' standardised 10 m bands (11-18 s for
the 7 cities) against the kept 0.326: each segment kept whose mean (or median) score passes the
chi-square level, then the region peak: 0.330 / 0.329 at 3.3 px per segment, 0.325 at 11, 0.259 at
78, 0.202 at 213; the kept regions grown by the segments they touch: 0.311-0.326.  The +0.004 is
within one city's noise and object decisions lose as soon as segments reach object size (a
10 m building is one or two pixels), so segments are not used.


Phenology and harvests move NIR and NDVI by large amounts over large, densely vegetated
areas; built-up change (new roofs, roads, cleared construction ground) raises visible
brightness where vegetation is sparse.  NDVI and NDBI differencing alone scored best-F1
0.06–0.09 per city, far below the visible/NIR magnitude (0.28), so indices are used as
context (where evidence counts), not as the evidence itself.  Thresholds were tuned
only coarsely (5, 6, 7 σ all gave 0.27–0.29) and are the same for every city.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from rasterio.windows import Window

from campwatch.detect.components import WindowChange, region_peak, window_hits
from campwatch.errors import LowValidDataWarning
from campwatch.grid import Grid
from campwatch.normalise import (
    Covariance,
    Moments,
    RelativeFit,
    fit_irmad,
    fit_relative,
    radcal_from_mad,
)
from campwatch.threshold import Histogram, ThresholdChoice, chi2_threshold, select_threshold

__all__ = ["Method", "METHODS", "METHOD_BANDS", "MIN_VALID_FRACTION", "FIT_WINDOW", "FIT_ALL_PIXELS", "FIT_INSET",
           "FitContext", "detection_bands", "score_halo", "fit_windows", "fit_context", "new_histogram",
           "resolve_threshold", "choose_threshold", "window_score", "detect_window", "increase_mask",
           "changed_area_m2", "WindowSource", "check_method", "warn_low_valid", "detection_params"]

Method = Literal["default", "naive-cva", "cva", "irmad", "diff", "ratio", "pca-diff", "pca-kmeans",
                 "ndvi", "ndbi", "bui"]
METHODS: tuple[str, ...] = ("default", "naive-cva", "cva", "irmad", "diff", "ratio", "pca-diff", "pca-kmeans",
                            "ndvi", "ndbi", "bui")
#: Bands each method needs (``cva``, ``irmad``, ``naive-cva`` also use swir16/swir22 when present).
METHOD_BANDS: dict[str, tuple[str, ...]] = {
    "default": ("blue", "green", "red", "nir"),
    "naive-cva": ("red",),
    "cva": ("blue", "green", "red", "nir"),
    "irmad": ("blue", "green", "red", "nir"),
    "diff": ("red",),
    "ratio": ("red",),
    "pca-diff": ("blue", "green", "red", "nir"),
    "pca-kmeans": ("red",),
    "ndvi": ("red", "nir"),
    "ndbi": ("nir", "swir16"),
    "bui": ("blue", "green", "red", "nir"),
}
_OPTIONAL = ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08",
             "swir16", "swir22")
#: Below this share of pixels valid on both dates a comparison warns
#: (:class:`~campwatch.errors.LowValidDataWarning`): its figures rest on little data.
MIN_VALID_FRACTION = 0.05
_HIST_MAX = 64.0
_PCAK_BLOCK = 5


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((a - b) / (a + b + 1e-6)).astype(np.float32)


def _brightness(x: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    idx = [bands.index(b) for b in ("blue", "green", "red", "nir") if b in bands] or list(range(len(bands)))
    return x[idx].mean(0, keepdims=True)


def _bui(x: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    vis = x[[bands.index(b) for b in ("blue", "green", "red")]].mean(0)
    return _nd(vis, x[bands.index("nir")])


def _index(name: str, x: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    g = bands.index
    if name == "ndvi":
        return _nd(x[g("nir")], x[g("red")])
    if name == "ndbi":
        return _nd(x[g("swir16")], x[g("nir")])
    return _bui(x, bands)


#: The global fit (pass 1) uses the pixels of ``FIT_WINDOW``-px windows: every window up to
#: ``FIT_ALL_PIXELS`` pixels, beyond that a regular lattice of them (see :func:`fit_windows`).
FIT_WINDOW = 512
FIT_ALL_PIXELS = 2 ** 23
#: Lattice windows are cut ``FIT_INSET`` px inside their 512 px cell, so that a window read
#: with the preparation halo (clouds, shift) stays inside one 512 px file block: the fit
#: then decodes 25 blocks per band of a full tile instead of about 225.
FIT_INSET = 16


@dataclass
class FitContext:
    """Fitted global statistics, shared by every window of the score pass (in memory here, by
    :mod:`campwatch.engine` when streaming): the bands scored, the relative radiometric fit and
    per-method extras."""

    bands: tuple[str, ...]
    rel: RelativeFit | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _choose_bands(method: str, available: tuple[str, ...]) -> tuple[str, ...]:
    if method in ("cva", "irmad", "naive-cva"):
        want = _OPTIONAL if method != "irmad" else ("blue", "green", "red", "nir", "swir16", "swir22")
        chosen = tuple(b for b in want if b in available)
        if method == "naive-cva":
            return available  # every band, as the baseline is usually described
        return tuple(dict.fromkeys((*METHOD_BANDS[method], *chosen)))
    if method in ("diff", "ratio", "pca-kmeans"):
        return tuple(b for b in ("blue", "green", "red", "nir") if b in available) or available
    if method == "default":
        return ("blue", "green", "red", "nir", *(b for b in ("swir16",) if b in available))
    return METHOD_BANDS[method]


def detection_bands(method: str, before_bands: tuple[str, ...], after_bands: tuple[str, ...]) -> tuple[str, ...]:
    """The bands ``method`` scores with, given what each date has (in ``before``'s order)."""
    return tuple(b for b in _choose_bands(method, before_bands) if b in after_bands)


def score_halo(method: str) -> int:
    """Pixels of context the score of ``method`` needs around a window."""
    return {"default": 3, "pca-kmeans": _PCAK_BLOCK // 2}.get(method, 0)


def fit_windows(grid: Grid) -> list[Window]:
    """The windows whose pixels the global fit (pass 1) uses.

    Every ``FIT_WINDOW``-px window of ``grid`` when it has at most ``FIT_ALL_PIXELS``
    pixels; beyond that, one window in ``step`` along each axis (a regular lattice with
    ``step = ceil(sqrt(pixels / FIT_ALL_PIXELS))``), each cut :data:`FIT_INSET` px inside
    its cell, so a full Sentinel-2 tile fits its four gains, offsets and sigmas on 5.8
    million pixels spread over the tile instead of 120 million.  The rule depends only on the grid, so in-memory and
    streamed runs fit on the same pixels and give the same numbers.

    Examples
    --------
    >>> from affine import Affine
    >>> small = Grid((1000, 1000), Affine(10, 0, 0, 0, -10, 0), "EPSG:32652")
    >>> len(fit_windows(small))
    4
    >>> tile = Grid((10980, 10980), Affine(10, 0, 0, 0, -10, 0), "EPSG:32652")
    >>> len(fit_windows(tile)), sum(int(w.height * w.width) for w in fit_windows(tile))
    (25, 5760000)
    """
    wins = [core for core, _ in grid.tiles(FIT_WINDOW)]
    npx = grid.height * grid.width
    if npx <= FIT_ALL_PIXELS:
        return wins
    step = math.ceil(math.sqrt(npx / FIT_ALL_PIXELS))
    off = step // 2
    chosen = [Window(w.col_off + FIT_INSET, w.row_off + FIT_INSET, w.width - 2 * FIT_INSET,
                     w.height - 2 * FIT_INSET) for w in wins
              if (int(w.row_off) // FIT_WINDOW) % step == off and (int(w.col_off) // FIT_WINDOW) % step == off
              and w.width > 2 * FIT_INSET and w.height > 2 * FIT_INSET]
    return chosen or wins


def fit_context(method: str, bands: tuple[str, ...],
                windows: Callable[[], Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> FitContext:
    """Pass 1: the global statistics of ``method`` from ``(before, after, valid)`` fit windows."""
    ctx = FitContext(bands)
    _fit(method, ctx, windows)
    return ctx


def new_histogram(method: str) -> Histogram:
    """The fixed-bin score histogram every window adds into."""
    return Histogram.linear(0.0, 1.0 if method == "pca-kmeans" else _HIST_MAX, bins=2048)


def resolve_threshold(method: str, threshold: str, value: float | None) -> tuple[str, float | None]:
    """The threshold method ``auto`` stands for, and the fixed value (``pca-kmeans``: 0.5)."""
    sigma_units = method not in ("naive-cva", "pca-kmeans")
    method_t = threshold
    if threshold == "auto":
        method_t = "chi2" if sigma_units else ("otsu" if method == "naive-cva" else "fixed")
        if method == "pca-kmeans":
            value = 0.5 if value is None else value
    if method_t == "chi2" and not sigma_units:
        raise ValueError(f"the chi2 threshold needs a score in noise sigmas; method {method!r} is not; "
                         "use otsu, ki or fixed")
    return method_t, value


def choose_threshold(method: str, ctx: FitContext, hist: Histogram, *, threshold: str, value: float | None,
                     alpha: float) -> ThresholdChoice:
    """The global threshold (``chi2`` and ``fixed`` do not look at ``hist``)."""
    method_t, value = resolve_threshold(method, threshold, value)
    sigma_units = method not in ("naive-cva", "pca-kmeans")
    dof = ctx.extra.get("dof", 1)
    floor = chi2_threshold(dof=dof, alpha=alpha) if sigma_units and method_t in ("otsu", "ki") else None
    return select_threshold(hist, method_t, value=value, dof=dof, alpha=alpha, floor=floor)  # type: ignore[arg-type]


def window_score(method: str, ctx: FitContext, b: np.ndarray, a: np.ndarray,
                 v: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Score (NaN where ``v`` is False) and CVA direction of one window read with its halo.

    Pixels closer than :func:`score_halo` to a window edge that is not a grid edge are
    not exact; callers keep the core.
    """
    s, d = _score_window(method, ctx, b, a, v)
    s = s.astype(np.float32, copy=False)  # every method returns a fresh array: NaN written in place
    if method != "default":  # the default's kernel already leaves NaN outside v
        s[~v] = np.nan
    if d is not None:
        d = np.where(v, d, np.nan).astype(np.float32)
    return s, d


def detect_window(method: str, ctx: FitContext, before: np.ndarray, after: np.ndarray, valid: np.ndarray,
                  core: tuple[slice, slice], *, threshold: float | None = None, keep: np.ndarray | None = None,
                  opening_radius: int = 0, window: Window | None = None, histogram: bool = False) -> WindowChange:
    """The score pass on one window: :func:`window_score`, then (with ``threshold``) :func:`window_hits`.

    Both :func:`detect_change` (in memory) and the streaming engine run every window through
    this function, so a step added here applies to both.

    Parameters
    ----------
    method : str
    ctx : FitContext
        The fitted global statistics (pass 1).
    before, after : (B, M, N) ndarray
        The ``ctx.bands`` of each date on the window read with its halo: at least
        :func:`score_halo` plus ``2 * opening_radius`` pixels where the window edge is not
        a grid edge.
    valid : (M, N) bool ndarray
        Valid on both dates.
    core : (slice, slice)
        The core within the window; the result is on it.
    threshold : float, optional
        The global threshold, when it is known before the scores are (``chi2``, ``fixed``).
    keep, opening_radius :
        As for :func:`threshold_open` (``keep`` on the whole window).
    window : Window, optional
        The core on the grid, carried into the result (``core``).
    histogram : bool
        Also count the core's scores in the bins of :func:`new_histogram` (``counts``).

    Returns
    -------
    WindowChange
    """
    s, d = window_score(method, ctx, before, after, valid)
    ok = valid[core]
    hit = None
    if threshold is not None:
        hit = window_hits(s, threshold, core, valid=ok, keep=keep, opening_radius=opening_radius)
    counts = None
    if histogram:
        h = new_histogram(method)
        h.add(s[core])
        counts = h.counts
    return WindowChange(s[core], ok, hit, None if d is None else d[core], window, counts)


def increase_mask(b: np.ndarray, a: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    """True where the 10 m built-up index (``bui``) rose (``increase_only``)."""
    sel = [bands.index(x) for x in METHOD_BANDS["bui"]]
    return _bui(a[sel], METHOD_BANDS["bui"]) > _bui(b[sel], METHOD_BANDS["bui"])


def changed_area_m2(row_counts: np.ndarray, grid: Grid) -> float:
    """Area of ``row_counts[i]`` changed pixels in each row ``i`` (geodesic row areas)."""
    return float(np.dot(row_counts.astype(np.float64), grid.pixel_area_m2()[:, 0]))


class WindowSource(Protocol):
    """Where :func:`run_passes` gets its windows: two prepared in-memory scenes
    (:class:`SceneWindows`), or the streaming engine's reads from files (local strips of
    rows on threads, or one dask task per window), each window with its halo."""

    def fit(self, windows: list[Window]) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The ``(before, after, valid)`` data of each fit window's core, in order."""
        ...

    def n_windows(self) -> int:
        """How many windows :meth:`scored` yields."""
        ...

    def scored(self, ctx: FitContext, threshold: float | None, *, first: bool,
               histogram: bool) -> Iterable[tuple[WindowChange, Any]]:
        """Every window through :func:`detect_window` (with ``window`` and ``histogram``), and
        what the source adds for its caller; ``first``: the first score pass (a second one, once
        the threshold is chosen from the histogram, needs only the hits)."""
        ...

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``(before, after, valid)`` prepared data of any window (no halo added), as
        :meth:`fit` gives a fit window's: for :func:`confirm_regions`."""
        ...


def check_method(method: str) -> None:
    """Raise ``ValueError`` unless ``method`` is one of :data:`METHODS`.

    Examples
    --------
    >>> check_method("cva")
    >>> check_method("mad")
    Traceback (most recent call last):
    ...
    ValueError: unknown method 'mad'; choose one of default, naive-cva, cva, irmad, diff, ratio, pca-diff, pca-kmeans, ndvi, ndbi, bui
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def warn_low_valid(valid_fraction: float, before_label: str, after_label: str) -> None:
    import warnings

    warnings.warn(f"only {valid_fraction:.1%} of the pixels are valid in both dates ({before_label} vs "
                  f"{after_label}); change figures rest on little data", LowValidDataWarning, stacklevel=3)


def detection_params(method: str, ctx: FitContext, *, alpha: float, min_area_m2: float, opening_radius: int,
                     increase_only: bool, window_size: int | None, sample: list[Window], grid: Grid,
                     confirmation: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``params`` block of a result: every parameter and fitted statistic."""
    fit_px = sum(int(w.height * w.width) for w in sample)
    params = {"method": method, "bands": list(ctx.bands), "alpha": alpha, "min_area_m2": min_area_m2,
              "region_peak_sigma": region_peak(method),
              "opening_radius_px": opening_radius, "increase_only": increase_only,
              "window_size": window_size, "halo_px": score_halo(method),
              "fit_sample": {"window_px": int(sample[0].width) if sample else FIT_WINDOW, "windows": len(sample), "pixels": fit_px,
                             "fraction_of_grid": round(fit_px / (grid.height * grid.width), 6)},
              **ctx.extra.get("report", {})}
    if ctx.rel is not None:
        params["radiometric_fit"] = ctx.rel.to_dict()
    if confirmation is not None:
        params["deep_confirmation"] = confirmation
    return params


def _fit(method: str, ctx: FitContext, windows: Any) -> None:
    bands = ctx.bands
    rep: dict[str, Any] = {}
    if method == "naive-cva":
        mb, ma = Moments.zeros(len(bands)), Moments.zeros(len(bands))
        for b, a, v in windows():
            x, y = b[:, v].astype(np.float64), a[:, v].astype(np.float64)
            mb.add(x, x, np.ones_like(x, bool))
            ma.add(y, y, np.ones_like(y, bool))
        n = np.maximum(mb.n, 1)
        ctx.extra["std"] = (mb.sx / n, np.sqrt(np.maximum(mb.sxx / n - (mb.sx / n) ** 2, 1e-12)),
                            ma.sx / n, np.sqrt(np.maximum(ma.sxx / n - (ma.sx / n) ** 2, 1e-12)))
    elif method == "irmad":
        mad = fit_irmad(windows, bands)
        ctx.extra["mad"] = mad
        ctx.rel = radcal_from_mad(windows, mad)
        ctx.extra["dof"] = len(bands)
        rep["irmad"] = mad.to_dict()
    elif method in ("diff", "ratio"):
        def bright() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            for b, a, v in windows():
                yield _transform1(method, b, bands), _transform1(method, a, bands), v
        ctx.rel = fit_relative(bright, (f"{method}:brightness",))
    elif method in ("ndvi", "ndbi", "bui"):
        def idx() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            for b, a, v in windows():
                yield _index(method, b, bands)[None], _index(method, a, bands)[None], v
        ctx.rel = fit_relative(idx, (method,))
    else:
        core = bands if method != "default" else ("blue", "green", "red", "nir")
        sel = [bands.index(x) for x in core]

        def sub() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            for b, a, v in windows():
                yield b[sel], a[sel], v
        ctx.rel = fit_relative(sub, tuple(core))
        ctx.extra["dof"] = len(core)
        if method in ("pca-diff", "pca-kmeans"):
            _fit_pca(method, ctx, windows, rep)
    ctx.extra.setdefault("dof", 1)
    ctx.extra["report"] = rep


def _transform1(method: str, x: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    br = _brightness(x, bands)
    if method == "ratio":
        return np.log(np.maximum(br, 1e-4)).astype(np.float32)
    return br.astype(np.float32)


def _pcak_features(z: np.ndarray) -> np.ndarray:
    """(M, N, h*h) blocks of the (M, N) difference image (edge-padded)."""
    h = _PCAK_BLOCK
    p = np.pad(z, h // 2, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(p, (h, h))
    return win.reshape(*z.shape, h * h)


def _fit_pca(method: str, ctx: FitContext, windows: Any, rep: dict[str, Any]) -> None:
    rel = ctx.rel
    assert rel is not None  # set just before
    if method == "pca-diff":
        cov = Covariance(len(rel.bands))
        for b, a, v in windows():
            z = rel.residuals(b, a)[:, v].T.astype(np.float64)
            cov.add(z[np.isfinite(z).all(1)])
        val, vec = np.linalg.eigh(cov.cov)
        ctx.extra["pc1"] = (vec[:, -1], math.sqrt(max(val[-1], 1e-12)))
        ctx.extra["dof"] = 1
        rep["pca"] = {"explained_variance": np.round(val[::-1] / max(val.sum(), 1e-12), 4).tolist()}
        return
    # Celik 2009: |difference| image, h x h blocks, PCA, 2-means.
    dim = _PCAK_BLOCK ** 2
    cov = Covariance(dim)
    for b, a, v in windows():
        z = np.abs(rel.residuals(b, a)).mean(0)
        f = _pcak_features(np.where(v, z, 0))[v].astype(np.float64)
        cov.add(f)
    val, vec = np.linalg.eigh(cov.cov)
    comps = vec[:, ::-1][:, :3]
    mean = cov.mean
    # two-class k-means in PCA space, centroids accumulated over windows each iteration
    c0 = np.zeros(3)
    c1 = (np.full(dim, 3.0) - mean) @ comps  # a block whose pixels all sit 3 sigma off
    for _ in range(10):
        s = np.zeros((2, 3))
        n = np.zeros(2)
        for b, a, v in windows():
            z = np.abs(rel.residuals(b, a)).mean(0)
            f = (_pcak_features(np.where(v, z, 0))[v] - mean) @ comps
            lab = (((f - c1) ** 2).sum(1) < ((f - c0) ** 2).sum(1))
            s[1] += f[lab].sum(0)
            n[1] += lab.sum()
            s[0] += f[~lab].sum(0)
            n[0] += (~lab).sum()
        if n.min() == 0:
            break
        new0, new1 = s[0] / n[0], s[1] / n[1]
        if np.allclose(new0, c0) and np.allclose(new1, c1):
            break
        c0, c1 = new0, new1
    ctx.extra["pcak"] = (mean, comps, c0, c1)
    rep["pca_kmeans"] = {"block_px": _PCAK_BLOCK, "components": 3, "centroids": [c0.tolist(), c1.tolist()]}


def _score_window(method: str, ctx: FitContext, b: np.ndarray, a: np.ndarray,
                  v: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Score of one (padded) window; pure, depends only on its pixels and ``ctx``."""
    bands = ctx.bands
    if method == "naive-cva":
        mb, sb, ma, sa = ctx.extra["std"]
        zb = (b - mb[:, None, None]) / sb[:, None, None]
        za = (a - ma[:, None, None]) / sa[:, None, None]
        return np.sqrt(((za - zb) ** 2).sum(0)).astype(np.float32), None
    rel = ctx.rel
    assert rel is not None
    if method == "irmad":
        return np.sqrt(np.maximum(ctx.extra["mad"].chi2(b, a), 0)), None
    if method in ("diff", "ratio"):
        return np.abs(rel.residuals(_transform1(method, b, bands), _transform1(method, a, bands))[0]), None
    if method in ("ndvi", "ndbi", "bui"):
        return np.abs(rel.residuals(_index(method, b, bands)[None], _index(method, a, bands)[None])[0]), None
    sel = [bands.index(x) for x in rel.bands]
    if method == "default":
        return _default_score(ctx, b, a, v, sel), None
    z = rel.residuals(b[sel], a[sel])
    if method == "cva":
        vis = [rel.bands.index(x) for x in ("blue", "green", "red")]
        d = np.degrees(np.arctan2(z[vis].mean(0), z[rel.bands.index("nir")])).astype(np.float32)
        return np.sqrt((z * z).sum(0)), d
    if method == "pca-diff":
        vec, sd = ctx.extra["pc1"]
        return np.abs(np.tensordot(vec, z, axes=1) / sd).astype(np.float32), None
    # pca-kmeans
    mean, comps, c0, c1 = ctx.extra["pcak"]
    f = (_pcak_features(np.where(v, np.abs(z).mean(0), 0)) - mean) @ comps
    d0 = np.sqrt(((f - c0) ** 2).sum(-1))
    d1 = np.sqrt(((f - c1) ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(d0 + d1 > 1e-9, d0 / (d0 + d1), 0.0)
    return s.astype(np.float32), None


def _default_score(ctx: FitContext, b: np.ndarray, a: np.ndarray, v: np.ndarray, sel: list[int]) -> np.ndarray:
    """The default detector's evidence on one window (float32 throughout, NaN outside ``v``):
    the magnitude of the per-band residuals (noise sigmas) averaged 3 × 3 over valid pixels,
    times ``clip((0.75 - veg) / 0.3, 0, 1)`` where ``veg`` is the 3 × 3 mean of the larger
    NDVI of the two dates, and 0 on water (NIR < 0.08 on both dates, or SWIR < 0.05 and
    NIR < 0.08 on either, grown by one pixel).  One compiled pass
    (:func:`campwatch._kernels.default_score`)."""
    from campwatch._kernels import default_score

    rel = ctx.rel
    assert rel is not None
    g = ctx.bands.index
    f32 = np.float32
    return default_score(b, a, v, np.asarray(sel, np.int64), rel.gain.astype(f32), rel.offset.astype(f32),
                         rel.sigma.astype(f32), g("nir"), g("red"), g("swir16") if "swir16" in ctx.bands else -1)
