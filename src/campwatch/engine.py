"""Streaming comparison of two large scenes at bounded memory: the tool behind ``campwatch compare``
on full Sentinel-2 tiles.

Neither date is ever held whole.  The work is the in-memory :func:`campwatch.compare.compare_scenes`
chain, cut into windows: the passes are :func:`campwatch.detect.run_passes` (the same driver
:func:`campwatch.detect.detect_change` runs over in-memory windows), over windows this module
reads from the files with a halo and prepares (clouds, shift):

0. **co-registration** (optional): the shift is estimated on the central
   :data:`COREG_WINDOW` × :data:`COREG_WINDOW` px (the whole grid when smaller) and applied
   to every window as a bilinear sub-pixel shift, with a halo;
1. **fit** — the windows of :func:`campwatch.detect.fit_windows` are read (with the cloud
   and shift halo) and the global statistics (radiometric fit, IR-MAD covariances, ...)
   are accumulated over them;
2. **score** — every window is read with a halo (clouds 4 px + shift + score 3 px + 2 ×
   opening radius), cloud-masked, shifted, scored, counted into the global histogram
   (when the threshold is chosen from it), thresholded and opened; its core score is written to ``change_score.tif`` and its
   core hits and validity go into bit-packed masks (:class:`campwatch.detect.BitRows`, 15 MB each on a full
   tile; ``chi2`` and fixed thresholds are known before the scores are; ``otsu`` and
   ``ki`` take one more pass, after the histogram);
3. **clean-up** — the minimum mapping unit over the hit mask, labelled strip by strip
   (:class:`campwatch.detect.Components`); ``change_mask.tif`` and ``changes.gpkg``
   (polygons per strip, built in bulk on two threads, merged across strip borders) are
   written from it.

Local runs read full-width strips of rows (a multiple of the file's block height), so
every block is decoded once; a strip is held with the few rows of the one before that its
windows' halo reaches (a strip's windows stop one halo above its bottom; the next strip
finishes them), and the next strip's reads are queued on the pool behind the current
strip's windows, so neither thread waits for the main one.  Files stay open, one handle per
thread (:func:`campwatch.io.kept_open`); a multi-band integer file is read in one call per
window and converted to reflectance by one compiled pass.  Each window is copied out of
the strip (the kernels run faster on contiguous arrays).  The per-window
steps are the in-memory chain's own functions (:func:`campwatch.masks.mask_clouds`,
:func:`campwatch.detect.detect_window`, :func:`campwatch.detect.region_seeds`,
:class:`campwatch.detect.Components`, :func:`campwatch.detect.to_mask`; see
``docs/architecture.md``), with the compiled kernels of
:mod:`campwatch._kernels` that the in-memory chain uses too (cloud test, default score,
histogram) and the sub-pixel shift of :func:`campwatch.coregister.apply_shift`, which
repeats ``scipy.ndimage.shift``'s float64 arithmetic bit for bit at a fraction of its cost.  GDAL
decoding and the kernels release the GIL, so two threads use two cores.  With a
``dask.distributed`` client the same per-window function runs as one task per window
(block-aligned, each task reading its own halo), on a ``LocalCluster`` or a cluster given
by address.  Both give the same outputs as the in-memory path (``tests/test_engine.py``).
``summary.json`` records the wall and CPU seconds of each step.

What streaming does not do, and says so in ``summary.json``: footprint growth
(``--structures``) and a full-resolution quicklook (it is decimated).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from campwatch._version import __version__
from campwatch.compare import (
    NO_COREGISTER_NOTE,
    OUTPUTS,
    bands_for_method,
    changes_layer,
    clouds_block,
    date_block,
    default_clouds,
    histogram_summary,
    limitations,
    pair_params,
    quicklook_panels,
    quicklook_titles,
    require_date_order,
    summary_head,
    with_coverage,
)
from campwatch.coregister import MAX_SHIFT_PX, apply_shift, pick_band
from campwatch.coregister import coregister as _coregister
from campwatch.detect import (
    FIT_ALL_PIXELS,
    METHOD_BANDS,
    MIN_VALID_FRACTION,
    NODATA,
    QUICKLOOK_LEGEND,
    FitContext,
    WindowChange,
    change_figures,
    changed_area_m2,
    check_method,
    detect_window,
    detection_bands,
    detection_params,
    fit_windows,
    increase_mask,
    inner_slices,
    run_passes,
    score_halo,
    to_mask,
    warn_low_valid,
)
from campwatch.grid import Grid
from campwatch.io import (
    atomic_dir,
    atomic_path,
    block_shape,
    kept_open,
    open_source,
    raster_writer,
    read_source,
    vector_stamp,
    write_json,
    write_layers,
)
from campwatch.masks import (
    MIN_OBSERVED_FRACTION,
    cloud_fraction,
    cloud_test_info,
    coverage_of,
    mask_clouds,
    require_coverage,
)
from campwatch.params import check_all
from campwatch.plot import quicklook_png
from campwatch.scene import Scene
from campwatch.threshold import Histogram, ThresholdChoice
from campwatch.vectorize import add_metrics, mask_to_polygons

__all__ = ["StreamResult", "compare_streaming", "should_stream", "auto_stream", "STREAM_PIXELS", "COREG_WINDOW",
           "PROGRESS_STAGES", "Progress"]

#: What :func:`compare_streaming` reports to its ``progress`` callback, in order, and what each
#: stage counts: the fit sample's windows, every window scored, every window thresholded
#: (only when the threshold needs the whole histogram), the strips of the deep confirmation
#: (methods in :data:`campwatch.detect.DEEP_CONFIRMED`), and the mask's strips.
PROGRESS_STAGES = {"fit": "fitting the radiometry (sample windows)", "score": "scoring windows",
                   "threshold": "thresholding windows", "confirm": "confirming regions by deep features (strips)",
                   "mask": "minimum mapping unit and polygons (strips)"}
Progress = Callable[[str, int, int], None]

#: ``campwatch compare`` streams by default above this many pixels (4096 × 4096).
STREAM_PIXELS = 4096 * 4096
#: Edge of the central window the co-registration shift is estimated on.
COREG_WINDOW = 1024
#: Halo the cloud test needs: majority filter (2 px) then the 2 px buffer.
CLOUD_HALO = 4
#: Longest edge of the decimated quicklook panels.
QUICKLOOK_PX = 1200
#: GDAL block cache while streaming (bytes): every block is decoded once, so a big cache
#: only costs memory.
GDAL_CACHE = 64 * 2 ** 20


def should_stream(grid: Grid) -> bool:
    """True when ``grid`` is large enough that ``compare`` streams it by default.

    Examples
    --------
    >>> from affine import Affine
    >>> should_stream(Grid((10980, 10980), Affine(10, 0, 0, 0, -10, 0), "EPSG:32652"))
    True
    """
    return grid.height * grid.width > STREAM_PIXELS


def auto_stream(path: str | os.PathLike[str], *, profile: str | None = None,
                band_map: dict[str, int] | None = None) -> bool:
    """Whether ``campwatch compare`` (without an AOI) streams ``path`` by default: more than
    :data:`STREAM_PIXELS` pixels of 5 m or more (VHR imagery has its own in-memory mode)."""
    grid = open_source(path, profile=profile, bands=band_map).finest.grid
    return should_stream(grid) and grid.pixel_size_m() >= 5.0


# --------------------------------------------------------------------------------------
# the plan: everything a window needs, picklable for dask
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    before: Any  # SceneSource
    after: Any  # SceneSource
    grid: Grid
    read_bands: tuple[str, ...]
    bands: tuple[str, ...]
    method: str
    clouds: bool
    shift: tuple[float, float] | None
    opening_radius: int
    increase_only: bool
    ctx: FitContext | None = None
    threshold: float | None = None

    @property
    def prep_halo(self) -> int:
        """Halo of the preparation steps (clouds, shift) alone."""
        h = CLOUD_HALO if self.clouds else 0
        if self.shift is not None:
            h += math.ceil(max(abs(self.shift[0]), abs(self.shift[1]))) + 1
        return h

    @property
    def halo(self) -> int:
        return self.prep_halo + score_halo(self.method) + 2 * self.opening_radius


@dataclass
class _WindowOut:
    """One scored window: :func:`campwatch.detect.detect_window`'s result and what the engine adds."""

    change: WindowChange
    cloud: tuple[int, int, int, int]  # before valid, before flagged, after valid, after flagged
    thumbs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None


def _pad(grid: Grid, core: Window, halo: int) -> Window:
    r0, c0 = max(int(core.row_off) - halo, 0), max(int(core.col_off) - halo, 0)
    r1 = min(int(core.row_off + core.height) + halo, grid.height)
    c1 = min(int(core.col_off + core.width) + halo, grid.width)
    return Window(c0, r0, c1 - c0, r1 - r0)


def _read(plan: _Plan, win: Window, out: Any = (None, None), at: tuple[int, int] = (0, 0)) -> tuple[Scene, Scene]:
    """Both dates on a window of the plan's grid (the I/O edge does the reading), into the
    ``(data, valid)`` arrays of ``out`` from row and column ``at`` when given."""
    g = plan.grid.window(win)
    return (read_source(plan.before, g, bands=plan.read_bands, out=out[0], at=at),
            read_source(plan.after, g, bands=plan.read_bands, out=out[1], at=at))


def _prepare(plan: _Plan, b: Scene, a: Scene, pad: Window
             ) -> tuple[Scene, Scene, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Clouds, then the shift, as :func:`campwatch.compare.compare_scenes` does; returns the
    scenes and, for :func:`_cloud_counts`, both dates' valid pixels and cloud flags.

    :func:`campwatch.masks.mask_clouds` then ``apply_shift``; the scenes passed in are this
    window's own arrays (fresh reads or copies), so cloud pixels are set to NaN in place.
    The cloud counts are taken on AFTER's pixels before the shift, as ``mask_clouds`` counts
    them on the whole scene (after the shift its valid pixels have moved).
    """
    b, a, cb, ca = _clouds(plan, b, a)
    return b, _shifted(plan, a, pad), (b.valid, a.valid, cb, ca)


def _shifted(plan: _Plan, a: Scene, pad: Window) -> Scene:
    """The shift half of :func:`_prepare`: ``a`` (read on ``pad``) resampled by the plan's
    shift, its sample positions computed as on the whole grid (``origin``), so every
    windowing gives the same pixels."""
    if plan.shift is None:
        return a
    return apply_shift(a, *plan.shift, origin=(int(pad.row_off), int(pad.col_off)))


def _clouds(plan: _Plan, b: Scene, a: Scene) -> tuple[Scene, Scene, np.ndarray, np.ndarray]:
    """The cloud half of :func:`_prepare` (it needs no shift): :func:`campwatch.masks.mask_clouds`
    of each date, as ``compare_scenes`` runs it on whole scenes, and the pixels it flagged."""
    if not plan.clouds:
        none = np.zeros(b.grid.shape, bool)
        return b, a, none, none
    # the window's arrays are its own (fresh reads or copies out of the strip): NaN in place
    mb, ma = mask_clouds(b, in_place=True), mask_clouds(a, in_place=True)
    return mb, ma, b.valid & ~mb.valid, a.valid & ~ma.valid


def _bands_of(s: Scene, names: tuple[str, ...]) -> np.ndarray:
    """``s.select(names).data`` without a copy when the scene already has those bands in order."""
    return s.data if tuple(s.bands) == tuple(names) else s.select(names).data


def _fit_data(plan: _Plan, b: Scene, a: Scene, pad: Window, core: Window,
              clouded: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One fit window's core data; ``clouded``: :func:`_clouds` already ran on ``b`` and ``a``
    (then only the shift remains)."""
    if not clouded:
        b, a, _, _ = _clouds(plan, b, a)
    a = _shifted(plan, a, pad)
    s = inner_slices(core, pad)
    ok = (b.valid & a.valid)[s]
    return _bands_of(b, plan.bands)[(slice(None), *s)].copy(), _bands_of(a, plan.bands)[(slice(None), *s)].copy(), ok


def _warm(plan: _Plan) -> None:
    """Read and cloud-test one pixel of each date (loads the compiled kernels)."""
    _clouds(plan, *_read(plan, Window(0, 0, 1, 1)))


def _cloud_counts(masks: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                  s: tuple[slice, slice]) -> tuple[int, int, int, int]:
    """Valid and cloud-flagged pixels of each date in the core ``s``, from both dates' valid
    pixels after the cloud test and their cloud flags (before any shift)."""
    vb, va, cb, ca = (m[s] for m in masks)
    return (int(np.count_nonzero(vb | cb)), int(np.count_nonzero(cb)),
            int(np.count_nonzero(va | ca)), int(np.count_nonzero(ca)))


def _process(plan: _Plan, b: Scene, a: Scene, pad: Window, core: Window, *, thumb: int,
             histogram: bool) -> _WindowOut:
    """A score pass on one window read with its halo: score, histogram counts (``histogram``),
    opened hits (when the plan has the threshold), thumbnails (every ``thumb``-th pixel; 0: none)."""
    assert plan.ctx is not None
    b, a, clouded = _prepare(plan, b, a, pad)
    inner = inner_slices(core, pad)
    keep = None
    if plan.increase_only and plan.threshold is not None:
        keep = increase_mask(b.data, a.data, b.bands)  # both dates hold plan.read_bands, in order
    w = detect_window(plan.method, plan.ctx, _bands_of(b, plan.bands), _bands_of(a, plan.bands), b.valid & a.valid,
                      inner, threshold=plan.threshold, keep=keep, opening_radius=plan.opening_radius,
                      window=core, histogram=histogram)
    thumbs = None
    if thumb:
        r0 = (-int(core.row_off)) % thumb
        c0 = (-int(core.col_off)) % thumb
        sl = (slice(inner[0].start + r0, inner[0].stop, thumb), slice(inner[1].start + c0, inner[1].stop, thumb))
        rgb: list[str] = [x for x in ("red", "green", "blue") if x in b.bands] or [b.bands[0]]
        rgb = (rgb * 3)[:3] if len(rgb) < 3 else rgb
        idx = [b.bands.index(x) for x in rgb]  # decimate first, then pick the bands (no full-window copy)
        thumbs = (b.data[:, sl[0], sl[1]][idx], b.valid[sl], a.data[:, sl[0], sl[1]][idx], a.valid[sl])
    return _WindowOut(w, _cloud_counts(clouded, inner), thumbs)


# --------------------------------------------------------------------------------------
# executors: local strips on threads, or one dask task per window
# --------------------------------------------------------------------------------------
class _LocalStrips:
    """Full-width strips of ``strip`` rows; each block is decoded once.  One strip is held
    at a time, under the rows of the one before that its windows still reach (halo): a
    strip's windows end ``halo`` rows above its bottom, and the rest waits for the next
    strip, which brings their lower halo.  Reading and processing run on ``workers``
    threads, one after the other (each keeps every thread busy)."""

    def __init__(self, plan: _Plan, *, strip: int, chunk: int, workers: int, read_chunk: int | None = None) -> None:
        self.plan, self.strip, self.chunk = plan, strip, chunk
        # a strip is read in jobs of ``read_chunk`` columns (one block): twice as many jobs
        # as windows, so the last reads of a strip leave a thread idle half as long
        self.read_chunk = read_chunk or chunk
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="campwatch")
        # reads queued before the shift is known run here, one at a time, so the main
        # thread's co-registration keeps a core of its own
        self.prefetcher = ThreadPoolExecutor(1, thread_name_prefix="campwatch-prefetch")
        self._fit_reads: dict[tuple[float, float, float, float], tuple[Window, Any]] = {}
        self._first: Any = None  # the first strip's pending reads, when prefetched
        # the flat (data, valid) buffers of strips whose windows are done, for the next reads:
        # fresh buffers would be zeroed by the kernel page by page (about 1 CPU-s a full tile)
        self._spare: list[tuple[np.ndarray, np.ndarray]] = []

    def close(self) -> None:
        self.prefetcher.shutdown(wait=True)
        self.pool.shutdown(wait=True)
        self._spare.clear()

    def _cols(self, chunk: int | None = None) -> list[tuple[int, int]]:
        n, chunk = self.plan.grid.width, chunk or self.chunk
        return [(c, min(c + chunk, n)) for c in range(0, n, chunk)]

    def _start_read(self, r0: int, r1: int, tail: tuple[Scene, Scene] | None, executor: Any = None) -> Any:
        """Queue the reads of rows [r0, r1) of both dates, under ``tail`` (rows just above r0),
        on the pool (or ``executor``); returns a function that waits for them and gives the
        two scenes and their flat buffers (for :meth:`_buffer` once the strip is done)."""
        plan = self.plan
        nb, n = len(plan.read_bands), plan.grid.width
        t = tail[0].grid.height if tail is not None else 0
        h = r1 - r0
        flats = [self._buffer(nb * (t + h) * n) for _ in (0, 1)]
        bufs = [(d[:nb * (t + h) * n].reshape(nb, t + h, n), v[:(t + h) * n].reshape(t + h, n)) for d, v in flats]
        if tail is not None:
            for (data, valid), sc in zip(bufs, tail, strict=True):
                data[:, :t] = sc.data
                valid[:t] = sc.valid

        def job(c0: int, c1: int) -> tuple[Scene, Scene]:
            return _read(plan, Window(c0, r0, c1 - c0, h), bufs, at=(t, c0))

        futs = [(executor or self.pool).submit(job, c0, c1) for c0, c1 in self._cols(self.read_chunk)]

        def finish() -> tuple[Scene, Scene, list[tuple[np.ndarray, np.ndarray]]]:
            first = futs[0].result()
            for f in futs[1:]:
                f.result()
            g = plan.grid.window(Window(0, r0 - t, n, t + h))
            out = [dataclasses.replace(first[k], data=bufs[k][0], valid=bufs[k][1], grid=g) for k in (0, 1)]
            return out[0], out[1], flats

        return finish

    def _buffer(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """A spare flat (data, valid) pair of at least ``size`` values (valid: ``size / bands``),
        or a new one."""
        for i, (d, _) in enumerate(self._spare):
            if d.size >= size:
                return self._spare.pop(i)
        nb = len(self.plan.read_bands)
        return np.empty(size, np.float32), np.empty(size // nb, bool)

    def prefetch_fit(self, windows: list[Window], halo: int) -> None:
        """Queue the reads of the fit windows (with ``halo``, at least the preparation halo the
        plan will have) before the co-registration shift is known: the pool reads while the
        main thread estimates the shift.  A wider halo leaves each window's core unchanged."""
        grid, plan = self.plan.grid, self.plan

        def job(pad: Window) -> tuple[Scene, Scene, np.ndarray, np.ndarray]:
            return _clouds(plan, *_read(plan, pad))  # the cloud test needs no shift either

        self._fit_reads = {(w.col_off, w.row_off, w.width, w.height): (pad, self.prefetcher.submit(job, pad))
                           for w in windows for pad in [_pad(grid, w, halo)]}

    def map_fit(self, windows: list[Window]) -> Iterator[Any]:
        reads = self._fit_reads

        def job(w: Window) -> Any:
            got = reads.pop((w.col_off, w.row_off, w.width, w.height), None)
            if got is None:
                pad = _pad(self.plan.grid, w, self.plan.prep_halo)
                b, a = _read(self.plan, pad)
                return _fit_data(self.plan, b, a, pad, w)
            pad, fut = got
            b, a, _, _ = fut.result()
            return _fit_data(self.plan, b, a, pad, w, clouded=True)

        yield from self.pool.map(job, windows)

    def _strips(self) -> list[tuple[int, int]]:
        """Strips of ``strip`` rows, the first twice as tall (it is read while the shift is
        estimated, when a core is free)."""
        m, k = self.plan.grid.height, self.strip
        first = min(2 * k, m)
        return [(0, first)] + [(r, min(r + k, m)) for r in range(first, m, k)]

    def _core_rows(self) -> list[tuple[int, int]]:
        """Per strip, the core rows ``[start, end)`` processed once it is read (empty when
        ``start == end``): up to ``halo`` rows above its bottom, the last strip to its end."""
        h, done, out = self.plan.halo, 0, []
        strips = self._strips()
        for k, (_, r1) in enumerate(strips):
            end = r1 if k == len(strips) - 1 else max(done, r1 - h)
            out.append((done, end))
            done = end
        return out

    def n_windows(self) -> int:
        """How many windows :meth:`map_process` yields."""
        return len(self._cols()) * sum(1 for r0, r1 in self._core_rows() if r1 > r0)

    def prefetch_first_strip(self) -> None:
        """Queue the first strip's reads now (they need no fitted statistics) on the one
        prefetch thread: it reads while the main thread estimates the shift, one core each."""
        self._first = self._start_read(*self._strips()[0], None, executor=self.prefetcher)

    def map_process(self, *, thumb: int, histogram: bool) -> Iterator[_WindowOut]:
        plan, grid, h = self.plan, self.plan.grid, self.plan.halo
        strips = self._strips()
        if h > self.strip:
            raise ValueError(f"halo {h} px is larger than the strip height {self.strip}")
        pending, self._first = self._first or self._start_read(*strips[0], None), None
        for k, ((r0, r1), (done, end)) in enumerate(zip(strips, self._core_rows(), strict=True)):
            last = k == len(strips) - 1
            sb, sa, flats = pending()
            held = (sb, sa)
            del sb, sa
            top = r1 - held[0].grid.height  # first row held
            futs = []
            if end > done:
                p0, p1 = max(done - h, 0), min(end + h, grid.height)

                def job(c0: int, c1: int, held: tuple[Scene, Scene] = held, r0: int = done, r1: int = end,
                        p0: int = p0, p1: int = p1, top: int = top) -> _WindowOut:
                    core = Window(c0, r0, c1 - c0, r1 - r0)
                    pc0, pc1 = max(c0 - h, 0), min(c1 + h, grid.width)
                    pad = Window(pc0, p0, pc1 - pc0, p1 - p0)
                    rs = slice(p0 - top, p1 - top)
                    # copies: the window's own contiguous arrays (the compiled kernels run about
                    # three times faster on them than on strided views of the strip, and the
                    # cloud step writes NaN into them)
                    scenes = [dataclasses.replace(sc, data=sc.data[:, rs, pc0:pc1].copy(),
                                                  valid=sc.valid[rs, pc0:pc1].copy(), grid=grid.window(pad))
                              for sc in held]
                    return _process(plan, scenes[0], scenes[1], pad, core, thumb=thumb, histogram=histogram)

                futs = [self.pool.submit(job, c0, c1) for c0, c1 in self._cols()]
                del job
            if not last:
                # the next strip's reads queue behind this strip's windows (the pool never waits
                # for the main thread); its first windows reach ``h`` rows above ``end``
                tail = _tail(held, min(r1 - max(end - h, 0), held[0].grid.height))
                pending = self._start_read(*strips[k + 1], tail)
                del tail
            del held
            # this strip's windows done (the next strip holds a copy of its tail), its buffers
            # serve a later strip, unless taller than an ordinary one (the first), which go
            # now, while the next strip is still being read
            outs = [f.result() for f in futs]
            del futs
            ordinary = len(plan.read_bands) * (self.strip + 2 * h) * grid.width
            self._spare.extend((d, v) for d, v in flats if d.size <= ordinary)
            del flats
            yield from outs
            del outs


def _tail(p: tuple[Scene, Scene], n: int) -> tuple[Scene, Scene]:
    out = []
    for s in p:
        k = min(n, s.grid.height)
        out.append(dataclasses.replace(s, data=s.data[:, -k:].copy(), valid=s.valid[-k:].copy(),
                                       grid=s.grid.window(Window(0, s.grid.height - k, s.grid.width, k))))
    return out[0], out[1]


def _dask_fit(plan: _Plan, w: Window) -> Any:
    pad = _pad(plan.grid, w, plan.prep_halo)
    b, a = _read(plan, pad)
    return _fit_data(plan, b, a, pad, w)


def _dask_process(plan: _Plan, w: Window, thumb: int, histogram: bool) -> _WindowOut:
    from rasterio import Env

    with Env(GDAL_CACHEMAX=GDAL_CACHE):
        pad = _pad(plan.grid, w, plan.halo)
        b, a = _read(plan, pad)
        return _process(plan, b, a, pad, w, thumb=thumb, histogram=histogram)


class _DaskWindows:
    """One task per block-aligned window on a ``dask.distributed`` client; results in order."""

    def __init__(self, plan: _Plan, client: Any, *, chunk: int) -> None:
        self.plan, self.client, self.chunk = plan, client, chunk

    def close(self) -> None:
        pass

    def _ordered(self, futures: list[Any]) -> Iterator[Any]:
        for f in futures:
            yield f.result()
            f.release()

    def map_fit(self, windows: list[Window]) -> Iterator[Any]:
        plan = self.client.scatter(self.plan, broadcast=True)
        yield from self._ordered(self.client.map(_dask_fit, [plan] * len(windows), windows, pure=False))

    def n_windows(self) -> int:
        """How many windows :meth:`map_process` yields."""
        return sum(1 for _ in self.plan.grid.tiles(self.chunk))

    def map_process(self, *, thumb: int, histogram: bool) -> Iterator[_WindowOut]:
        plan = self.client.scatter(self.plan, broadcast=True)
        wins = [core for core, _ in self.plan.grid.tiles(self.chunk)]
        n = len(wins)
        yield from self._ordered(self.client.map(_dask_process, [plan] * n, wins, [thumb] * n, [histogram] * n,
                                                 pure=False))


class _EngineWindows:
    """The executor (local strips or dask) as the :class:`campwatch.detect.WindowSource` of
    :func:`campwatch.detect.run_passes`: each score pass runs with the fitted statistics and
    threshold in the plan; the first also takes the quicklook thumbnails."""

    def __init__(self, runner: Any, thumb: int) -> None:
        self.runner, self.thumb = runner, thumb

    def fit(self, windows: list[Window]) -> Iterator[Any]:
        return self.runner.map_fit(windows)  # type: ignore[no-any-return]

    def n_windows(self) -> int:
        return self.runner.n_windows()  # type: ignore[no-any-return]

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        plan = self.runner.plan
        pad = _pad(plan.grid, window, plan.prep_halo)
        return _fit_data(plan, *_read(plan, pad), pad, window)

    def scored(self, ctx: FitContext, threshold: float | None, *, first: bool,
               histogram: bool) -> Iterator[tuple[WindowChange, _WindowOut]]:
        self.runner.plan = dataclasses.replace(self.runner.plan, ctx=ctx, threshold=threshold)
        for w in self.runner.map_process(thumb=self.thumb if first else 0, histogram=histogram):
            yield w.change, w


#: The steps of :func:`campwatch.detect.run_passes` and their keys in ``summary.json``'s timings.
_STAGE_TIMINGS = {"fit": "fit_s", "score": "score_s", "mask": "clean_mask_s", "confirm": "confirm_s"}


class _Clock:
    """Wall and CPU seconds of consecutive steps, into ``summary.json``'s timings."""

    def __init__(self, wall: dict[str, float], cpu: dict[str, float]) -> None:
        self.wall, self.cpu = wall, cpu
        self.key: str | None = None
        self.t = self.c = 0.0

    def start(self, stage: str) -> None:
        self.stop()
        self.key, self.t, self.c = _STAGE_TIMINGS[stage], time.perf_counter(), time.process_time()

    def stop(self) -> None:
        if self.key is not None:
            self.wall[self.key] = self.wall.get(self.key, 0.0) + time.perf_counter() - self.t
            self.cpu[self.key] = self.cpu.get(self.key, 0.0) + time.process_time() - self.c
        self.key = None


# --------------------------------------------------------------------------------------
# the tool
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamResult:
    """What :func:`compare_streaming` measured and wrote (no pixels)."""

    grid: Grid
    method: str
    threshold: ThresholdChoice
    #: The score histogram, accumulated only when the threshold was chosen from it (otsu,
    #: ki); None for chi2 and fixed thresholds, which are known before any score is.
    histogram: Histogram | None
    valid_fraction: float
    changed_area_m2: float
    changed_pixels: int
    polygons: int
    coregistration: dict[str, Any] | None
    params: dict[str, Any]
    summary: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


def _sources(src: Any, bands: tuple[str, ...]) -> list[str]:
    """The files of ``bands`` of a source, each once."""
    return list(dict.fromkeys(src.band(k).path for k in bands))


def _aligned(size: int, block: int) -> int:
    return max(block, (size // block) * block) if block else size


def compare_streaming(before_path: str | os.PathLike[str], after_path: str | os.PathLike[str],
                      outdir: str | os.PathLike[str], *, method: str = "default", threshold: str = "auto",
                      value: float | None = None, alpha: float = 1e-6, min_area_m2: float = 200.0,
                      opening_radius: int = 0, increase_only: bool = False, coregister: bool = True,
                      clouds: bool | None = None, profile: str | None = None,
                      band_map: dict[str, int] | None = None, window_size: int = 1024, workers: int = 2,
                      client: Any = None, overwrite: bool = False,
                      structures: bool = False, strip_rows: int | None = None,
                      min_observed_fraction: float = MIN_OBSERVED_FRACTION,
                      progress: Progress | None = None, deep_confirm: bool = True) -> StreamResult:
    """Compare two scenes window by window and write the ``compare`` outputs into ``outdir``.

    Parameters
    ----------
    before_path, after_path : path-like
        As for :func:`campwatch.compare.compare_files` (no AOI: the whole of BEFORE's grid).
    method, threshold, value, alpha, min_area_m2, opening_radius, increase_only, coregister, clouds :
        As for :func:`campwatch.compare.compare_scenes`.
    window_size : int
        Columns per window (rounded down to a multiple of the file's block width, at least
        one block); local strips are the file's block height tall (at least 256 rows).
    workers : int
        Threads for a local run.
    client : dask.distributed.Client or str, optional
        Run the windows as dask tasks on this client (or scheduler address).
    structures : bool
        Footprint growth is not streamed: when True, the summary says it was not computed.
    deep_confirm : bool
        The default method keeps a change region only where a pretrained network's features
        changed too (:func:`campwatch.detect.confirm_regions`); False skips that step (about
        1 s per megapixel and date; the summary says it was skipped).
    strip_rows : int, optional
        Rows per local strip (default: the file's block height, at least 256); at least
        the halo.  Strips that are not a multiple of the block height decode blocks twice.
    min_observed_fraction : float
        As for :func:`campwatch.compare.compare_scenes` (of BEFORE's grid): below it nothing
        is written and :class:`~campwatch.errors.InsufficientDataError` is raised.
    progress : callable, optional
        Called as ``progress(stage, done, total)`` as the work advances, ``stage`` one of
        :data:`PROGRESS_STAGES` (``done`` counts fit windows, scored windows, or mask strips).

    Returns
    -------
    StreamResult
        Figures, the ``summary.json`` dict and the output paths.

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> r = compare_streaming("data/sample_tiles/rennes/imgs_1", "data/sample_tiles/rennes/imgs_2", out,
    ...                       window_size=256)
    >>> r.grid.shape, r.threshold.method, r.summary["processing"]["mode"]
    ((339, 563), 'chi2', 'streaming')
    """
    with atomic_dir(outdir, overwrite=overwrite, kind="compare") as tmp:
        r = _stream_into(before_path, after_path, tmp, method=method, threshold=threshold, value=value, alpha=alpha,
                         min_area_m2=min_area_m2, opening_radius=opening_radius, increase_only=increase_only,
                         coregister=coregister, clouds=clouds, profile=profile, band_map=band_map,
                         window_size=window_size, workers=workers, client=client, structures=structures,
                         strip_rows=strip_rows, min_observed_fraction=min_observed_fraction, progress=progress,
                         deep_confirm=deep_confirm)
    return dataclasses.replace(r, paths={n: Path(outdir) / n for n in r.paths})


def _stream_into(before_path: str | os.PathLike[str], after_path: str | os.PathLike[str],
                      outdir: str | os.PathLike[str], *, method: str = "default", threshold: str = "auto",
                      value: float | None = None, alpha: float = 1e-6, min_area_m2: float = 200.0,
                      opening_radius: int = 0, increase_only: bool = False, coregister: bool = True,
                      clouds: bool | None = None, profile: str | None = None,
                      band_map: dict[str, int] | None = None, window_size: int = 1024, workers: int = 2,
                      client: Any = None,
                      structures: bool = False, strip_rows: int | None = None,
                      min_observed_fraction: float = MIN_OBSERVED_FRACTION,
                      progress: Progress | None = None, deep_confirm: bool = True) -> StreamResult:
    """:func:`compare_streaming` into the fresh folder ``outdir``."""
    tick = progress or (lambda stage, done, total: None)
    from rasterio import Env

    check_method(method)
    t_start = time.perf_counter()
    out = Path(outdir)
    names = OUTPUTS
    paths = {n: out / n for n in names}
    check_all(alpha=alpha, value=value, min_area_m2=min_area_m2, opening_radius=opening_radius, workers=workers,
              window_size=window_size, min_observed_fraction=min_observed_fraction)
    src_b = open_source(before_path, profile=profile, bands=band_map)
    src_a = open_source(after_path, profile=profile, bands=band_map)
    require_date_order(src_b.date, src_a.date, before=str(before_path), after=str(after_path))
    wanted = bands_for_method(method)
    read_bands = tuple(src_b.keys if wanted is None else [b for b in wanted if b in src_b.keys])
    missing = [b for b in read_bands if b not in src_a.keys]
    if missing:
        read_bands = tuple(b for b in read_bands if b in src_a.keys)

    stub_b = Scene(np.zeros((len(read_bands), 1, 1), np.float32), read_bands, src_b.finest.grid.window(Window(0, 0, 1, 1)),
                   np.ones((1, 1), bool), profile=src_b.profile.name)
    stub_b.require(METHOD_BANDS[method], method=f"method {method!r}")
    if increase_only:
        stub_b.require(METHOD_BANDS["bui"], method="increase_only")
    grid = src_b.finest.grid
    bands = detection_bands(method, read_bands, read_bands)
    extra: dict[str, Any] = {}
    if clouds is None:
        clouds, extra["clouds_reason"] = default_clouds(src_b.profile.name.startswith("sentinel2"),
                                                        src_b.scl is not None)
    brow, bcol = block_shape(src_b.finest)
    strip = _aligned(max(256, brow), brow) if brow < grid.height else grid.height
    if strip_rows is not None:
        strip = int(strip_rows)
    chunk = _aligned(window_size, bcol) if bcol < grid.width else window_size
    plan = _Plan(src_b, src_a, grid, read_bands, bands, method, bool(clouds), None, opening_radius, increase_only)
    timings: dict[str, float] = {"setup_s": time.perf_counter() - t_start}
    cpu: dict[str, float] = {}  # process CPU seconds (all threads) of each step

    # Up to FIT_ALL_PIXELS the fit reads every window with its halo, and each halo reaches
    # into the neighbouring blocks: a cache that holds both files decodes every block once.
    cache = GDAL_CACHE
    if grid.height * grid.width <= FIT_ALL_PIXELS:
        decoded = 2 * grid.height * grid.width * len(read_bands) * np.dtype(src_b.band(read_bands[0]).dtype).itemsize
        cache = max(GDAL_CACHE, int(1.1 * decoded))
    sample = fit_windows(grid)
    with Env(GDAL_CACHEMAX=cache), kept_open():
        runner: Any
        if client is not None:
            if isinstance(client, str):
                from distributed import Client

                client = Client(client)
            runner = _DaskWindows(plan, client, chunk=chunk)
        else:
            runner = _LocalStrips(plan, strip=strip, chunk=chunk, workers=workers,
                                  read_chunk=min(chunk, bcol) if bcol < grid.width else None)
            # a pixel of each date, read and cloud-tested on an idle thread: the compiled kernels
            # load from numba's cache (about 0.4 s) while the first windows are decoded (not
            # awaited: a read error there comes back from the real reads)
            runner.pool.submit(_warm, plan)
            if coregister:  # the fit windows are read while the shift is estimated
                widest = dataclasses.replace(plan, shift=(MAX_SHIFT_PX, MAX_SHIFT_PX)).prep_halo
                runner.prefetch_fit(sample, widest)
            runner.prefetch_first_strip()
        try:
            # ---- 0: co-registration on the central window ---------------------------------
            shift_dict = None
            coreg_note = None
            if coregister:
                t, c = time.perf_counter(), time.process_time()
                cw = Window(max(0, (grid.width - COREG_WINDOW) // 2), max(0, (grid.height - COREG_WINDOW) // 2),
                            min(COREG_WINDOW, grid.width), min(COREG_WINDOW, grid.height))

                b, a = _read(plan, cw)
                b, a, _ = _prepare(plan, b, a, cw)
                # the estimate (and its residual check) uses one band: only that band is resampled
                band = [pick_band(b, a, None)]
                _, shift = _coregister(b.select(band), a.select(band))
                del b, a
                shift_dict = shift.to_dict()
                whole = cw.width == grid.width and cw.height == grid.height
                coreg_note = ("estimated on the whole grid" if whole else
                              f"estimated on the central {int(cw.width)} x {int(cw.height)} px window "
                              f"(rows {int(cw.row_off)}-{int(cw.row_off + cw.height)}, cols {int(cw.col_off)}-"
                              f"{int(cw.col_off + cw.width)}) and applied to every window")
                if shift.applied:
                    plan = dataclasses.replace(plan, shift=(shift.dx_px, shift.dy_px))
                timings["coregister_s"] = time.perf_counter() - t
                cpu["coregister_s"] = time.process_time() - c
            runner.plan = plan
            # ---- 1-3: fit, scores (histogram, hits), threshold, minimum mapping unit --------
            state = _Collect(grid)
            tags = {"campwatch_version": __version__, "method": method}
            clock = _Clock(timings, cpu)
            with raster_writer(paths["change_score.tif"], grid, dtype="float32", nodata=float("nan"),
                               tags=tags, band_names=["change_score"], fast=True) as write:

                def on_window(w: WindowChange, out: _WindowOut, first: bool) -> None:
                    if first:
                        write(w.score, w.core)
                        state.add(out)
                    if w.hit is not None:
                        state.add_hits(w)

                passes = run_passes(method, bands, grid, _EngineWindows(runner, state.thumb), threshold=threshold,
                                    value=value, alpha=alpha, min_area_m2=min_area_m2, workers=workers,
                                    on_window=on_window, progress=tick, stage=clock.start,
                                    deep_confirm=deep_confirm)
                choice, known, ctx, comps = passes.choice, passes.known, passes.ctx, passes.components
                assert choice is not None and comps is not None
                tags["threshold"] = f"{choice.value:.6g} ({choice.method})"
        finally:
            runner.close()
        # ---- mask and polygons, strip by strip --------------------------------------------
        row_counts = np.zeros(grid.height, dtype=np.int64)

        pieces = []
        th = state.thumb
        final = np.zeros(state.vb.shape, bool)
        tvalid = np.zeros(state.vb.shape, bool)
        mask_tags = {**tags, "values": "1 change, 0 no change, 255 no data"}
        with raster_writer(paths["change_mask.tif"], grid, dtype="uint8", nodata=NODATA,
                           tags=mask_tags, band_names=["change"], fast=True) as write:

            def strip_job(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]:
                r0, r1 = comps.bounds[k]
                lab = comps.labels(k)
                kept = lab > 0
                valid = passes.valid[r0:r1]
                first = (-r0) % th
                poly = None
                if kept.any():
                    poly = _strip_polygons(lab, grid, r0, r1, state.hit_scores(r0, r1))
                return (kept.sum(1), to_mask(kept, valid),
                        kept[first::th, ::th], valid[first::th, ::th], poly)

            # strips on two threads (labelling, polygonising and the numpy parts release the GIL
            # in places); written in order here
            with ThreadPoolExecutor(max(1, min(2, workers)), thread_name_prefix="campwatch-clean") as pool:
                for k, (counts, mask8, sub, vsub, poly) in enumerate(pool.map(strip_job, range(len(comps.bounds)))):
                    r0, r1 = comps.bounds[k]
                    row_counts[r0:r1] = counts
                    write(mask8, Window(0, r0, grid.width, r1 - r0))
                    t0 = (r0 + (-r0) % th) // th
                    final[t0:t0 + sub.shape[0]] = sub
                    tvalid[t0:t0 + sub.shape[0]] = vsub
                    if poly is not None:
                        pieces.append(poly)
                    tick("mask", k + 1, len(comps.bounds))
        clock.stop()
        # polygons and the quicklook together (the PNG's zlib stream releases the GIL)
        t, c = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(1, thread_name_prefix="campwatch-png") as png:
            png_done = png.submit(_write_quicklook, paths["quicklook.png"], state.quicklook(final, tvalid),
                                  src_b.date, src_a.date, state.thumb)
            polygons = _merge_polygons(pieces, grid)
            png_done.result()
        timings["polygons_quicklook_s"] = time.perf_counter() - t
        cpu["polygons_quicklook_s"] = time.process_time() - c
    valid_px = int(passes.valid_rows.sum())
    valid_fraction = valid_px / (grid.height * grid.width)
    if valid_fraction < MIN_VALID_FRACTION:
        warn_low_valid(valid_fraction, src_b.path, src_a.path)
    area = changed_area_m2(row_counts, grid)
    params = detection_params(method, ctx, alpha=alpha, min_area_m2=min_area_m2, opening_radius=opening_radius,
                              increase_only=increase_only, window_size=window_size, sample=passes.sample, grid=grid,
                              confirmation=passes.confirmation)
    nb, fb, na, fa = state.clouds
    cloud_info = clouds_block(bool(clouds), before_fraction=cloud_fraction(int(fb), int(nb)),
                              after_fraction=cloud_fraction(int(fa), int(na)),
                              test=cloud_test_info() if clouds else None)
    params = pair_params(params, clouds=cloud_info, aoi=None, coregister=coregister, extra=extra)
    valid_area = changed_area_m2(passes.valid_rows, grid)  # the area of the valid pixels, row by row
    cov = coverage_of(valid_area, float(grid.pixel_area_m2().sum()) * grid.width, reference="grid")
    require_coverage(cov, min_fraction=min_observed_fraction, what=f"{before_path} -> {after_path}")
    params = with_coverage(params, cov, min_observed_fraction=min_observed_fraction)
    figures = change_figures(method, choice, changed_area_m2=area, valid_area_m2=valid_area,
                             changed_pixels=int(row_counts.sum()), valid_fraction=valid_fraction, grid=grid,
                             coregistration=shift_dict, params=params)
    summary = summary_head(figures, coregistration_note=NO_COREGISTER_NOTE if shift_dict is None else coreg_note,
                           histogram={**histogram_summary(passes.hist, valid_pixels=valid_px), "accumulated": not known},
                           before=date_block(src_b.date, src_b.profile.name, _sources(src_b, read_bands)),
                           after=date_block(src_a.date, src_a.profile.name, _sources(src_a, read_bands)))
    # the polygons carry the pair's confidence, known once coverage is
    gdf = changes_layer(polygons, summary, date_before=src_b.date, date_after=src_a.date)
    with atomic_path(paths["changes.gpkg"]) as tmp:
        write_layers(tmp, {"changes": gdf}, stamp=vector_stamp(src_b.date, src_a.date))
    summary["limitations"] = limitations(grid)
    fit_px = sum(int(w.height * w.width) for w in sample)
    if fit_px < grid.height * grid.width:
        summary["limitations"].append(
            f"the radiometric fit samples {fit_px / (grid.height * grid.width):.1%} of the grid ({len(sample)} "
            "windows); on a full test tile, moving the sample windows by 16 px changed the changed area by 1.5%")
    not_done = ["quicklook.png is decimated (every "
                f"{state.thumb}th pixel), not full resolution"]
    if structures:
        not_done.append("built-up footprint growth (structures) is not computed when streaming; run compare "
                        "with --aoi on the area of interest for the structures layer")
    summary["processing"] = {
        "mode": "streaming", "executor": "dask.distributed" if client is not None else f"threads ({workers})",
        "strip_rows": strip if client is None else None, "window_px": chunk, "halo_px": plan.halo,
        "file_block": [brow, bcol], "passes": 2 if known else 3,
        "fit_windows": len(sample), "not_done": not_done,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "wall_s": round(time.perf_counter() - t_start, 2),
    }
    summary["campwatch_version"] = __version__
    summary["outputs"] = sorted(names)

    write_json(paths["summary.json"], summary)
    return StreamResult(grid, method, choice, None if known else passes.hist, valid_fraction, area,
                        int(row_counts.sum()), len(gdf),
                        shift_dict, params, summary, paths)


class _Collect:
    """What the engine keeps of the score passes beyond :class:`campwatch.detect.Passes`: cloud
    counts, the hit pixels' scores (for the polygons) and the quicklook thumbnails."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.clouds = np.zeros(4, dtype=np.int64)
        self.thumb = max(1, math.ceil(max(grid.shape) / QUICKLOOK_PX))
        th = (-(-grid.height // self.thumb), -(-grid.width // self.thumb))
        self.tb = np.full((3, *th), np.nan, np.float32)
        self.ta = np.full((3, *th), np.nan, np.float32)
        self.vb = np.zeros(th, bool)
        self.va = np.zeros(th, bool)
        self._scores: list[tuple[Window, np.ndarray, np.ndarray]] = []

    def add(self, w: _WindowOut) -> None:
        core = w.change.core
        assert core is not None
        r0, c0 = int(core.row_off), int(core.col_off)
        self.clouds += np.asarray(w.cloud)
        if w.thumbs is not None:
            t = self.thumb
            ts = (slice(-(-r0 // t), None), slice(-(-c0 // t), None))
            tb, vb, ta, va = w.thumbs
            h, wd = vb.shape
            ts = (slice(ts[0].start, ts[0].start + h), slice(ts[1].start, ts[1].start + wd))
            self.tb[(slice(None), *ts)] = tb
            self.ta[(slice(None), *ts)] = ta
            self.vb[ts] = vb
            self.va[ts] = va

    def add_hits(self, w: WindowChange) -> None:
        assert w.hit is not None and w.core is not None
        idx = np.flatnonzero(w.hit).astype(np.int64)
        self._scores.append((w.core, idx, w.score.ravel()[idx]))

    def hit_scores(self, r0: int, r1: int) -> np.ndarray:
        """(r1 - r0, N) float32: the scores of the hit pixels of rows [r0, r1), NaN elsewhere."""
        out = np.full((r1 - r0, self.grid.width), np.nan, np.float32)
        for core, idx, vals in self._scores:
            wr0, wc0 = int(core.row_off), int(core.col_off)
            wh, ww = int(core.height), int(core.width)
            if wr0 >= r1 or wr0 + wh <= r0 or not len(idx):
                continue
            rr, cc = np.divmod(idx, ww)
            rr = rr + wr0
            sel = (rr >= r0) & (rr < r1)
            out[rr[sel] - r0, cc[sel] + wc0] = vals[sel]
        return out

    def quicklook(self, final: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(m, 3n, 3) uint8: before, after, after with change in red (no data grey), decimated."""
        from affine import Affine

        g = Grid(self.vb.shape, self.grid.transform @ Affine.scale(self.thumb), self.grid.crs)
        bands = ("red", "green", "blue")
        return quicklook_panels(Scene(self.tb, bands, g, self.vb), Scene(self.ta, bands, g, self.va),
                                final[:valid.shape[0], :valid.shape[1]], ~valid)


def _write_quicklook(path: Path, strip: np.ndarray, before_date: Any, after_date: Any, thumb: int) -> None:
    """The streaming engine's ``quicklook.png``: its decimated panels, titled and with a legend
    (:func:`campwatch.compare.quicklook_titles`, :func:`campwatch.plot.quicklook_png`)."""
    png = quicklook_png(np.split(strip, 3, axis=1), titles=quicklook_titles(before_date, after_date),
                        legend=QUICKLOOK_LEGEND, note=f"campwatch {__version__}, streamed", pixel_step=thumb)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)


def _strip_polygons(lab: np.ndarray, grid: Grid, r0: int, r1: int, scores: np.ndarray) -> Any:
    """Polygons of one strip of component labels (rows ``r0:r1`` of ``grid``), with mean scores."""
    g = grid.window(Window(0, r0, grid.width, r1 - r0))
    return mask_to_polygons(None, g, values={"score": scores}, labels=lab)


def _merge_polygons(pieces: list[Any], grid: Grid) -> Any:
    """One row per object id: pieces cut by strip borders are unioned, their means pooled."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    if not pieces:
        return mask_to_polygons(np.zeros((1, 1), bool), grid.window(Window(0, 0, 1, 1)),
                                values={"score": np.zeros((1, 1))})
    gdf = pd.concat(pieces, ignore_index=True)
    dup = gdf["object_id"].duplicated(keep=False)
    if not dup.any():
        return gpd.GeoDataFrame(gdf, geometry="geometry", crs=grid.crs).sort_values("object_id").reset_index(drop=True)
    single = gdf[~dup]
    multi = gdf[dup]
    rows = []
    for oid, grp in multi.groupby("object_id", sort=True):
        n = grp["n_pixels"].to_numpy()
        rows.append({"object_id": oid, "n_pixels": int(n.sum()),
                     "mean_score": float((grp["mean_score"].to_numpy() * n).sum() / n.sum()),
                     "geometry": shapely.union_all(list(grp.geometry))})
    merged = add_metrics(gpd.GeoDataFrame(rows, geometry="geometry", crs=grid.crs))
    out = pd.concat([single, merged[single.columns]], ignore_index=True)
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=grid.crs)
    return out.sort_values("object_id").reset_index(drop=True)
