"""Change detection on real sample pixels: self-comparison, windowing, methods, clean-up."""

from __future__ import annotations

import numpy as np
import pytest

from campwatch.bench.metrics import confusion, labels_to_bool
from campwatch.detect import METHODS, NODATA, clean_mask, detect_change
from campwatch.errors import GridMismatchError, MissingBandsError
from campwatch.io import read_raster, read_scene

BANDS = ["blue", "green", "red", "nir", "swir16"]


@pytest.fixture(scope="module")
def pair():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "data" / "sample_tiles" / "rennes"
    b = read_scene(root / "imgs_1", bands=BANDS)
    a = read_scene(root / "imgs_2", grid=b.grid, bands=BANDS)
    lab, _ = read_raster(root / "cm" / "rennes-cm.tif", grid=b.grid)
    return b, a, lab


@pytest.mark.parametrize("method", [m for m in METHODS])
def test_scene_compared_with_itself_gives_no_change(pair, method):
    b, _, _ = pair
    r = detect_change(b, b, method=method)
    assert r.changed_area_m2 == 0.0
    assert not (r.mask == 1).any()
    assert set(np.unique(r.mask)) <= {0, NODATA}


def test_windowed_equals_whole_array(pair):
    b, a, _ = pair
    whole = detect_change(b, a, window_size=None, opening_radius=1)
    small = detect_change(b, a, window_size=64, opening_radius=1)
    # every step is local with a fixed summation order, so windowing changes no bit
    assert np.array_equal(small.score, whole.score, equal_nan=True)
    assert small.threshold.value == whole.threshold.value
    assert np.array_equal(small.mask, whole.mask)
    assert small.params["radiometric_fit"] == whole.params["radiometric_fit"]


def test_default_finds_labelled_change_better_than_naive(pair):
    b, a, lab = pair
    truth, ok = labels_to_bool(lab)
    default = confusion(detect_change(b, a).mask == 1, truth, valid=ok)
    naive = confusion(detect_change(b, a, method="naive-cva", min_area_m2=0).mask == 1, truth, valid=ok)
    assert default.f1 > 0.3
    assert default.f1 > naive.f1 - 0.1  # rennes is the naive baseline's best city


def test_area_is_sum_of_geodesic_pixel_areas(pair):
    b, a, _ = pair
    r = detect_change(b, a)
    rows = b.grid.pixel_area_m2()
    assert r.changed_area_m2 == pytest.approx(float(((r.mask == 1) * rows).sum()))
    # EPSG:4326 at 48°N: a pixel is about 10 m x 10 m, not 1e-8 degrees²
    assert 90 < r.changed_area_m2 / max((r.mask == 1).sum(), 1) < 120


def test_min_area_and_increase_only_reduce_change(pair):
    b, a, _ = pair
    base = detect_change(b, a, min_area_m2=0)
    mmu = detect_change(b, a, min_area_m2=2000)
    inc = detect_change(b, a, increase_only=True)
    assert mmu.changed_area_m2 < base.changed_area_m2
    assert inc.changed_area_m2 <= detect_change(b, a).changed_area_m2


def test_inputs_not_mutated(pair):
    b, a, _ = pair
    before = b.data.copy()
    detect_change(b, a, method="irmad")
    assert np.array_equal(before, b.data, equal_nan=True)


def test_cva_direction_and_errors(pair):
    b, a, _ = pair
    r = detect_change(b, a, method="cva")
    assert r.direction is not None and np.nanmax(np.abs(r.direction)) <= 180
    with pytest.raises(MissingBandsError):
        detect_change(b.select(["red"]), a.select(["red"]))
    other = read_scene("data/sample_tiles/bercy/imgs_1", bands=BANDS)
    with pytest.raises(GridMismatchError):
        detect_change(b, other)


def test_clean_mask_opening_removes_single_pixels(pair):
    b, _, _ = pair
    s = np.zeros(b.grid.shape, np.float32)
    s[10, 10] = 9
    s[50:60, 50:60] = 9
    m = clean_mask(s, 5.0, b.grid, valid=np.ones(b.grid.shape, bool), opening_radius=1)
    assert m[10, 10] == 0 and m[55, 55] == 1


def test_deep_confirmation_drops_whole_regions_and_raises_precision(pair):
    """The default keeps a region only where a pretrained network's features changed too: the
    confirmed mask is the unconfirmed one minus whole regions, and it scores better on rennes's labels."""
    from scipy import ndimage

    b, a, lab = pair
    truth, ok = labels_to_bool(lab)
    confirmed = detect_change(b, a)
    plain = detect_change(b, a, deep_confirm=False)
    assert plain.params["deep_confirmation"]["method"] == "skipped"
    block = confirmed.params["deep_confirmation"]
    on, off = confirmed.mask == 1, plain.mask == 1
    assert not (on & ~off).any()  # nothing added
    eight = np.ones((3, 3), bool)
    regions, n = ndimage.label(off, structure=eight)
    assert block["regions"] == n and 0 < block["confirmed"] < n
    # every region is kept whole or dropped whole
    kept = np.unique(regions[on])
    assert np.array_equal(np.isin(regions, kept) & off, on) and len(kept) == block["confirmed"]
    assert 0.3 < block["cut"] < 3.0 and block["pixels_scored"] > 0
    c, p = confusion(on, truth, valid=ok), confusion(off, truth, valid=ok)
    assert c.precision > p.precision and c.f1 >= p.f1
