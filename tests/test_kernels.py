"""The compiled kernels (campwatch._kernels) give the numbers of the plain numpy expressions they
replace, bit for bit, on real pixels (the sample tiles, one OSCD city with cirrus and SWIR, the
cloudy Slovenia date, a LEVIR-CD crop).  The numpy references below are the formulas the
kernels were written from; a kernel that drifts from them fails here."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio

from campwatch.compare import read_pair
from campwatch.detect import fit_context
from campwatch.errors import AcquisitionDateWarning
from campwatch.io import kept_open, open_source, read_scene, read_source
from campwatch.masks import cloud_mask
from campwatch.normalise import Moments, fit_relative
from campwatch.scene import Scene
from campwatch.threshold import Histogram


# ------------------------------------------------------------------------------------------
# numpy references
# ------------------------------------------------------------------------------------------
def _box_sum(x: np.ndarray, size: int) -> np.ndarray:
    """Sum over a ``size`` × ``size`` neighbourhood, edges repeated (``mode="nearest"``).

    Each output is a fixed-order sum of its own neighbours, so the value of a pixel does
    not depend on where the array (the window) starts; ``ndimage.uniform_filter`` keeps a
    running sum along each line and would differ in the last bits between windowings.
    """
    h = size // 2
    p = np.pad(x, h, mode="edge")
    m, n = x.shape
    rows = p[0:m].copy()
    for k in range(1, size):
        rows += p[k:k + m]
    out = rows[:, 0:n].copy()
    for k in range(1, size):
        out += rows[:, k:k + n]
    return out


def _nanmean_filter(x: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size`` × ``size`` neighbourhood of the valid pixels only (float32)."""
    num = _box_sum(np.where(valid, x, np.float32(0)).astype(np.float32, copy=False), size)
    # the count of valid neighbours is an exact small integer: counted in one byte
    den = _box_sum(valid.view(np.uint8), size) if size * size < 256 else _box_sum(valid.astype(np.int32), size)
    with np.errstate(divide="ignore", invalid="ignore"):
        num /= den
    num[den == 0] = np.nan
    return num


def _cloud_tests_numpy(scene: Scene, hot=0.0, strong=0.04, bright=0.3, white_t=0.7, cirrus_t=0.01,
                       cirrus_haze=0.0025) -> np.ndarray:
    f32 = np.float32
    with np.errstate(invalid="ignore", divide="ignore"):
        blue, green, red, nir = (scene.band(b) for b in ("blue", "green", "red", "nir"))
        vis = blue + green
        vis += red
        vis /= f32(3.0)
        dev = np.abs(blue - vis)
        dev += np.abs(green - vis)
        dev += np.abs(red - vis)
        white = (vis > 0) & (dev < f32(white_t) * vis)
        ndvi = nir - red
        ndvi /= nir + red
        h = blue - f32(0.5) * red
        h -= f32(0.08)
        haze = (h > f32(hot)) & (ndvi > f32(0.2))
        if scene.has("cirrus"):
            haze &= scene.band("cirrus") > f32(cirrus_haze)
        clouds = haze | (h > f32(strong))
        clouds |= (vis > f32(bright)) & white & (ndvi < f32(0.4))
        if scene.has("cirrus"):
            clouds |= scene.band("cirrus") > f32(cirrus_t)
        if scene.has("swir16"):
            swir = scene.band("swir16")
            ndsi = (green - swir) / (green + swir)
            clouds &= ~((ndsi > f32(0.6)) & (nir > f32(0.11)))
    clouds &= scene.valid
    share = _box_sum(clouds.astype(np.uint8), 5)  # the 5 x 5 majority filter, edges repeated
    return (2 * share.astype(np.int32) > 25) & scene.valid


def _default_score_numpy(rel, bands, b, a, v) -> np.ndarray:
    def nd(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            return ((x - y) / (x + y + 1e-6)).astype(np.float32)

    sel = [bands.index(x) for x in rel.bands]
    mag = np.zeros(v.shape, np.float32)
    for i, k in enumerate(sel):
        z = rel.residual(i, b[k], a[k])
        z *= z
        mag += z
    np.sqrt(mag, out=mag)
    s = _nanmean_filter(mag, v, 3)
    g = bands.index
    water = (b[g("nir")] < 0.08) & (a[g("nir")] < 0.08)
    if "swir16" in bands:
        water = ((b[g("swir16")] < 0.05) & (b[g("nir")] < 0.08)) | ((a[g("swir16")] < 0.05) & (a[g("nir")] < 0.08))
    grown = water.copy()
    grown[1:] |= water[:-1]
    grown[:-1] |= water[1:]
    grown[:, 1:] |= water[:, :-1]
    grown[:, :-1] |= water[:, 1:]
    veg = np.fmax(nd(b[g("nir")], b[g("red")]), nd(a[g("nir")], a[g("red")]))
    veg = _nanmean_filter(veg, v & np.isfinite(veg), 3)
    np.nan_to_num(veg, copy=False, nan=0.0)
    np.subtract(np.float32(0.75), veg, out=veg)
    veg /= np.float32(0.3)
    np.clip(veg, 0.0, 1.0, out=veg)
    s *= veg
    s[grown] = 0.0
    s[~v] = np.nan
    return s


# ------------------------------------------------------------------------------------------
# scenes
# ------------------------------------------------------------------------------------------
def _scenes(samples: Path, shared: Path) -> list[Scene]:
    out = []
    for city in ("rennes", "bercy"):
        b, a, _ = read_pair(samples / city / "imgs_1", samples / city / "imgs_2")
        out += [b, a]
    out.append(read_scene(shared / "s2-timeseries-slovenia" / "slovenia_2015-07-31.tif"))
    return out


def test_cloud_kernel_is_the_numpy_cloud_test(samples, shared_data):
    for scene in _scenes(samples, shared_data):
        ref = _cloud_tests_numpy(scene)
        got = cloud_mask(scene)
        assert np.array_equal(got, ref), f"{scene.label}: {(got != ref).sum()} pixels differ"
    # the cloudy date is mostly flagged, so the comparison covered both answers
    assert 0.5 < cloud_mask(scene).mean() < 1.0


def test_default_score_kernel_is_the_numpy_score(samples):
    from campwatch.detect.methods import _default_score

    for city in ("rennes", "paris"):
        b, a, _ = read_pair(samples / city / "imgs_1", samples / city / "imgs_2")
        bands = b.bands
        v = b.valid & a.valid
        v[5:9, 40:60] = False  # invalid pixels inside the window as well
        ctx = fit_context("default", bands, lambda b=b, a=a, v=v: [(b.data, a.data, v)])
        sel = [bands.index(x) for x in ctx.rel.bands]
        got = _default_score(ctx, b.data, a.data, v, sel)
        ref = _default_score_numpy(ctx.rel, bands, b.data, a.data, v)
        assert np.array_equal(got, ref, equal_nan=True)
        assert np.isfinite(got[v]).all() and np.isnan(got[~v]).all()


def test_relative_fit_pass_is_the_numpy_fit(samples):
    b, a, _ = read_pair(samples / "rennes" / "imgs_1", samples / "rennes" / "imgs_2")
    names = ("blue", "green", "red", "nir")
    x, y = b.select(names).data, a.select(names).data
    v = b.valid & a.valid

    def windows():
        return [(x[:, :170], y[:, :170], v[:170]), (x[:, 170:], y[:, 170:], v[170:])]

    fit = fit_relative(windows, names)
    gain = offset = sigma = None
    for _ in range(4):  # the numpy loop the kernel replaced
        acc = Moments.zeros(4)
        for xb, ya, vv in windows():
            xs, ys = xb[:, vv], ya[:, vv]
            w = np.isfinite(xs) & np.isfinite(ys)
            if gain is not None:
                with np.errstate(invalid="ignore"):
                    w &= np.abs(ys - (gain[:, None] * xs + offset[:, None])) / sigma[:, None] < 2.5
            acc.add(xs, ys, w)
        gain, offset, sigma = acc.fit()
    assert np.array_equal(fit.gain, gain) and np.array_equal(fit.offset, offset)
    assert np.array_equal(fit.sigma, sigma)


def test_histogram_kernel_has_numpy_bins():
    rng = np.random.default_rng(3)
    h = Histogram.linear(0.0, 64.0, bins=2048)
    edges = h.edges
    # values on, just above and just below every edge, out of range, and not finite
    x = np.concatenate([rng.gamma(1.0, 3.0, 50_000), edges, np.nextafter(edges, np.inf),
                        np.nextafter(edges, -np.inf), [-1.0, 1e9, np.nan, np.inf, -np.inf]])
    for dtype in (np.float64, np.float32):
        v = x.astype(dtype)
        h = Histogram.linear(0.0, 64.0, bins=2048)
        h.add(v)
        w = v.astype(np.float64)
        w = np.clip(w[np.isfinite(w)], edges[0], np.nextafter(edges[-1], -np.inf))
        assert np.array_equal(h.counts, np.histogram(w, bins=edges)[0])


def _band_by_band(src, grid, monkeypatch):
    from campwatch.io import readers

    with monkeypatch.context() as m:
        m.setattr(readers, "one_read", lambda *a: None)
        return read_source(src, grid)


def _s2_stack(samples: Path, out: Path) -> Path:
    """Rennes' B02, B03, B04, B08 (uint16 L1C DN) as one 4-band GeoTIFF, bands named."""
    files = [next((samples / "rennes" / "imgs_1").glob(f"*_{b}.tif")) for b in ("B02", "B03", "B04", "B08")]
    with rasterio.open(files[0]) as ds:
        prof = ds.profile
    prof.update(count=4, driver="GTiff")
    with rasterio.open(out, "w", **prof) as dst:
        for i, f in enumerate(files):
            with rasterio.open(f) as ds:
                dst.write(ds.read(1), i + 1)
            dst.set_band_description(i + 1, f.stem[-3:])
    return out


def test_one_read_conversion_equals_band_by_band_reads(samples, shared_data, tmp_path, monkeypatch):
    """A multi-band file read in one call and converted by one kernel gives the band-by-band
    numbers, with nodata, zero fill and all-zero pixels present (real LEVIR-CD and S2 pixels)."""
    from campwatch.io.readers import one_read

    crop = shared_data / "vhr-levircd" / "crop256" / "A" / "test_2_0000_0000.tif"
    s2 = _s2_stack(samples, tmp_path / "s2_stack.tif")
    cases = []
    for path, nodata in ((crop, None), (s2, 7777)):
        with rasterio.open(path) as ds:
            prof, arr = ds.profile, ds.read()
        arr[:, 10:20, 10:20] = 0  # all bands zero: fill
        arr[0, 30:40, 30:40] = 0  # one band zero: a dark value (8-bit, no nodata) or fill (16-bit)
        if nodata is not None:
            arr[2, 45:50, 45:52] = nodata  # the file's nodata value in one band
        prof.update(nodata=nodata)
        out = tmp_path / f"{path.stem}.tif"
        with rasterio.open(out, "w", **prof) as dst:
            dst.write(arr)
        cases.append(out)
    for path in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AcquisitionDateWarning)
            src = open_source(path)
            g = src.finest.grid
            assert one_read(src, g, list(src.keys)) is not None  # the one-read path is taken
            for win_grid in (g, g.window(rasterio.windows.Window(5, 7, 60, 50))):
                fast = read_source(src, win_grid)
                slow = _band_by_band(src, win_grid, monkeypatch)
                assert np.array_equal(fast.data, slow.data, equal_nan=True)
                assert np.array_equal(fast.valid, slow.valid)
                assert fast.meta == slow.meta
        assert not fast.valid.all()  # the fill was found


def test_kept_open_reuses_and_closes_handles(samples):
    from campwatch.io import datasets

    src = open_source(samples / "rennes" / "imgs_1")
    g = src.finest.grid
    with kept_open():
        read_source(src, g, bands=["red"])
        read_source(src, g, bands=["red"])
        kept = dict(datasets._KEPT or {})
        assert len(kept) == 1  # one file, one thread: one handle, reused
    assert datasets._KEPT is None
    assert all(ds.closed for ds in kept.values())


def test_neighbourhood_kernels_at_edges_and_odd_shapes():
    """The majority filter and the 3 × 3 valid mean repeat their numpy formulas on masks and
    images down to one row or one column, where every neighbourhood is mostly edge.  (Random
    masks: these kernels only count and average, so any values exercise them.)"""
    from campwatch._kernels import box_mean3, majority

    rng = np.random.default_rng(7)
    for shape in ((1, 1), (1, 9), (9, 1), (2, 3), (6, 5), (37, 61)):
        valid = rng.random(shape) < 0.8
        for r in (1, 2, 3):
            mask = rng.random(shape) < 0.5
            size = 2 * r + 1
            ref = (2 * _box_sum(mask.astype(np.int32), size) > size * size) & valid
            assert np.array_equal(majority(mask, valid, r), ref), (shape, r)
        x = rng.random(shape).astype(np.float32)
        assert np.array_equal(box_mean3(x, valid), _nanmean_filter(x, valid, 3), equal_nan=True), shape
