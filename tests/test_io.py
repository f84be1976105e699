import datetime as dt

import numpy as np
import pytest

from campwatch import (
    InvalidSceneError,
    MissingBandsError,
    NoOverlapError,
    OutputExistsError,
    TileReadError,
    open_source,
    read_raster,
    read_scene,
    write_raster,
)
from campwatch.io import atomic_dir, atomic_path

S2_KEYS = ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "nir09",
           "cirrus", "swir16", "swir22")


def test_sentinel2_band_folder_has_13_common_names_and_dates(samples):
    a = open_source(samples / "rennes" / "imgs_1")
    b = open_source(samples / "rennes" / "imgs_2")
    assert a.keys == S2_KEYS and a.profile.name == "sentinel2-l1c"
    assert a.date == dt.date(2015, 8, 21) and "dates.txt" in a.date_source
    # imgs_2 gets its date from the tile file name (sensing time), which agrees with dates.txt
    assert b.date == dt.date(2017, 6, 21)


def test_read_scene_resamples_all_bands_to_finest_grid(samples):
    s = read_scene(samples / "bercy" / "imgs_1")
    assert s.data.shape == (13, 395, 360) and s.data.dtype == np.float32
    assert s.grid.same_as(open_source(samples / "bercy" / "imgs_1").band("blue").grid)
    # reflectance, not DN: L1C TOA of a city is mostly 0.02..0.5
    red = s.band("red")[s.valid]
    assert 0.02 < np.median(red) < 0.3
    assert s.valid_fraction > 0.99


def test_aoi_window_reads_only_the_aoi(samples):
    from shapely.geometry import box

    aoi = box(-1.66, 48.10, -1.64, 48.12)
    s = read_scene(samples / "rennes" / "imgs_1", aoi=aoi, bands=["red", "nir"], margin_m=0)
    full = read_scene(samples / "rennes" / "imgs_1", bands=["red", "nir"])
    win = full.grid.window_of_bounds(aoi.bounds)
    assert s.grid.shape == (win.height, win.width)
    r, c = int(win.row_off), int(win.col_off)
    np.testing.assert_array_equal(s.data, full.data[:, r:r + win.height, c:c + win.width])
    with pytest.raises(NoOverlapError, match="outside the scene"):
        read_scene(samples / "rennes" / "imgs_1", aoi=box(126.9, 39.5, 127.0, 39.6))


def test_utm_grid_gives_metric_pixels(samples):
    from shapely.geometry import box

    s = read_scene(samples / "rennes" / "imgs_1", aoi=box(-1.66, 48.10, -1.64, 48.12), bands=["red"],
                   resolution=10.0)
    assert s.grid.crs.to_epsg() == 32630 and s.grid.res == (10.0, 10.0)
    # 10 m UTM pixels cover 100 m² on the map; on the ellipsoid it is 100 / areal scale (~0.9996-1.001)
    assert s.grid.pixel_area_m2()[0, 0] == pytest.approx(100.0, rel=2e-3)
    from pyproj import Geod

    lon, lat = s.grid.lonlat(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 1.0, 1.0, 0.0]))
    area, _ = Geod(ellps="WGS84").polygon_area_perimeter(lon, lat)
    assert s.grid.pixel_area_m2()[0, 0] == pytest.approx(abs(area), rel=2e-4)


def test_landsat_taizhou_reads_six_common_names(shared_data):
    s = read_scene(shared_data / "landsat-taizhou" / "taizhou_2000-03-17.tif")
    assert s.bands == ("blue", "green", "red", "nir", "swir16", "swir22")
    assert s.date == dt.date(2000, 3, 17) and s.grid.res == (30.0, 30.0)


def test_band_override_and_missing_bands(shared_data):
    path = shared_data / "vhr-joplin-native" / "joplin_pre_utm15n_0p6m.tif"
    s = read_scene(path, band_map={"blue": 1, "green": 2, "red": 3})
    assert s.bands == ("blue", "green", "red")
    with pytest.raises(MissingBandsError, match="has only blue, green, red"):
        s.require(["nir"], method="ndvi")


@pytest.mark.parametrize("bad", ["missing", "text", "empty"])
def test_bad_inputs_raise_typed_errors(tmp_path, bad):
    target = tmp_path / "x"
    if bad == "text":
        target = tmp_path / "x.tif"
        target.write_text("not a raster")
        err = TileReadError
    elif bad == "empty":
        target.mkdir()
        err = InvalidSceneError
    else:
        err = TileReadError
    with pytest.raises(err, match=str(target.name)):
        open_source(target)


def test_write_raster_is_atomic_and_refuses_overwrite(tmp_path, samples):
    s = read_scene(samples / "paris" / "imgs_1", bands=["red"])
    out = tmp_path / "red.tif"
    write_raster(out, s.data[0], s.grid)
    arr, grid = read_raster(out)
    assert grid.same_as(s.grid)
    np.testing.assert_array_equal(arr, s.data[0])
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_raster(out, s.data[0], s.grid)
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "never.tif") as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "dir") as tmpd:
        (tmpd / "a").write_text("half")
        raise RuntimeError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["red.tif"]


def test_unreferenced_label_takes_the_band_grid(samples):
    s = read_scene(samples / "rennes" / "imgs_1", bands=["blue"])
    label, grid = read_raster(samples / "rennes" / "cm" / "rennes-cm.tif", grid=s.grid)
    assert grid is s.grid and set(np.unique(label)) == {1, 2}


def test_reprojection_onto_another_crs_warns_and_keeps_the_pixels(shared_data):
    """A UTM (EPSG:32633) scene read onto an EPSG:4326 grid is warped, warned about, and still lines up."""
    import warnings

    from affine import Affine
    from rasterio.warp import transform_bounds

    from campwatch.errors import ReprojectionWarning
    from campwatch.grid import Grid

    path = shared_data / "s2-timeseries-slovenia" / "slovenia_2015-07-11.tif"
    native = read_scene(path, bands=["red", "nir"])
    left, bottom, right, top = transform_bounds(native.grid.crs, "EPSG:4326", *native.grid.bounds)
    res = 1e-4  # ~8-11 m
    grid = Grid((int((top - bottom) / res), int((right - left) / res)), Affine(res, 0, left, 0, -res, top), "EPSG:4326")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warped = read_scene(path, grid=grid, bands=["red", "nir"])
    assert any(issubclass(w.category, ReprojectionWarning) and "EPSG:32633" in str(w.message) for w in caught)
    assert warped.grid.crs.to_epsg() == 4326 and warped.valid_fraction > 0.8
    # reflectance is preserved: same distribution inside the scene (bilinear only smooths)
    for band in ("red", "nir"):
        a, b = native.band(band)[native.valid], warped.band(band)[warped.valid]
        assert np.median(b) == pytest.approx(np.median(a), rel=0.05)


def test_single_zero_band_is_a_real_value_in_multiband_uint8(shared_data):
    import rasterio

    path = shared_data / "vhr-levircd" / "full1024" / "A" / "test_7.tif"
    with rasterio.open(path) as ds:
        raw = ds.read()
    some_zero = (raw == 0).any(axis=0) & ~(raw == 0).all(axis=0)
    assert some_zero.sum() > 100  # deep shadows: 0 in one band only
    s = read_scene(path)
    assert s.valid[some_zero].all()
    assert not s.valid[(raw == 0).all(axis=0)].any()


def test_aoi_with_swapped_coordinates_gets_a_hint(samples):
    from shapely.geometry import box

    with pytest.raises(NoOverlapError, match="look swapped"):
        read_scene(samples / "rennes" / "imgs_1", aoi=box(48.10, -1.66, 48.12, -1.64))


def test_png_bytes_read_back_by_gdal(samples):
    """The hand-assembled PNG (zlib stream in three chunks) decodes to the same pixels in GDAL."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    from campwatch.detect import rgb_composite
    from campwatch.io import png_bytes

    rgb = rgb_composite(read_scene(samples / "rennes" / "imgs_1", bands=["red", "green", "blue"]))
    # RGBA too (the report's map images), with the 'up' row filter and a partly transparent alpha
    rgba = np.dstack([rgb, np.where(rgb[..., 0] > 100, 0, 255).astype(np.uint8)])
    for image, kw in ((rgb, {}), (rgba, {"level": 6, "up_filter": True}), (rgb, {"up_filter": True})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with MemoryFile(png_bytes(image, **kw)) as mem, mem.open() as ds:
                assert ds.driver == "PNG" and ds.count == image.shape[2]
                back = ds.read().transpose(1, 2, 0)
        assert np.array_equal(back, image), kw
    assert rgb.std() > 10 and 0 < (rgba[..., 3] == 0).mean() < 1  # real imagery, not a flat image
    assert len(png_bytes(rgb, level=6, up_filter=True)) < len(png_bytes(rgb, level=6))


@pytest.mark.parametrize("which", ["one read", "band by band"])
def test_read_source_into_a_larger_array_at_an_offset(which, samples, shared_data):
    """The engine reads each window into its strip's arrays at a row and column: the same
    pixels as a plain read, nothing written outside the window, a clear error when it
    does not fit."""
    from rasterio.windows import Window

    from campwatch.io import read_source

    path = (shared_data / "vhr-levircd" / "full1024" / "A" / "test_7.tif" if which == "one read"
            else samples / "rennes" / "imgs_1")
    src = open_source(path)
    keys = list(src.keys)[:4]
    grid = src.finest.grid.window(Window(37, 21, 150, 90))
    plain = read_source(src, grid, bands=keys)
    data = np.full((len(keys), 130, 200), 7.0, np.float32)
    valid = np.ones((130, 200), bool)
    got = read_source(src, grid, bands=keys, out=(data, valid), at=(25, 40))
    assert np.array_equal(got.data, plain.data, equal_nan=True) and np.array_equal(got.valid, plain.valid)
    assert np.shares_memory(got.data, data)
    inside = np.zeros((130, 200), bool)
    inside[25:115, 40:190] = True
    assert (data[:, ~inside] == 7.0).all() and valid[~inside].all()
    with pytest.raises(ValueError, match=r"at \(50, 40\) do not hold"):
        read_source(src, grid, bands=keys, out=(data, valid), at=(50, 40))
