"""Change detection: where two co-registered dates differ in a way that matters.

Pure module: arrays and :class:`~campwatch.scene.Scene` objects in, a :class:`ChangeResult`
out; it never opens a file.  Work is window by window, in passes:

1. **fit** — global statistics (radiometric fits, IR-MAD and PCA covariances, k-means
   centroids) are *accumulated* over windows (:mod:`campwatch.normalise`);
2. **score** — each window (read with a halo for the neighbourhood steps: the score and the
   morphological opening) gets its change score; the scores are counted into one fixed-bin
   :class:`~campwatch.threshold.Histogram`;
3. **threshold** — chosen once from the global histogram, never per window (a threshold known
   beforehand, ``chi2`` or ``fixed``, gives each window's hits in pass 2; otherwise a second
   score pass gives them);
4. **clean** — the minimum mapping unit on the assembled bit-packed hit mask (connected
   components can cross windows).

The sequence is written once, in :func:`run_passes`; :func:`detect_change` runs it over
in-memory windows (:class:`SceneWindows`), the streaming engine over windows it reads from files,
and :func:`clean_mask` runs its clean-up (:func:`score_hits`, :class:`HitMask`) on known scores.

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

import html
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from rasterio.windows import Window
from scipy import ndimage as ndi

from campwatch.errors import GridMismatchError, LowValidDataWarning
from campwatch.grid import Grid
from campwatch.normalise import (
    Covariance,
    Moments,
    RelativeFit,
    fit_irmad,
    fit_relative,
    radcal_from_mad,
)
from campwatch.scene import Scene
from campwatch.threshold import Histogram, ThresholdChoice, ThresholdMethod, chi2_threshold, otsu, select_threshold
from campwatch.vhr.deep import DEEP_BLOCKS, deep_change, deep_moments

__all__ = ["ChangeResult", "detect_change", "Method", "METHODS", "METHOD_BANDS", "clean_mask",
           "rgb_composite", "NODATA", "MIN_VALID_FRACTION", "Components", "fit_windows", "threshold_open", "change_overlay",
           "QUICKLOOK_LEGEND", "REGION_PEAK_SIGMA", "region_peak", "region_seeds", "FitContext", "window_slices",
           "WindowChange", "detect_window", "window_hits", "to_mask", "change_figures", "check_method",
           "BitRows", "HitMask", "Passes", "SceneWindows", "score_hits", "WindowSource", "inner_slices", "run_passes"]

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

#: Mask value for no data in ``ChangeResult.mask``.
NODATA = 255
#: Below this share of pixels valid on both dates a comparison warns
#: (:class:`~campwatch.errors.LowValidDataWarning`): its figures rest on little data.
MIN_VALID_FRACTION = 0.05
_HIST_MAX = 64.0
_PCAK_BLOCK = 5


# --------------------------------------------------------------------------------------
# small pure helpers
# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ChangeResult:
    """The outcome of one comparison.

    Attributes
    ----------
    score : (M, N) float32 ndarray
        Change evidence (sigma units for most methods), NaN where no data.
    mask : (M, N) uint8 ndarray
        1 change, 0 no change, 255 no data.
    grid : Grid
    method : str
    threshold : ThresholdChoice
    histogram : Histogram
        Counts of the valid scores, from which the threshold was chosen.
    valid_fraction : float
    changed_area_m2 : float
        Sum of the geodesic areas of the change pixels (``grid.pixel_area_m2()``).
    direction : (M, N) float32 ndarray or None
        CVA direction in degrees (``cva`` only).
    coregistration : dict or None
        ``Shift.to_dict()`` when the dates were co-registered.
    structures : GrowthResult or None
        Built-up footprint growth between the dates
        (:func:`campwatch.structures.footprint_growth`), when computed by ``compare_scenes``.
    params : dict
        Every parameter and fitted statistic, for provenance.
    """

    score: np.ndarray
    mask: np.ndarray
    grid: Grid
    method: str
    threshold: ThresholdChoice
    histogram: Histogram
    valid_fraction: float
    changed_area_m2: float
    direction: np.ndarray | None = None
    coregistration: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    structures: Any = None

    @property
    def changed_fraction(self) -> float:
        """Changed pixels over valid pixels (by area)."""
        tot = self.valid_area_m2
        return self.changed_area_m2 / tot if tot > 0 else 0.0

    @property
    def valid_area_m2(self) -> float:
        return float(((self.mask != NODATA) * self.grid.pixel_area_m2()).sum())

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (no pixels): :func:`change_figures`."""
        return change_figures(self.method, self.threshold, changed_area_m2=self.changed_area_m2,
                              valid_area_m2=self.valid_area_m2, changed_pixels=int((self.mask == 1).sum()),
                              valid_fraction=self.valid_fraction, grid=self.grid, coregistration=self.coregistration,
                              params=self.params)

    def __repr__(self) -> str:
        return (f"ChangeResult(method={self.method!r}, threshold={self.threshold.value:.4g}, "
                f"changed_area_m2={self.changed_area_m2:.0f}, changed_fraction={self.changed_fraction:.4%}, "
                f"valid={self.valid_fraction:.1%}, shape={self.grid.shape})")

    def _repr_html_(self) -> str:
        rows = [("method", self.method),
                ("threshold", f"{self.threshold.value:.4g} ({self.threshold.method}) {self.threshold.note}"),
                ("changed area", f"{self.changed_area_m2:,.0f} m²"),
                ("changed fraction", f"{self.changed_fraction:.3%}"),
                ("valid fraction", f"{self.valid_fraction:.1%}"),
                ("grid", f"{self.grid.shape} px, {self.grid.pixel_size_m():.1f} m, {self.grid.crs.to_string()}"),
                ("co-registration", self.coregistration or "not applied")]
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table><caption>campwatch ChangeResult</caption>{body}</table>"


def change_figures(method: str, threshold: ThresholdChoice, *, changed_area_m2: float, valid_area_m2: float,
                   changed_pixels: int, valid_fraction: float, grid: Grid, coregistration: dict[str, Any] | None,
                   params: dict[str, Any]) -> dict[str, Any]:
    """The figures a change summary opens with, rounded as they are stated
    (:meth:`ChangeResult.summary`, and the streaming engine's ``summary.json``).

    ``changed_fraction`` is by area: the changed over the valid area (0 when nothing is valid).
    """
    return {
        "method": method,
        "threshold": threshold.to_dict(),
        "changed_area_m2": round(changed_area_m2, 1),
        "changed_fraction": round(changed_area_m2 / valid_area_m2, 6) if valid_area_m2 > 0 else 0.0,
        "changed_pixels": changed_pixels,
        "valid_fraction": round(valid_fraction, 6),
        "valid_area_m2": round(valid_area_m2, 1),
        "pixel_size_m": round(grid.pixel_size_m(), 3),
        "grid": grid.to_dict(),
        "coregistration": coregistration,
        "params": params,
    }


# --------------------------------------------------------------------------------------
# windowing
# --------------------------------------------------------------------------------------
def window_slices(win: Window) -> tuple[slice, slice]:
    """The (row, column) slices of a window, for indexing an array on the same grid.

    >>> window_slices(Window(2, 1, 3, 4))
    (slice(1, 5, None), slice(2, 5, None))
    """
    r, c = int(win.row_off), int(win.col_off)
    return slice(r, r + int(win.height)), slice(c, c + int(win.width))


def inner_slices(core: Window, pad: Window) -> tuple[slice, slice]:
    """The (row, column) slices of ``core`` within ``pad`` (the window grown by its halo).

    >>> inner_slices(Window(4, 4, 2, 2), Window(2, 3, 6, 5))
    (slice(1, 3, None), slice(2, 4, None))
    """
    r, c = int(core.row_off - pad.row_off), int(core.col_off - pad.col_off)
    return slice(r, r + int(core.height)), slice(c, c + int(core.width))


# --------------------------------------------------------------------------------------
# the detector
# --------------------------------------------------------------------------------------
#: The global fit (pass 1) uses the pixels of ``FIT_WINDOW``-px windows: every window up to
#: ``FIT_ALL_PIXELS`` pixels, beyond that a regular lattice of them (see :func:`fit_windows`).
FIT_WINDOW = 512
FIT_ALL_PIXELS = 2 ** 23
#: Lattice windows are cut ``FIT_INSET`` px inside their 512 px cell, so that a window read
#: with the preparation halo (clouds, shift) stays inside one 512 px file block: the fit
#: then decodes 25 blocks per band of a full tile instead of about 225.
FIT_INSET = 16
#: Rows per strip when connected components are labelled (min mapping unit, polygons).
COMPONENT_STRIP = 1024
#: Hysteresis of the ``default`` detector: a change region (8-connected pixels above the
#: chi-square level) is kept only if its strongest pixel's 3 × 3 evidence exceeds this many
#: noise sigmas.  The chi-square level alone admits every region whose pixels are
#: individually unlikely as noise; most false regions are real but weak spectral change
#: (fields, shadows, cars) that never rises far above it, while new roofs and roads have a
#: strong core.  Chosen leave-one-city-out on the 7 labelled OSCD cities from 7 to 14 sigma:
#: 10 in 6 folds, 11 in the 7th (pooled held-out F1 0.289 -> 0.324, 6 of 7 cities up;
#: see ``campwatch bench oscd``).
REGION_PEAK_SIGMA = 10.0
_EIGHT = np.ones((3, 3), bool)


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


@dataclass(frozen=True, eq=False)
class WindowChange:
    """One window's part of the score pass (:func:`detect_window`), on the window's core.

    Attributes
    ----------
    score : (m, n) float32 ndarray
        NaN where not valid.
    valid : (m, n) bool ndarray
        Valid on both dates (and any extra validity the caller gave).
    hit : (m, n) bool ndarray or None
        Thresholded, opened and valid (before the minimum mapping unit); None when no
        threshold was given (it is chosen from the scores' histogram afterwards).
    direction : (m, n) float32 ndarray or None
        CVA direction in degrees (``cva`` only).
    core : Window or None
        The core on the grid, when the caller gave it (``window``).
    counts : (K,) int64 ndarray or None
        The core scores' counts in the bins of :func:`new_histogram`, when asked for (``histogram``).
    """

    score: np.ndarray
    valid: np.ndarray
    hit: np.ndarray | None = None
    direction: np.ndarray | None = None
    core: Window | None = None
    counts: np.ndarray | None = None


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


def window_hits(score: np.ndarray, threshold: float, core: tuple[slice, slice], *, valid: np.ndarray,
                keep: np.ndarray | None = None, opening_radius: int = 0) -> np.ndarray:
    """The change pixels of a window's core before the minimum mapping unit:
    :func:`threshold_open` of the window (or of the core alone without an opening), cut to
    the core, and ``valid``.

    ``score`` and ``keep`` are on the window, read with at least ``2 * opening_radius``
    pixels of halo; ``valid`` is on the core.
    """
    part = (slice(None), slice(None)) if opening_radius else core
    hit = threshold_open(score[part], threshold, keep=None if keep is None else keep[part],
                         opening_radius=opening_radius)
    if opening_radius:
        hit = hit[core]
    return hit & valid


def increase_mask(b: np.ndarray, a: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    """True where the 10 m built-up index (``bui``) rose (``increase_only``)."""
    sel = [bands.index(x) for x in METHOD_BANDS["bui"]]
    return _bui(a[sel], METHOD_BANDS["bui"]) > _bui(b[sel], METHOD_BANDS["bui"])


def changed_area_m2(row_counts: np.ndarray, grid: Grid) -> float:
    """Area of ``row_counts[i]`` changed pixels in each row ``i`` (geodesic row areas)."""
    return float(np.dot(row_counts.astype(np.float64), grid.pixel_area_m2()[:, 0]))


# --------------------------------------------------------------------------------------
# the passes: one driver, whether the windows are in memory or read from files
# --------------------------------------------------------------------------------------
class BitRows:
    """An (M, N) bool mask stored one bit per pixel (a full tile: 15 MB instead of 120 MB);
    row slices read back as bool arrays, so :class:`Components` takes it.

    Examples
    --------
    >>> m = BitRows((3, 10))
    >>> m.put((slice(1, 3), slice(3, 6)), np.ones((2, 3), bool))
    >>> m[1:2].astype(int).tolist(), m.shape
    ([[0, 0, 0, 1, 1, 1, 0, 0, 0, 0]], (3, 10))
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.bits = np.zeros((self.shape[0], -(-self.shape[1] // 8)), np.uint8)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.unpackbits(self.bits[rows], axis=1, count=self.shape[1]).view(bool)

    def put(self, sl: tuple[slice, slice], values: np.ndarray) -> None:
        """Set the pixels of the window ``sl`` (row and column slices with explicit bounds)."""
        c0, c1 = int(sl[1].start), int(sl[1].stop)
        if c0 % 8 == 0 and (c1 % 8 == 0 or c1 == self.shape[1]):  # whole bytes (every window but
            self.bits[sl[0], c0 // 8:-(-c1 // 8)] = np.packbits(values, axis=1)  # in small grids)
            return
        b0, b1 = c0 // 8, -(-c1 // 8)
        block = np.unpackbits(self.bits[sl[0], b0:b1], axis=1).view(bool)
        block[:, c0 - 8 * b0:c1 - 8 * b0] = values
        self.bits[sl[0], b0:b1] = np.packbits(block, axis=1)


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


class HitMask:
    """The hit pixels of the score passes, window by window, with their region seeds
    (:func:`region_seeds`), bit-packed, and the minimum mapping unit over them
    (:meth:`components`): the clean-up of :func:`run_passes` and of :func:`clean_mask`.

    Parameters
    ----------
    shape : (int, int)
        The grid's (M, N).
    peak : float or None
        :func:`region_peak`: a region is kept only if one of its pixels scores above it
        (None: no such test).
    """

    def __init__(self, shape: tuple[int, int], *, peak: float | None) -> None:
        self.peak = peak
        self.hit = BitRows(shape)
        self.strong = BitRows(shape) if peak is not None else None

    def add(self, w: WindowChange) -> None:
        """One window's hits, and its region seeds."""
        assert w.hit is not None
        sl = window_slices(_core(w))
        self.hit.put(sl, w.hit)
        if self.strong is not None and self.peak is not None:
            self.strong.put(sl, region_seeds(w.hit, w.score, self.peak))

    def components(self, grid: Grid, *, min_area_m2: float, workers: int = 1) -> Components:
        """:class:`Components` of the hits: regions below ``min_area_m2`` (or without a seed) dropped."""
        return Components(self.hit, grid.pixel_area_m2(), min_area_m2=max(min_area_m2, 0.0), seed=self.strong,
                          workers=workers)


@dataclass(eq=False)
class Passes:
    """What :func:`run_passes` measured: the fit, the threshold, the histogram, the
    bit-packed valid mask and the :class:`HitMask` with its :class:`Components`."""

    grid: Grid
    method: str
    sample: list[Window]
    ctx: FitContext
    #: The threshold was known before the scores were (``chi2``, ``fixed``).
    known: bool
    hist: Histogram
    valid: BitRows
    hits: HitMask
    valid_rows: np.ndarray
    choice: ThresholdChoice | None = None
    components: Components | None = None
    #: What :func:`confirm_regions` did (None: the method's regions are not confirmed).
    confirmation: dict[str, Any] | None = None

    def add(self, w: WindowChange) -> None:
        """One window of the first score pass: validity, histogram counts, hits."""
        sl = window_slices(_core(w))
        self.valid.put(sl, w.valid)
        self.valid_rows[sl[0]] += w.valid.sum(1)
        if w.counts is not None:
            self.hist.counts += w.counts
        if w.hit is not None:
            self.hits.add(w)


def _core(w: WindowChange) -> Window:
    if w.core is None:
        raise ValueError("run_passes needs each window's core (detect_window(..., window=core))")
    return w.core


def run_passes(method: str, bands: tuple[str, ...], grid: Grid, source: WindowSource, *, threshold: str,
               value: float | None, alpha: float, min_area_m2: float, always_histogram: bool = False,
               workers: int = 1, on_window: Callable[[WindowChange, Any, bool], None] | None = None,
               progress: Callable[[str, int, int], None] | None = None,
               stage: Callable[[str], None] | None = None, deep_confirm: bool = True) -> Passes:
    """The detector's passes over the windows of ``source``: fit, score (and hits), threshold,
    minimum mapping unit.  :func:`detect_change` runs it over in-memory windows
    (:class:`SceneWindows`) and the streaming engine over windows read from files, so a step
    added here applies to both.

    1. **fit**: :func:`fit_context` over the :func:`fit_windows` of ``grid``;
    2. **score**: every window (:func:`detect_window`); with a threshold known beforehand
       (``chi2``, ``fixed``) its hits come in the same pass, otherwise the scores are counted
       into the histogram, the threshold chosen from it (:func:`choose_threshold`) and a
       second pass gives the hits;
    3. **minimum mapping unit**: :class:`Components` of the hits, seeded by
       :func:`region_seeds` (:func:`region_peak`), both held by a :class:`HitMask` (the
       clean-up :func:`clean_mask` runs too);
    4. **confirmation** (methods in :data:`DEEP_CONFIRMED`, unless ``deep_confirm`` is False):
       :func:`confirm_regions`.

    ``always_histogram`` counts the scores even when the threshold does not need them (the
    in-memory result carries the histogram).  ``on_window(change, extra, first)`` sees every
    window (``extra``: what the source added); ``progress(stage, done, total)`` is called per
    window of the stages ``fit``, ``score`` and ``threshold`` and per strip of ``confirm``,
    ``stage(name)`` as each of ``fit``, ``score``, ``mask`` (the components), ``confirm`` and
    ``mask`` again (what the caller does with the components) begins.
    """
    tick = progress or (lambda stage, done, total: None)
    mark = stage or (lambda name: None)
    sample = fit_windows(grid)
    mark("fit")
    parts = []
    for i, part in enumerate(source.fit(sample), 1):
        parts.append(part)
        tick("fit", i, len(sample))
    ctx = fit_context(method, bands, lambda: iter(parts))
    stats = deep_stats(parts, bands) if method in DEEP_CONFIRMED and deep_confirm else None
    parts = []  # the fit sample is no longer needed
    method_t, value = resolve_threshold(method, threshold, value)
    known = method_t in ("chi2", "fixed")
    choice = choose_threshold(method, ctx, new_histogram(method), threshold=threshold, value=value,
                              alpha=alpha) if known else None
    p = Passes(grid, method, sample, ctx, known, new_histogram(method), BitRows(grid.shape),
               HitMask(grid.shape, peak=region_peak(method)), np.zeros(grid.height, np.int64), choice)
    mark("score")
    n = source.n_windows()
    for i, (w, extra) in enumerate(source.scored(ctx, choice.value if choice else None, first=True,
                                                 histogram=always_histogram or not known), 1):
        p.add(w)
        if on_window is not None:
            on_window(w, extra, True)
        tick("score", i, n)
    if choice is None:
        choice = p.choice = choose_threshold(method, ctx, p.hist, threshold=threshold, value=value, alpha=alpha)
        for i, (w, extra) in enumerate(source.scored(ctx, choice.value, first=False, histogram=False), 1):
            p.hits.add(w)
            if on_window is not None:
                on_window(w, extra, False)
            tick("threshold", i, n)
    mark("mask")
    p.components = p.hits.components(grid, min_area_m2=min_area_m2, workers=workers)
    if stats is not None:
        mark("confirm")
        p.confirmation = confirm_regions(p.components, p.valid, source, stats, bands, workers=workers,
                                         progress=lambda done, total: tick("confirm", done, total))
        mark("mask")  # the caller's mask strips follow
    elif method in DEEP_CONFIRMED:
        p.confirmation = {"method": "skipped", "note": "deep_confirm=False: change regions are not confirmed by "
                          "deep features (pooled F1 on the 7 OSCD cities 0.326 without, 0.357 with)"}
    return p


#: Methods whose change regions :func:`confirm_regions` keeps only where a pretrained
#: network's features changed too.
DEEP_CONFIRMED = ("default",)
#: Edge of the tiles the network runs on, and the rows and columns read around each (its
#: reach, :data:`campwatch.vhr.deep.MIN_HALO`, with room; both multiples of 16 so every tile's
#: features line up with the grid's).
DEEP_TILE, DEEP_HALO = 1024, 128
_RGB = ("red", "green", "blue")


@dataclass(frozen=True)
class DeepStats:
    """The scene statistics :func:`confirm_regions` needs, from the fit sample: each date's
    red, green and blue 99th percentiles (the network sees each band over its own, as
    :func:`campwatch.vhr.rgb_stack` scales VHR scenes) and the network channels' moments
    (:func:`campwatch.vhr.deep.deep_moments`, summed over the fit windows)."""

    scale_before: np.ndarray
    scale_after: np.ndarray
    moments: dict[int, np.ndarray]
    pixels: int

    def rgb(self, data: np.ndarray, bands: tuple[str, ...], *, after: bool) -> np.ndarray:
        """The network's input from one date's ``data`` in ``bands`` order."""
        scale = self.scale_after if after else self.scale_before
        return data[[bands.index(b) for b in _RGB]] / scale[:, None, None]


def deep_stats(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], bands: tuple[str, ...]) -> DeepStats | None:
    """:class:`DeepStats` from the fit windows' ``(before, after, valid)`` (None: no valid pixel)."""
    idx = [bands.index(b) for b in _RGB]
    if not any(v.any() for _, _, v in parts):
        return None
    scales = [np.array([np.percentile(np.concatenate([x[i][v] for x, v in ((b if k == 0 else a, v)
                                                                             for b, a, v in parts) if v.any()]), 99.0)
                        for i in idx]) for k in (0, 1)]
    scales = [np.where(s > 0, s, 1.0) for s in scales]
    stats = DeepStats(scales[0], scales[1], {}, int(sum(v.sum() for _, _, v in parts)))
    for b, a, v in parts:
        if not v.any():
            continue
        for i, m in deep_moments(stats.rgb(b, bands, after=False), stats.rgb(a, bands, after=True), v,
                                 tile=DEEP_TILE, halo=DEEP_HALO).items():
            stats.moments[i] = stats.moments[i] + m if i in stats.moments else m
    return stats


def confirm_regions(comps: Components, valid: BitRows, source: WindowSource, stats: DeepStats,
                    bands: tuple[str, ...], *, workers: int = 1,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Keep the change regions whose pixels' deep change averages above the scene's Otsu cut.

    The deep change is :func:`campwatch.vhr.deep.deep_change` (DCVA with EfficientNet-lite0's
    ImageNet features, no training) of both dates' red, green and blue, in :data:`DEEP_TILE`
    tiles read with a :data:`DEEP_HALO` margin, each network channel in units of its spread
    over the fit sample (:class:`DeepStats`).  Only tiles that hold a kept region are run;
    the cut is Otsu's over the valid pixels of those tiles, so it comes from the scene, not
    from a constant.  A region is kept when the mean deep change over its pixels exceeds
    the cut: a decision per region, as the region peak is.  ``comps`` is changed in place
    (:meth:`Components.keep_only`).  ``workers`` threads run a strip's tiles (the result does
    not depend on it); ``progress(done, total)`` is called per strip of ``comps``.
    Returns the summary's ``deep_confirmation`` block.

    Measured on the 7 labelled OSCD cities of ``../shared/data/oscd`` (``campwatch bench
    oscd``): see the module docstring.
    """
    m, n = valid.shape
    hist = Histogram.linear(0.0, 4.0, bins=2048)
    sums = np.zeros(comps.kept_count + 1)
    counts = np.zeros(comps.kept_count + 1)
    scored_px = 0
    def tile_change(r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        pr0, pc0 = max(r0 - DEEP_HALO, 0), max(c0 - DEEP_HALO, 0)
        pad = Window(pc0, pr0, min(c1 + DEEP_HALO, n) - pc0, min(r1 + DEEP_HALO, m) - pr0)
        b, a, v = source.read(pad)
        size = -(-max(int(pad.height), int(pad.width)) // 16) * 16
        d = deep_change(stats.rgb(b, bands, after=False), stats.rgb(a, bands, after=True), v,
                        tile=size, halo=DEEP_HALO, moments=stats.moments)
        core = (slice(r0 - pr0, r1 - pr0), slice(c0 - pc0, c1 - pc0))
        return d[core], v[core]

    with ThreadPoolExecutor(max(1, workers)) as pool:  # the network's numpy releases the GIL
        for k, (r0, r1) in enumerate(comps.bounds):
            lab = comps.labels(k)
            cols = [(c0, min(c0 + DEEP_TILE, n)) for c0 in range(0, n, DEEP_TILE)]
            tiles = [(r0, r1, c0, c1) for c0, c1 in cols if lab[:, c0:c1].any()]
            ok_rows = valid[r0:r1] if tiles else np.zeros((0, n), bool)
            for (_, _, c0, c1), (d, v) in zip(tiles, pool.map(lambda t: tile_change(*t), tiles), strict=True):
                ids = lab[:, c0:c1]
                ok = ok_rows[:, c0:c1] & v
                hist.add(d[ok])
                scored_px += int(ok.sum())
                sums += np.bincount(ids[ok], weights=d[ok], minlength=len(sums))
                counts += np.bincount(ids[ok], minlength=len(counts))
            if progress is not None:
                progress(k + 1, len(comps.bounds))
    before = comps.kept_count
    if not before:
        return {"method": "deep", "cut": None, "regions": 0, "confirmed": 0, "pixels_scored": 0}
    cut = otsu(hist)
    keep = (counts > 0) & (sums > cut * counts)
    comps.keep_only(keep)
    return {"method": "deep", "cut": round(float(cut), 6), "regions": before, "confirmed": comps.kept_count,
            "pixels_scored": scored_px, "network": "EfficientNet-lite0 (ImageNet), blocks " +
            ", ".join(str(b) for b in DEEP_BLOCKS), "tile_px": DEEP_TILE, "halo_px": DEEP_HALO,
            "spread_sample_pixels": stats.pixels}


class SceneWindows:
    """The in-memory :class:`WindowSource`: the band arrays of two prepared dates (clouds masked,
    AFTER shifted) cut into ``window_size`` windows, each with the halo the score and the
    opening need.  The first score pass fills :attr:`score` (and :attr:`direction` for
    ``cva``) over the whole grid; a second pass takes its hits from them instead of scoring again.

    Parameters
    ----------
    method : str
    before, after : (B, M, N) ndarray
        The scored bands of each date.
    valid : (M, N) bool ndarray
        Valid on both dates (and any extra validity).
    grid : Grid
    window_size : int or None
        Window edge (None: one window).
    opening_radius : int
    keep : (M, N) bool ndarray, optional
        As for :func:`threshold_open` (``increase_only``).
    """

    def __init__(self, method: str, before: np.ndarray, after: np.ndarray, valid: np.ndarray, grid: Grid, *,
                 window_size: int | None, opening_radius: int = 0, keep: np.ndarray | None = None) -> None:
        self.method, self.before, self.after, self.valid, self.grid = method, before, after, valid, grid
        self.opening_radius, self.keep = opening_radius, keep
        halo = score_halo(method) + 2 * opening_radius
        self.windows = list(grid.tiles(window_size or max(grid.shape), halo=halo))
        self.score = np.full(grid.shape, np.nan, dtype=np.float32)
        self.direction = np.full(grid.shape, np.nan, dtype=np.float32) if method == "cva" else None

    def fit(self, windows: list[Window]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for w in windows:
            cs = window_slices(w)
            yield self.before[(slice(None), *cs)], self.after[(slice(None), *cs)], self.valid[cs]

    def n_windows(self) -> int:
        return len(self.windows)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return next(self.fit([window]))

    def scored(self, ctx: FitContext, threshold: float | None, *, first: bool,
               histogram: bool) -> Iterator[tuple[WindowChange, Any]]:
        if not first:  # the scores are known: only the hits are new
            assert threshold is not None
            for w in score_hits(self.score, threshold, self.windows, valid=self.valid, keep=self.keep,
                                opening_radius=self.opening_radius):
                yield w, None
            return
        for core, pad in self.windows:
            ps, cs, inner = window_slices(pad), window_slices(core), inner_slices(core, pad)
            keep = None if self.keep is None or threshold is None else self.keep[ps]
            w = detect_window(self.method, ctx, self.before[(slice(None), *ps)], self.after[(slice(None), *ps)],
                              self.valid[ps], inner, threshold=threshold, keep=keep,
                              opening_radius=self.opening_radius, window=core, histogram=histogram)
            self.score[cs] = w.score
            if self.direction is not None and w.direction is not None:
                self.direction[cs] = w.direction
            yield w, None


def score_hits(score: np.ndarray, threshold: float, windows: Iterable[tuple[Window, Window]], *,
               valid: np.ndarray, keep: np.ndarray | None = None,
               opening_radius: int = 0) -> Iterator[WindowChange]:
    """The hits of each ``(core, padded)`` window of scores known on the whole grid
    (:func:`window_hits`): the second score pass of :class:`SceneWindows` and the windows of
    :func:`clean_mask`.  ``threshold_open`` reads exact scores up to ``2 * opening_radius``
    pixels from the core, as a pass that scores the window again would; the padded windows
    need that halo.

    ``score``, ``valid`` and ``keep`` are (M, N) arrays on the grid.
    """
    for core, pad in windows:
        ps, cs, inner = window_slices(pad), window_slices(core), inner_slices(core, pad)
        hit = window_hits(score[ps], threshold, inner, valid=valid[cs], keep=None if keep is None else keep[ps],
                          opening_radius=opening_radius)
        yield WindowChange(score[cs], valid[cs], hit, None, core)


def detect_change(before: Scene, after: Scene, *, method: Method = "default",
                  threshold: ThresholdMethod | Literal["auto"] = "auto", value: float | None = None,
                  alpha: float = 1e-6, min_area_m2: float = 200.0, opening_radius: int = 0,
                  increase_only: bool = False, valid: np.ndarray | None = None,
                  window_size: int | None = 512,
                  min_valid_fraction: float = MIN_VALID_FRACTION, deep_confirm: bool = True) -> ChangeResult:
    """Say where two aligned dates differ in a way that matters.

    Parameters
    ----------
    before, after : Scene
        Two dates on the same grid (read ``after`` with ``grid=before.grid``).
    method : str
        One of :data:`METHODS`; see the module docstring.
    threshold : {"auto", "otsu", "ki", "chi2", "fixed"}
        ``auto`` is ``chi2`` for the sigma-unit scores, ``otsu`` for ``naive-cva`` and
        ``fixed`` 0.5 for ``pca-kmeans``.
    value : float, optional
        The threshold for ``fixed``.
    alpha : float
        Significance level of the ``chi2`` test; also sets the noise floor under Otsu and
        KI for sigma-unit scores, so a no-change pair is not forced to show change.
    min_area_m2 : float
        Minimum mapping unit: change regions (8-connected) smaller than this are dropped.
    opening_radius : int
        Radius in pixels of a morphological opening of the mask (0: none).
    increase_only : bool
        Keep only pixels where the 10 m built-up index (``bui``) increased.
    valid : (M, N) bool ndarray, optional
        Extra validity (AOI, clouds): False pixels become no data.
    window_size : int or None
        Window edge in pixels (None: one window).  Results do not depend on it; the
        global fit always uses :func:`fit_windows`.
    deep_confirm : bool
        The default method keeps a change region only where a pretrained network's features
        changed too (:func:`campwatch.detect.confirm_regions`); False skips that step (about
        1 s per megapixel and date; the summary says it was skipped).

    Returns
    -------
    ChangeResult

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> b = read_scene("data/sample_tiles/rennes/imgs_1", bands=["blue", "green", "red", "nir", "swir16"])
    >>> a = read_scene("data/sample_tiles/rennes/imgs_2", grid=b.grid, bands=list(b.bands))
    >>> r = detect_change(b, a)
    >>> r.mask.dtype.name, 0.0 < r.changed_fraction < 0.1, r.threshold.method
    ('uint8', True, 'chi2')
    >>> detect_change(b, b).changed_area_m2
    0.0
    """
    check_method(method)
    if not before.grid.same_as(after.grid):
        raise GridMismatchError(
            f"before ({before.label}) and after ({after.label}) are on different grids: {before.grid!r} vs "
            f"{after.grid!r}; read the second date with grid=before.grid")
    before.require(METHOD_BANDS[method], method=f"method {method!r}")
    after.require(METHOD_BANDS[method], method=f"method {method!r}")
    if increase_only:
        before.require(METHOD_BANDS["bui"], method="increase_only")
    bands = detection_bands(method, before.bands, after.bands)
    grid = before.grid
    ok = before.valid & after.valid
    if valid is not None:
        if valid.shape != grid.shape:
            raise GridMismatchError(f"valid mask shape {valid.shape} does not match the grid {grid.shape}")
        ok = ok & valid
    valid_fraction = float(ok.mean())
    if valid_fraction < min_valid_fraction:
        warn_low_valid(valid_fraction, before.label, after.label)
    xb = before.select(bands).data
    xa = after.select(bands).data
    increase = None
    if increase_only:
        ib, ia = before.select(METHOD_BANDS["bui"]).data, after.select(METHOD_BANDS["bui"]).data
        increase = increase_mask(ib, ia, METHOD_BANDS["bui"])
    source = SceneWindows(method, xb, xa, ok, grid, window_size=window_size, opening_radius=opening_radius,
                          keep=increase)
    p = run_passes(method, bands, grid, source, threshold=threshold, value=value, alpha=alpha,
                   min_area_m2=min_area_m2, always_histogram=True, deep_confirm=deep_confirm)
    score, direction = source.score, source.direction
    assert p.components is not None and p.choice is not None
    mask = p.components.to_mask(p.valid)
    area = changed_area_m2((mask == 1).sum(1), grid)
    params = detection_params(method, p.ctx, alpha=alpha, min_area_m2=min_area_m2, opening_radius=opening_radius,
                              increase_only=increase_only, window_size=window_size, sample=p.sample, grid=grid,
                              confirmation=p.confirmation)
    return ChangeResult(score, mask, grid, method, p.choice, p.hist, valid_fraction, area, direction, None, params)


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


def region_peak(method: str) -> float | None:
    """The score a change region's strongest pixel must exceed for the region to be kept
    (:data:`REGION_PEAK_SIGMA` for ``default``; None, no such test, for the other methods).

    Examples
    --------
    >>> region_peak("default"), region_peak("naive-cva")
    (10.0, None)
    """
    return REGION_PEAK_SIGMA if method == "default" else None


def region_seeds(hit: np.ndarray, score: np.ndarray, peak: float) -> np.ndarray:
    """The ``hit`` pixels whose score exceeds ``peak`` (:func:`region_peak`): a change region
    is kept only if it holds one (:class:`Components` ``seed``).

    Examples
    --------
    >>> region_seeds(np.array([True, True, False]), np.array([12.0, np.nan, 11.0]), 10.0).tolist()
    [True, False, False]
    """
    with np.errstate(invalid="ignore"):
        return hit & np.greater(score, peak)  # NaN (no data) is never above it


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


# --------------------------------------------------------------------------------------
# clean-up
# --------------------------------------------------------------------------------------
def threshold_open(score: np.ndarray, threshold: float, *, keep: np.ndarray | None = None,
                   opening_radius: int = 0) -> np.ndarray:
    """``score > threshold`` (and ``keep``), opened with a disc of ``opening_radius``.

    The opening reaches ``2 * opening_radius`` pixels: a window read with that halo
    gives exact values in its core.
    """
    with np.errstate(invalid="ignore"):
        w = np.greater(score, threshold)  # NaN (no data) is never above it
    if keep is not None:
        w &= keep
    if opening_radius:
        w = ndi.binary_opening(w, structure=_disk(opening_radius))
    return w


class Components:
    """8-connected components of a large (M, N) bool mask, labelled strip by strip.

    Each strip of :data:`COMPONENT_STRIP` rows is labelled on its own (int32 labels for
    one strip at a time, never for the whole mask); labels that touch across a strip
    border (8-connectivity) are merged with a union-find over the border pairs.  Areas
    are summed per strip label, then per component, in the same order whatever
    produced the mask, so an in-memory and a streamed run keep the same regions.

    Parameters
    ----------
    hit : (M, N) bool ndarray
        Or any object with ``shape`` whose row slices ``hit[r0:r1]`` are bool arrays
        (the bit-packed :class:`BitRows` of :func:`run_passes`).
    row_areas : (M, 1) ndarray
        Area of a pixel in each row (``Grid.pixel_area_m2()``).
    min_area_m2 : float
        Components with a smaller area are dropped (``kept`` False, object id 0).
    seed : (M, N) bool ndarray or like ``hit``, optional
        When given, a component is kept only if at least one of its pixels is a seed
        (hysteresis: the region's peak evidence must reach a stricter level, see
        :data:`REGION_PEAK_SIGMA`).  Seeds outside ``hit`` are ignored.
    strip : int
        Rows per strip.
    workers : int
        Threads labelling strips (``ndimage.label`` releases the GIL); the result does not
        depend on it.

    Examples
    --------
    >>> hit = np.zeros((5, 4), bool); hit[0, 0] = True; hit[2:5, 1:3] = True
    >>> c = Components(hit, np.full((5, 1), 100.0), min_area_m2=200, strip=2)
    >>> c.count, c.kept_count, c.labels(1).tolist()
    (2, 1, [[0, 1, 1, 0], [0, 1, 1, 0]])
    >>> seed = np.zeros((5, 4), bool); seed[0, 0] = True    # only the lone pixel is strong
    >>> Components(hit, np.full((5, 1), 100.0), seed=seed, strip=2).kept_count
    1
    """

    def __init__(self, hit: Any, row_areas: np.ndarray, *, min_area_m2: float = 0.0, seed: Any = None,
                 strip: int = COMPONENT_STRIP, workers: int = 1) -> None:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        self.hit = hit
        self.strip = strip
        m = hit.shape[0]
        self.bounds = [(r, min(r + strip, m)) for r in range(0, m, strip)]
        self.offsets: list[int] = []
        areas = [np.zeros(1)]
        seeds = [np.zeros(1)]
        ea: list[np.ndarray] = []
        eb: list[np.ndarray] = []
        off = 0
        prev_last: np.ndarray | None = None
        self._strip_labels: list[np.ndarray | None] = []
        def label_strip(bounds: tuple[int, int]) -> tuple[int, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray,
                                                          np.ndarray]:
            r0, r1 = bounds
            lab, n = ndi.label(hit[r0:r1], structure=_EIGHT)
            area = np.zeros(0)
            nseed = np.zeros(0)
            vals: np.ndarray | None = np.zeros(0, np.int32)
            if n and seed is not None:
                nseed = np.bincount(lab[seed[r0:r1]], minlength=n + 1)[1:].astype(np.float64)
            if n:
                # the labels of the hit pixels in raster order, and each label's area summed in
                # that order (one compiled pass; the sums of np.bincount with row-area weights)
                from campwatch._kernels import label_row_areas

                vals, area = label_row_areas(lab, np.ascontiguousarray(row_areas[r0:r1, 0], dtype=np.float64), n)
                area = area[1:]
                # kept for labels(k) unless the strip is mostly hits (then it is labelled again)
                if 4 * vals.size > lab.size:
                    vals = None
            return n, area, vals, lab[0].copy(), lab[-1].copy(), nseed

        # strips labelled on threads (ndimage.label releases the GIL), joined in order
        with ThreadPoolExecutor(max(1, workers)) as pool:
            labelled = list(pool.map(label_strip, self.bounds))
        for n, area, vals, top_row, bottom_row, nseed in labelled:
            self.offsets.append(off)
            if n:
                areas.append(area)
                if seed is not None:
                    seeds.append(nseed)
            self._strip_labels.append(vals)
            first = np.where(top_row > 0, top_row + off, 0)
            if prev_last is not None:
                for dc in (-1, 0, 1):
                    up = prev_last[max(0, -dc):len(first) - max(0, dc)]
                    down = first[max(0, dc):len(first) - max(0, -dc)]
                    both = (up > 0) & (down > 0)
                    ea.append(up[both])
                    eb.append(down[both])
            prev_last = np.where(bottom_row > 0, bottom_row + off, 0)
            off += n
        self.n_labels = off
        label_area = np.concatenate(areas)
        if ea:
            a, b = np.concatenate(ea), np.concatenate(eb)
        else:
            a = b = np.zeros(0, dtype=np.int64)
        graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(off + 1, off + 1))
        ncomp, comp = connected_components(graph, directed=False)
        comp_area = np.bincount(comp, weights=label_area, minlength=ncomp)
        # order components by their first pixel in raster order (their smallest label), as
        # ``ndimage.label`` numbers the regions of a whole mask
        first_label = np.full(ncomp, np.iinfo(np.int64).max)
        np.minimum.at(first_label, comp, np.arange(off + 1))
        is_bg = np.zeros(ncomp, bool)
        is_bg[comp[0]] = True
        self.count = int(ncomp - 1)
        keep = ~is_bg & (comp_area >= min_area_m2)
        if seed is not None:
            keep &= np.bincount(comp, weights=np.concatenate(seeds), minlength=ncomp) > 0
        order = np.argsort(first_label[keep], kind="stable")
        obj = np.zeros(ncomp, dtype=np.int64)
        obj[np.flatnonzero(keep)[order]] = np.arange(1, int(keep.sum()) + 1)
        self.kept_count = int(keep.sum())
        self._label_obj = obj[comp].astype(np.int32)  # strip label (+ offset) -> object id (0: dropped)
        self.object_area_m2 = comp_area[np.flatnonzero(keep)[order]]

    def keep_only(self, keep: np.ndarray) -> None:
        """Drop the objects whose ``keep[id]`` is False (``keep[0]``, the background, is not
        read) and number the others 1, 2, ... in their order."""
        keep = np.asarray(keep, dtype=bool).copy()
        keep[0] = False
        new = np.zeros(len(keep), np.int32)
        new[keep] = np.arange(1, int(keep.sum()) + 1)
        self._label_obj = new[self._label_obj]
        self.object_area_m2 = self.object_area_m2[keep[1:]]
        self.kept_count = int(keep.sum())

    def labels(self, k: int) -> np.ndarray:
        """(rows, N) int32 object ids of strip ``k`` (0: background or dropped)."""
        r0, r1 = self.bounds[k]
        hit = self.hit[r0:r1]
        vals = self._strip_labels[k]
        if vals is None:
            lab, _ = ndi.label(hit, structure=_EIGHT)
            return np.where(lab > 0, self._label_obj[lab + self.offsets[k]], 0).astype(np.int32)
        out = np.zeros(hit.shape, np.int32)
        out[hit] = self._label_obj[vals + self.offsets[k]]
        return out

    def to_mask(self, valid: Any) -> np.ndarray:
        """(M, N) uint8 :func:`to_mask` of the kept components, strip by strip; ``valid`` is an
        (M, N) bool array or like it (:class:`BitRows`)."""
        mask = np.empty(self.hit.shape, np.uint8)
        for k, (r0, r1) in enumerate(self.bounds):
            mask[r0:r1] = to_mask(self.labels(k) > 0, valid[r0:r1])
        return mask


def clean_mask(score: np.ndarray, threshold: float, grid: Grid, *, valid: np.ndarray, min_area_m2: float = 0.0,
               opening_radius: int = 0, keep: np.ndarray | None = None,
               window_size: int | None = None, peak: float | None = None) -> np.ndarray:
    """Threshold, open, and drop regions below the minimum mapping unit, on scores already known
    (to try another threshold on a result's ``score``, say): the clean-up of :func:`run_passes`,
    through the same :func:`score_hits` and :class:`HitMask`.

    With ``peak``, a region (8-connected) is also dropped unless one of its pixels scores
    above ``peak`` (hysteresis; :func:`region_peak`).

    Returns an (M, N) uint8 mask: 1 change, 0 no change, 255 no data.

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid((6, 6), Affine(10, 0, 0, 0, -10, 0), "EPSG:32652")
    >>> s = np.zeros((6, 6), np.float32); s[0, 0] = 9; s[2:5, 2:5] = 9
    >>> m = clean_mask(s, 5.0, g, valid=np.ones((6, 6), bool), min_area_m2=200)
    >>> int(m.sum()), int(m[0, 0])
    (9, 0)
    >>> s[3, 3] = 12                                     # the 3 x 3 region peaks at 12: kept; the pixel is not
    >>> int(clean_mask(s, 5.0, g, valid=np.ones((6, 6), bool), peak=10.0).sum())
    9
    """
    hits = HitMask(grid.shape, peak=peak)
    halo = 2 * opening_radius  # erosion then dilation: each reaches r pixels
    for w in score_hits(score, threshold, grid.tiles(window_size or max(grid.shape), halo=halo), valid=valid,
                        keep=keep, opening_radius=opening_radius):
        hits.add(w)
    return hits.components(grid, min_area_m2=min_area_m2).to_mask(valid)


def to_mask(hit: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 mask: 1 where ``hit``, 0 where only ``valid``, 255 (no data) elsewhere (the
    ``change_mask.tif`` encoding, in memory and for each streamed strip)."""
    return np.where(valid, hit.astype(np.uint8), np.uint8(NODATA)).astype(np.uint8)


def _disk(r: int) -> np.ndarray:
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y) <= r * r


# --------------------------------------------------------------------------------------
# quicklook composites
# --------------------------------------------------------------------------------------
def rgb_composite(scene: Scene, *, percentiles: tuple[float, float] = (2.0, 98.0),
                  bands: tuple[str, str, str] = ("red", "green", "blue")) -> np.ndarray:
    """(M, N, 3) uint8 true-colour composite with a percentile stretch; no data is black.

    Uses the first available of red/green/blue, else the first band repeated.

    Examples
    --------
    >>> from campwatch.io import read_scene
    >>> s = read_scene("data/sample_tiles/rennes/imgs_1", bands=["blue", "green", "red"])
    >>> rgb_composite(s).shape
    (339, 563, 3)
    """
    names = [b if b in scene.bands else scene.bands[0] for b in bands]
    x = np.stack([scene.data[scene.bands.index(n)] for n in names], -1).astype(np.float32)
    v = scene.valid
    if v.any():
        lo, hi = np.nanpercentile(x[v], percentiles)
    else:
        lo, hi = 0.0, 1.0
    y = np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1)
    out = (np.nan_to_num(y) * 255).astype(np.uint8)
    out[~v] = 0
    return out


#: The quicklook overlay's colours: (RGB, label) of every class :func:`change_overlay` draws.
QUICKLOOK_LEGEND: tuple[tuple[tuple[int, int, int], str], ...] = (
    ((255, 0, 0), "change"), ((60, 60, 60), "no data (either date, clouds, outside the AOI)"))


def change_overlay(after_rgb: np.ndarray, change: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """(M, N, 3) uint8: AFTER dimmed to 60 %, change in red, no data dark grey (:data:`QUICKLOOK_LEGEND`).

    Examples
    --------
    >>> ov = change_overlay(np.full((1, 3, 3), 100, np.uint8), np.array([[1, 0, 0]], bool), np.array([[0, 0, 1]], bool))
    >>> ov[0].tolist()
    [[255, 0, 0], [60, 60, 60], [60, 60, 60]]
    """
    ov = (after_rgb.astype(np.float32) * 0.6).astype(np.uint8)
    ov[change] = QUICKLOOK_LEGEND[0][0]
    ov[nodata] = QUICKLOOK_LEGEND[1][0]
    return ov
