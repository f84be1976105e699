"""Co-registration on real OSCD pixels: known shifts are recovered, bad cases warn and are not corrected."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import ndimage

from campwatch import MisregistrationWarning, read_raster, read_scene
from campwatch.coregister import Shift, apply_shift, coregister, estimate_shift
from campwatch.errors import GridMismatchError


def _pair(root, city, bands=("red", "nir")):
    a = read_scene(root / city / "imgs_1", bands=list(bands))
    b = read_scene(root / city / "imgs_2", grid=a.grid, bands=list(bands))
    return a, b


def _shifted(scene, dx, dy):
    """``scene`` with its content moved (dx east, dy south) by cubic-spline resampling (NaN-free bands)."""
    data = np.stack([ndimage.shift(np.nan_to_num(b, nan=float(np.nanmedian(b))), (dy, dx), order=3, mode="nearest")
                     for b in scene.data]).astype(np.float32)
    return dataclasses.replace(scene, data=data)


@pytest.mark.parametrize("city", ["rennes", "paris", "bercy"])
def test_known_shift_of_second_date_is_recovered(samples, city):
    a, b = _pair(samples, city)
    base = estimate_shift(a.band("red"), b.band("red"))
    moved = _shifted(b, 2.3, -1.7)
    est = estimate_shift(a.band("red"), moved.band("red"))
    # across dates: the known shift adds to whatever misregistration the pair already has
    assert est.dx_px - base.dx_px == pytest.approx(2.3, abs=0.15)
    assert est.dy_px - base.dy_px == pytest.approx(-1.7, abs=0.15)
    # same date: the estimate itself
    same = estimate_shift(b.band("red"), moved.band("red"))
    assert same.dx_px == pytest.approx(2.3, abs=0.15) and same.dy_px == pytest.approx(-1.7, abs=0.15)
    assert same.reliability > 0.5 and est.reliability > 0.2


def test_sign_convention_with_an_integer_roll(samples):
    """Content that moves 3 columns east and 2 rows north is dx=+3, dy=-2."""
    a = read_scene(samples / "rennes" / "imgs_1", bands=["red"])
    red = a.band("red")
    moved = np.roll(np.roll(red, 3, axis=1), -2, axis=0)
    s = estimate_shift(red, moved)
    assert (round(s.dx_px, 2), round(s.dy_px, 2)) == (3.0, -2.0)


def test_coregister_corrects_and_reports_residual(samples):
    a, b = _pair(samples, "rennes")
    moved = _shifted(b, 2.3, -1.7)
    fixed, shift = coregister(a, moved)
    assert shift.applied and shift.residual_px is not None and shift.residual_px < 0.3
    assert fixed.grid.same_as(a.grid) and fixed.meta["coregistration"]["applied"] is True
    # input untouched, output realigned with the unshifted second date
    assert moved.data is not fixed.data and not np.isnan(moved.data).any()
    ok = fixed.valid & b.valid
    err_after = np.nanmean(np.abs(fixed.band("red")[ok] - b.band("red")[ok]))
    err_before = np.nanmean(np.abs(moved.band("red")[ok] - b.band("red")[ok]))
    assert err_after < 0.5 * err_before


def test_small_shift_is_left_alone(samples):
    a, b = _pair(samples, "rennes")
    out, shift = coregister(a, b, min_shift_px=5.0)
    assert not shift.applied and out.data is b.data and "below" in shift.reason


def test_large_shift_warns_and_is_not_corrected(samples):
    a, b = _pair(samples, "rennes")
    moved = _shifted(b, 14.0, 3.0)
    with pytest.warns(MisregistrationWarning, match="more than the 10 px"):
        out, shift = coregister(a, moved)
    assert not shift.applied and out.data is moved.data
    assert shift.dx_px == pytest.approx(14.0, abs=1.0)


def test_unreliable_estimate_warns_and_is_not_corrected(samples, shared_data):
    """Clear date against a fully cloudy date: no common structure, so no correction."""
    root = shared_data / "s2-timeseries-slovenia"
    clear = read_scene(root / "slovenia_2015-07-11.tif", bands=["red", "nir"])
    cloudy = read_scene(root / "slovenia_2015-08-20.tif", grid=clear.grid, bands=["red", "nir"])
    with pytest.warns(MisregistrationWarning, match="unreliable"):
        out, shift = coregister(clear, cloudy)
    assert not shift.applied and out.data is cloudy.data
    clear2 = read_scene(root / "slovenia_2015-08-30.tif", grid=clear.grid, bands=["red", "nir"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", MisregistrationWarning)
        _, ok = coregister(clear, clear2)
    assert ok.reliability > shift.reliability


def test_saclay_second_date_aligns_to_the_label_grid(shared_data):
    """saclay_e imgs_2 is a few pixels smaller: read onto imgs_1's grid, it lines up with imgs_1 and the label."""
    root = shared_data / "oscd" / "saclay_e"
    a = read_scene(root / "imgs_1", bands=["red", "nir"])
    from campwatch import open_source

    native = open_source(root / "imgs_2").band("red").grid
    assert native.shape != a.grid.shape
    b = read_scene(root / "imgs_2", grid=a.grid, bands=["red", "nir"])
    label, _ = read_raster(root / "cm" / "saclay_e-cm.tif", grid=a.grid)
    assert b.grid.same_as(a.grid) and label.shape == a.grid.shape == b.data.shape[1:]
    # Aligned by georeferencing the dates agree to about one pixel (measured: dx ~ +1.0, dy ~ 0),
    # whereas lining the arrays up by their top-left corner leaves them ~4 px apart.
    shift = estimate_shift(a.band("red"), b.band("red"), valid=a.valid & b.valid)
    h, w = native.shape
    by_shape = estimate_shift(a.band("red")[:h, :w], read_scene(root / "imgs_2", bands=["red"]).band("red")[:h, :w])
    assert shift.magnitude_px < 1.5 and shift.reliability > 0.5
    assert by_shape.magnitude_px > shift.magnitude_px + 2
    _, applied = coregister(a, b)
    assert applied.applied and applied.residual_px < 0.3
    # pixels imgs_2 does not cover are invalid, not zero reflectance
    assert b.valid_fraction > 0.95 and np.isnan(b.data[:, ~b.valid]).all()


def test_grid_mismatch_and_shift_record(samples):
    a = read_scene(samples / "rennes" / "imgs_1", bands=["red"])
    b = read_scene(samples / "paris" / "imgs_1", bands=["red"])
    with pytest.raises(GridMismatchError, match=r"grid=before\.grid"):
        coregister(a, b)
    d = Shift(1.0, -2.0, 0.8).to_dict()
    assert d["dx_px"] == 1.0 and d["dy_px"] == -2.0 and d["applied"] is False and d["magnitude_px"] == 2.236


def test_apply_shift_does_not_mutate(samples):
    a = read_scene(samples / "bercy" / "imgs_1", bands=["red"])
    before = a.data.copy()
    out = apply_shift(a, 0.5, 0.5)
    np.testing.assert_array_equal(a.data, before)
    assert out.valid.sum() < a.valid.sum()


def test_taper_is_skimage_hann_window():
    """The coregistration taper repeats skimage.filters.window("hann", shape) bit for bit
    (without importing scipy.signal at start-up)."""
    from skimage.filters import window

    from campwatch.coregister import _taper

    for shape in ((1024, 1024), (339, 563), (64, 31), (1, 9)):
        assert np.array_equal(_taper(shape), window("hann", shape))
