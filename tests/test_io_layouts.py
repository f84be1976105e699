"""Product layouts on disk: SAFE granules (L1C ``IMG_DATA``, L2A ``R10m/R20m/R60m``), plain per-band chips.

The trees are built in ``tmp_path`` from the real sample-tile band files, copied under the names
the ESA products use, so that every pixel is still real Sentinel-2 data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from campwatch import open_source, read_scene
from campwatch.io import read_raster

TILE = "T30UWU_20170621T110651"
R10 = ("B02", "B03", "B04", "B08")
R20 = ("B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12")
R60 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12")
# band files of the sample tile whose native pixels match each L2A resolution folder
_NATIVE = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
           "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}

MTD_L2A = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info><Product_Info><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>
  <Product_Image_Characteristics>
    <QUANTIFICATION_VALUES_LIST>
      <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
      <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
      <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
    </QUANTIFICATION_VALUES_LIST>
    <BOA_ADD_OFFSET_VALUES_LIST>
      <BOA_ADD_OFFSET band_id="0">-1000</BOA_ADD_OFFSET>
      <BOA_ADD_OFFSET band_id="1">-1000</BOA_ADD_OFFSET>
    </BOA_ADD_OFFSET_VALUES_LIST>
  </Product_Image_Characteristics></Product_Info></n1:General_Info>
</n1:Level-2A_User_Product>
"""


def _band_file(folder: Path, bid: str) -> Path:
    return next(folder.glob(f"*_{bid}.tif"))


def _fake_l2a_safe(samples: Path, root: Path, *, with_scl: bool = True) -> Path:
    """An L2A SAFE tree whose band files are real sample-tile bands renamed; returns the SAFE root."""
    src = samples / "rennes" / "imgs_2"
    safe = root / "S2A_MSIL2A_20170621T110651_N0400_R137_T30UWU_20170621T111222.SAFE"
    img = safe / "GRANULE" / "L2A_T30UWU_A010448_20170621T111222" / "IMG_DATA"
    qi = safe / "GRANULE" / "L2A_T30UWU_A010448_20170621T111222" / "QI_DATA"
    for res, bids in ((10, R10), (20, R20), (60, R60)):
        (img / f"R{res}m").mkdir(parents=True)
        for bid in bids:
            # the finest copy is the real band; coarser copies borrow a real band of that pixel size
            donor = bid if _NATIVE[bid] == res else {10: "B02", 20: "B05", 60: "B01"}[res]
            shutil.copy(_band_file(src, donor), img / f"R{res}m" / f"{TILE}_{bid}_{res}m.tif")
    qi.mkdir(parents=True)
    # quality masks named like bands must not be taken for bands
    shutil.copy(_band_file(src, "B02"), qi / "MSK_DETFOO_B02.tif")
    shutil.copy(_band_file(src, "B05"), qi / "MSK_CLDPRB_20m.tif")
    (safe / "MTD_MSIL2A.xml").write_text(MTD_L2A)
    if with_scl:
        with rasterio.open(_band_file(src, "B05")) as ds:
            prof = ds.profile
            scl = np.full((ds.height, ds.width), 4, dtype=np.uint8)  # 4 = vegetation
        scl[:40, :60] = 9  # cloud, high probability
        prof.update(dtype="uint8", nodata=0)
        with rasterio.open(img / "R20m" / f"{TILE}_SCL_20m.tif", "w", **prof) as dst:
            dst.write(scl, 1)
    return safe


def test_l2a_safe_picks_bands_finest_copy_profile_and_offset(samples, tmp_path):
    safe = _fake_l2a_safe(samples, tmp_path)
    for path in (safe, next(safe.rglob("IMG_DATA"))):
        src = open_source(path)
        assert src.profile.name == "sentinel2-l2a"
        assert "B10" not in {b.band_id for b in src.bands}  # L2A has no cirrus band
        assert len(src.bands) == 12
        # the 10 m copy of B02, not the 20 m or 60 m one
        assert src.band("blue").path.endswith("R10m/" + f"{TILE}_B02_10m.tif")
        assert src.band("swir16").path.endswith(f"{TILE}_B11_20m.tif")
        assert src.band("coastal").path.endswith(f"{TILE}_B01_60m.tif")
        assert src.scl is not None and src.scl.path.endswith("SCL_20m.tif")
        assert src.profile.offset == -1000 and src.profile.scale == pytest.approx(1e-4)
        assert src.date is not None and src.date.isoformat() == "2017-06-21"
        assert any("BOA_ADD_OFFSET" in n or "+ -1000" in n for n in src.notes)


def test_l2a_offset_is_applied_and_scl_masks_cloud(samples, tmp_path):
    safe = _fake_l2a_safe(samples, tmp_path)
    s = read_scene(safe, bands=["blue", "red"])
    with rasterio.open(_band_file(samples / "rennes" / "imgs_2", "B02")) as ds:
        dn = ds.read(1).astype(np.float64)
    ok = s.valid
    # reflectance = (DN - 1000) / 10000, pixel for pixel
    np.testing.assert_allclose(s.band("blue")[ok], ((dn - 1000) / 10000)[ok], atol=1e-6)
    # the SCL cloud block (40 x 60 px at 20 m) covers about 80 x 120 px at 10 m
    assert not s.valid[:75, :115].any()
    assert s.valid[100:, 150:].mean() > 0.99
    assert 0.0 < s.meta["scl_masked_fraction"] < 0.1


def test_l1c_safe_img_data_layout(samples, tmp_path):
    src_dir = samples / "bercy" / "imgs_2"
    safe = tmp_path / "S2B_MSIL1C_20170829T105019_N0205_R051_T31UDQ_20170829T105021.SAFE"
    img = safe / "GRANULE" / "L1C_T31UDQ_A002665_20170829T105021" / "IMG_DATA"
    img.mkdir(parents=True)
    for f in src_dir.glob("*.tif"):
        shutil.copy(f, img / f.name.replace(".tif", ".tif"))
    qi = img.parent / "QI_DATA"
    qi.mkdir()
    shutil.copy(next(src_dir.glob("*_B02.tif")), qi / "MSK_DETFOO_B02.tif")
    src = open_source(safe)
    assert src.profile.name == "sentinel2-l1c" and len(src.bands) == 13
    assert src.band("cirrus").band_id == "B10"
    a = read_scene(safe, bands=["red", "nir"])
    b = read_scene(src_dir, bands=["red", "nir"])
    np.testing.assert_array_equal(a.data, b.data)


def test_plain_chip_band_folder(shared_data):
    """``train_features/<chip>/B02.tif``: bare band ids as file names."""
    chip = shared_data / "s2-l2a-clouds" / "train_features" / "adwp"
    src = open_source(chip)
    assert src.keys == ("blue", "green", "red", "nir")
    s = read_scene(chip)
    with rasterio.open(chip / "B04.tif") as ds:
        dn = ds.read(1)
    np.testing.assert_allclose(s.band("red"), dn / 10000.0, rtol=1e-6)
    label, _ = read_raster(shared_data / "s2-l2a-clouds" / "train_labels" / "adwp.tif", grid=s.grid)
    assert label.shape == s.grid.shape and set(np.unique(label)) <= {0, 1}


def test_user_mask_raster_is_read_onto_the_grid(samples, tmp_path):
    """A coarser mask in another CRS (UTM) masks the right pixels of an EPSG:4326 scene."""
    from affine import Affine

    from campwatch import write_raster
    from campwatch.errors import TileReadError
    from campwatch.grid import Grid

    s = read_scene(samples / "rennes" / "imgs_1", bands=["red"])
    # a 20 m UTM mask with a nonzero block over the scene's north-west quarter
    lon0, lat0, lon1, lat1 = s.grid.bounds
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds("EPSG:4326", "EPSG:32630", lon0, lat0, lon1, lat1)
    rows, cols = int((top - bottom) // 20) + 2, int((right - left) // 20) + 2
    grid = Grid((rows, cols), Affine(20, 0, left, 0, -20, top), "EPSG:32630")
    m = np.zeros(grid.shape, dtype=np.uint8)
    m[: rows // 2, : cols // 2] = 255
    path = write_raster(tmp_path / "mask.tif", m, grid)
    masked = read_scene(samples / "rennes" / "imgs_1", bands=["red"], mask=path)
    # expected: scene pixel centres that fall in the block, computed independently with pyproj
    from pyproj import Transformer

    rr, cc = np.mgrid[0:s.grid.height, 0:s.grid.width]
    lon, lat = s.grid.transform * (cc + 0.5, rr + 0.5)
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32630", always_xy=True).transform(lon, lat)
    col, row = np.floor((x - left) / 20), np.floor((top - y) / 20)
    expected = (row < rows // 2) & (col < cols // 2)
    agree = (~masked.valid) == expected
    assert agree.mean() > 0.995  # disagreement only on block edges (pixel-centre rounding)
    assert 0.1 < expected.mean() < 0.9
    assert masked.meta["user_masked_fraction"] == pytest.approx(expected.mean(), abs=0.005)
    r0, c0 = np.argwhere(expected)[0]
    assert np.isnan(masked.band("red")[r0, c0]) and not np.isnan(s.band("red")[r0, c0])  # input untouched
    keep = read_scene(samples / "rennes" / "imgs_1", bands=["red"], mask=path, mask_invalid="zero")
    assert (keep.valid == expected).mean() > 0.995
    with pytest.raises(TileReadError, match=r"nope\.tif"):
        read_scene(samples / "rennes" / "imgs_1", bands=["red"], mask=tmp_path / "nope.tif")


def test_recent_s2_without_metadata_gets_the_baseline_offset(samples, tmp_path):
    """A band folder sensed after 2022-01-25 with no MTD XML: DN - 1000, with a note and a warning."""
    import shutil

    import pytest

    from campwatch.errors import ReflectanceScalingWarning
    from campwatch.io import open_source, read_scene

    src = samples / "bercy" / "imgs_2"
    old = tmp_path / "old"
    new = tmp_path / "new"
    old.mkdir()
    new.mkdir()
    for f in src.glob("*_B0[2348].tif"):
        band = f.name.rsplit("_", 1)[1]
        shutil.copy(f, old / f"T31UDQ_20170829T105019_{band}")
        shutil.copy(f, new / f"T31UDQ_20230829T105019_{band}")
    with pytest.warns(ReflectanceScalingWarning, match="baseline"):
        s_new = open_source(new)
    assert s_new.profile.offset == -1000.0 and any("04.00" in n for n in s_new.notes)
    assert open_source(old).profile.offset == 0.0
    with pytest.warns(ReflectanceScalingWarning):
        red_new = read_scene(new, bands=["red"]).band("red")
    red_old = read_scene(old, bands=["red"]).band("red")
    ok = red_old > 0.11
    assert abs(float(((red_old - red_new)[ok]).mean()) - 0.1) < 1e-4


def test_file_write_time_tag_is_the_last_resort_for_dates(samples, tmp_path):
    import shutil

    import rasterio

    from campwatch.io import open_source

    folder = tmp_path / "scene"
    folder.mkdir()
    for f in (samples / "bercy" / "imgs_2").glob("*_B0[2348].tif"):
        shutil.copy(f, folder / f.name)
        with rasterio.open(folder / f.name, "r+") as ds:
            ds.update_tags(TIFFTAG_DATETIME="2024:03:05 10:00:00")
    src = open_source(folder)
    assert src.date.isoformat() == "2017-08-29" and "tile name" in src.date_source
