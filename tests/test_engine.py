"""The streaming engine gives the outputs of whole-array processing (real sample pixels, small windows)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from scipy import ndimage

from campwatch.compare import compare_scenes, read_pair
from campwatch.coregister import _shift_ndimage, apply_shift
from campwatch.detect import REGION_PEAK_SIGMA, Components, fit_windows
from campwatch.engine import compare_streaming, should_stream
from campwatch.layers import to_layer
from campwatch.masks import mask_clouds
from campwatch.vectorize import mask_to_polygons


@pytest.fixture(scope="module")
def paths(samples):
    return samples / "rennes" / "imgs_1", samples / "rennes" / "imgs_2"


def _read(out):
    with rasterio.open(out / "change_score.tif") as ds:
        score = ds.read(1)
    with rasterio.open(out / "change_mask.tif") as ds:
        mask = ds.read(1)
    return score, mask, gpd.read_file(out / "changes.gpkg", layer="changes")


def _assert_same(out, r, whole):
    score, mask, gdf = _read(out)
    assert np.array_equal(score, whole.score, equal_nan=True)  # bit for bit
    assert np.array_equal(mask, whole.mask)
    assert r.threshold.value == whole.threshold.value
    assert r.changed_area_m2 == whole.changed_area_m2
    ref = to_layer(mask_to_polygons(whole.mask == 1, whole.grid, values={"score": whole.score}), "changes")
    assert len(gdf) == len(ref) > 10
    assert gdf["object_id"].tolist() == ref["object_id"].tolist()
    assert gdf["n_pixels"].tolist() == ref["n_pixels"].tolist()
    np.testing.assert_allclose(gdf["area_m2"], ref["area_m2"], atol=0.1)  # each rounded to 0.1 m²
    np.testing.assert_allclose(gdf["mean_score"], ref["mean_score"], rtol=1e-6)


@pytest.mark.parametrize("options", [{}, {"opening_radius": 1, "increase_only": True, "min_area_m2": 400.0},
                                     {"strip_rows": 16}, {"strip_rows": 9, "opening_radius": 1}])
def test_streamed_equals_whole_array(paths, tmp_path, options):
    before, after = paths
    r = compare_streaming(before, after, tmp_path, window_size=64, **options)
    b, a, _ = read_pair(before, after)
    whole = compare_scenes(b, a, window_size=None, **{k: v for k, v in options.items() if k != "strip_rows"})
    _assert_same(tmp_path, r, whole)
    # co-registration and cloud figures are those of the whole-array run
    assert r.coregistration == whole.coregistration
    assert r.params["clouds"] == whole.params["clouds"]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["processing"]["mode"] == "streaming" and s["processing"]["passes"] == 2
    assert s["changed_pixels"] == int((whole.mask == 1).sum())


def test_streamed_otsu_takes_a_third_pass(paths, tmp_path):
    before, after = paths
    r = compare_streaming(before, after, tmp_path, window_size=128, threshold="otsu", coregister=False, clouds=False)
    b, a, _ = read_pair(before, after)
    whole = compare_scenes(b, a, threshold="otsu", coregister=False, clouds=False)
    _assert_same(tmp_path, r, whole)
    assert r.summary["processing"]["passes"] == 3


@pytest.mark.parametrize("threshold, stages", [("chi2", ["fit", "score", "confirm", "mask"]),
                                                ("otsu", ["fit", "score", "threshold", "confirm", "mask"])])
def test_streaming_reports_progress_per_window_and_strip(paths, tmp_path, threshold, stages):
    """Each stage counts up to its total, in order, and every window is counted once."""
    before, after = paths
    seen: list[tuple[str, int, int]] = []
    r = compare_streaming(before, after, tmp_path / "out", window_size=128, threshold=threshold, coregister=False,
                          clouds=False, strip_rows=128, progress=lambda *a: seen.append(a))
    assert list(dict.fromkeys(s for s, _, _ in seen)) == stages
    for stage in stages:
        done = [d for s, d, _ in seen if s == stage]
        total = {t for s, _, t in seen if s == stage}
        assert len(total) == 1 and done == list(range(1, total.pop() + 1)), (stage, done)
    assert all(sum(s == stage for s, _, _ in seen) > 1 for stage in ("fit", "score"))
    assert max(d for s, d, _ in seen if s == "fit") == r.summary["processing"]["fit_windows"]


def test_dask_run_equals_local_run(paths, tmp_path):
    distributed = pytest.importorskip("distributed")
    before, after = paths
    local = compare_streaming(before, after, tmp_path / "local", window_size=128)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dist = compare_streaming(before, after, tmp_path / "dask", window_size=128, client=client)
    assert dist.summary["processing"]["executor"] == "dask.distributed"
    for name in ("change_score.tif", "change_mask.tif"):
        with rasterio.open(tmp_path / "local" / name) as x, rasterio.open(tmp_path / "dask" / name) as y:
            assert np.array_equal(x.read(1), y.read(1), equal_nan=True)
    assert dist.changed_area_m2 == local.changed_area_m2 and dist.polygons == local.polygons


def test_strip_components_equal_whole_mask_labels(paths, tmp_path):
    """Regions that cross strip borders are merged: same regions, areas and order as ndimage.label."""
    before, after = paths
    b, a, _ = read_pair(before, after)
    hit = compare_scenes(b, a, min_area_m2=0, coregister=False).mask == 1
    lab, n = ndimage.label(hit, structure=np.ones((3, 3), bool))
    comps = Components(hit, b.grid.pixel_area_m2(), strip=16)
    assert comps.count == n == comps.kept_count
    strips = np.concatenate([comps.labels(k) for k in range(len(comps.bounds))])
    assert np.array_equal(strips, lab)
    area = np.broadcast_to(b.grid.pixel_area_m2(), lab.shape)
    np.testing.assert_allclose(comps.object_area_m2, np.bincount(lab.ravel(), weights=area.ravel())[1:], rtol=1e-9)


def test_fit_sample_and_auto_switch(paths):
    b, _, _ = read_pair(*paths)
    assert sum(int(w.width * w.height) for w in fit_windows(b.grid)) == b.grid.height * b.grid.width
    assert not should_stream(b.grid)


@pytest.mark.parametrize("dx,dy", [(-0.06, 0.08), (0.43, -1.27), (2.0, -3.0), (-7.5, 0.25), (1.0, 1e-13)])
def test_window_shift_is_apply_shift_bit_for_bit(paths, dx, dy):
    """apply_shift's compiled float32 path repeats scipy.ndimage's float64 arithmetic exactly (cloud holes too)."""
    b, _, _ = read_pair(*paths)
    s = mask_clouds(b)
    s = s.with_valid(np.arange(s.grid.width)[None, :] % 37 != 5)  # invalid columns: NaN taps
    fast, ref = apply_shift(s, dx, dy), _shift_ndimage(s, dx, dy)
    assert np.array_equal(fast.valid, ref.valid)
    assert np.array_equal(fast.data, ref.data, equal_nan=True)
    assert fast.data.dtype == ref.data.dtype == np.float32


def _stack(folder, out, shift=None):
    """Rennes' four 10 m bands as one uint16 file (as a tile is delivered), the content moved
    by ``shift`` (dy, dx) px when given."""
    bands = []
    for b in ("B02", "B03", "B04", "B08"):
        path = next(folder.glob(f"*_{b}.tif"))
        with rasterio.open(path) as ds:
            x = ds.read(1).astype(np.float64)
            profile = ds.profile
        if shift is not None:
            x = ndimage.shift(x, shift, order=1, mode="nearest")
        bands.append(np.round(x).astype(np.uint16))
    profile.update(count=4, dtype="uint16", driver="GTiff", nodata=None)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.stack(bands))
        for i, b in enumerate(("B02", "B03", "B04", "B08")):
            dst.set_band_description(i + 1, b)
    return out


def test_streamed_equals_whole_array_with_a_subpixel_shift(paths, tmp_path):
    """A fractional misregistration is corrected window by window with the sample positions
    of the whole grid (``apply_shift(origin=...)``): the streamed outputs are still those of
    whole-array processing, bit for bit."""
    before = _stack(paths[0], tmp_path / "before.tif")
    after = _stack(paths[1], tmp_path / "after.tif", shift=(-0.63, 1.37))
    out = tmp_path / "out"
    r = compare_streaming(before, after, out, window_size=64, strip_rows=48)
    b, a, _ = read_pair(before, after)
    whole = compare_scenes(b, a, window_size=None)
    assert r.coregistration["applied"] and abs(r.coregistration["dx_px"] - 1.37) < 0.2
    assert r.coregistration == whole.coregistration
    _assert_same(out, r, whole)


def test_bit_rows_match_a_bool_mask():
    """BitRows stores what a bool array would, for windows on and off byte boundaries."""
    from campwatch.detect import BitRows

    rng = np.random.default_rng(0)
    for shape in ((7, 13), (5, 16), (9, 64), (3, 21)):
        ref, bits = np.zeros(shape, bool), BitRows(shape)
        for _ in range(200):
            r0 = int(rng.integers(0, shape[0]))
            r1 = int(rng.integers(r0 + 1, shape[0] + 1))
            c0 = min(8 * int(rng.integers(0, shape[1] // 8 + 1)) if rng.random() < 0.5 else int(rng.integers(0, shape[1])),
                     shape[1] - 1)
            c1 = int(rng.integers(c0 + 1, shape[1] + 1))
            if rng.random() < 0.5 and c0 % 8 == 0:
                c1 = min(shape[1], c0 + 8 * int(rng.integers(1, 4)))
            v = rng.random((r1 - r0, c1 - c0)) < 0.5
            ref[r0:r1, c0:c1] = v
            bits.put((slice(r0, r1), slice(c0, c1)), v)
            assert np.array_equal(bits[0:shape[0]], ref), (shape, r0, r1, c0, c1)


def test_strip_components_region_peak_equal_whole_mask(paths):
    """With seeds (the region peak), a region that crosses strips is kept when any strip holds
    its seed: the same regions as the whole-mask rule, and the peak drops some regions here."""
    before, after = paths
    b, a, _ = read_pair(before, after)
    r = compare_scenes(b, a, min_area_m2=0, coregister=False)
    with np.errstate(invalid="ignore"):
        hit = r.score > r.threshold.value
    seed = hit & np.nan_to_num(r.score > REGION_PEAK_SIGMA)
    lab, n = ndimage.label(hit, structure=np.ones((3, 3), bool))
    peak = ndimage.maximum(np.nan_to_num(r.score), lab, np.arange(1, n + 1))
    comps = Components(hit, b.grid.pixel_area_m2(), seed=seed, strip=16)
    assert comps.count == n and comps.kept_count == int((peak > REGION_PEAK_SIGMA).sum()) < n
    kept = np.concatenate([comps.labels(k) for k in range(len(comps.bounds))]) > 0
    assert np.array_equal(kept, np.concatenate([[False], peak > REGION_PEAK_SIGMA])[lab])
    # compare's mask is these regions less those the deep features do not confirm (whole ones)
    on, block = r.mask == 1, r.params["deep_confirmation"]
    assert not (on & ~kept).any() and block["regions"] == comps.kept_count
    assert np.array_equal(np.isin(lab, np.unique(lab[on])) & kept, on)
    assert len(np.unique(lab[on])) == block["confirmed"] < comps.kept_count


def test_streamed_cloud_fractions_are_counted_before_the_shift(samples, tmp_path):
    """Bercy's second date is shifted: its cloud fraction is counted on its own pixels before the
    shift moves them, as mask_clouds counts it in memory (the streamed figure was 0.182299 against
    0.174311 before this was fixed)."""
    before, after = samples / "bercy" / "imgs_1", samples / "bercy" / "imgs_2"
    r = compare_streaming(before, after, tmp_path, window_size=128)
    b, a, _ = read_pair(before, after)
    whole = compare_scenes(b, a, window_size=None)
    assert whole.coregistration["applied"] and r.coregistration == whole.coregistration
    assert whole.params["clouds"]["after_fraction"] > 0.1
    assert r.params["clouds"] == whole.params["clouds"]
