from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from PIL import Image
from shapely.geometry import box

from campwatch.compare import OUTPUTS, compare_scenes, quicklook_titles, read_pair, write_compare_outputs
from campwatch.detect import QUICKLOOK_LEGEND
from campwatch.errors import OutputExistsError
from campwatch.plot import QUICKLOOK_PANEL_PX


@pytest.fixture(scope="module")
def bercy():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "data" / "sample_tiles" / "bercy"
    return read_pair(root / "imgs_1", root / "imgs_2")


def test_outputs_and_areas(bercy, tmp_path):
    b, a, _ = bercy
    r = compare_scenes(b, a)
    paths = write_compare_outputs(r, tmp_path / "out", before=b, after=a)
    assert sorted(p.name for p in paths.values()) == sorted(OUTPUTS)
    with rasterio.open(paths["change_mask.tif"]) as ds:
        m = ds.read(1)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255 and ds.crs == b.grid.crs
        assert ds.transform == b.grid.transform
    assert np.array_equal(m, r.mask)
    s = json.loads(paths["summary.json"].read_text())
    for k in ("changed_area_m2", "changed_fraction", "method", "threshold", "valid_fraction", "coregistration"):
        assert k in s
    assert s["coregistration"] is not None and "dx_px" in s["coregistration"]
    gdf = gpd.read_file(paths["changes.gpkg"], layer="changes")
    assert {"area_m2", "mean_score", "centroid_lon", "centroid_lat"} <= set(gdf.columns)
    # polygon areas (geodesic) equal the sum of pixel areas
    assert gdf["area_m2"].sum() == pytest.approx(s["changed_area_m2"], rel=1e-3)
    with Image.open(paths["quicklook.png"]) as im:  # three titled panels, each every k-th pixel
        k = -(-max(b.grid.shape) // QUICKLOOK_PANEL_PX)
        assert im.format == "PNG" and im.width > 3 * (b.grid.width // k) and im.height > b.grid.height // k
    with pytest.raises(OutputExistsError):
        write_compare_outputs(r, tmp_path / "out", before=b, after=a)


def test_aoi_pixels_outside_are_nodata(bercy):
    b, a, _ = bercy
    left, bottom, right, top = b.grid.bounds
    half = box(left, bottom, (left + right) / 2, top)
    r = compare_scenes(b, a, aoi=half)
    assert (r.mask[:, -5:] == 255).all()
    assert (r.mask[:, :5] != 255).any()
    assert r.params["aoi"]["inside_fraction"] == pytest.approx(0.5, abs=0.02)


def test_compare_writes_structures_block_consistent_with_growth(samples, tmp_path):
    b, a, aoi = read_pair(samples / "paris" / "imgs_1", samples / "paris" / "imgs_2", aoi="sample-paris")
    result = compare_scenes(b, a, aoi=aoi, structures=True)
    paths = write_compare_outputs(result, tmp_path / "out", before=b, after=a)
    summary = json.loads(paths["summary.json"].read_text())
    s = summary["structures"]
    areas = s["areas_m2"]
    identity = areas["new"] - areas["demolished"] + areas["expanded"] - areas["shrunk"]
    assert identity == pytest.approx(s["net_m2"], abs=0.5)
    assert s["aoi_id"] == "sample-paris" and s["geometry_quality"] == "sample"
    growth = gpd.read_file(paths["changes.gpkg"], layer="structures")
    assert len(growth) == sum(s["counts"].values())
    assert set(growth["class"]) <= {"new", "demolished", "expanded", "shrunk", "unchanged"}


def test_vhr_pairs_compare_in_vhr_mode_without_flags(shared_data, tmp_path):
    from campwatch.bench.metrics import confusion
    from campwatch.io import read_raster

    levir = shared_data / "vhr-levircd" / "crop256"
    name = "test_2_0000_0000.tif"
    b, a, _ = read_pair(levir / "A" / name, levir / "B" / name)
    result = compare_scenes(b, a)
    assert result.method == "vhr" and result.grid.same_as(b.grid)
    label, _ = read_raster(levir / "label" / name, grid=result.grid)
    f1 = confusion(result.mask == 1, label == 255).f1
    assert f1 > 0.5, f1  # the naive RGB CVA gets 0.26 on this crop
    paths = write_compare_outputs(result, tmp_path / "levir", before=b, after=a)
    growth = gpd.read_file(paths["changes.gpkg"], layer="structures")
    assert {"class", "area_m2", "low_confidence", "reason"} <= set(growth.columns) and (growth["class"] == "new").any()
    summary = json.loads(paths["summary.json"].read_text())
    assert "built" in summary["structures"]["sentence"]

    xbd = shared_data / "vhr-xbd-joplin" / "images"
    pre = sorted(xbd.glob("*_pre_disaster.tif"))[0]
    b, a, _ = read_pair(pre, str(pre).replace("_pre_", "_post_"))
    r = compare_scenes(b, a)
    assert r.method == "vhr" and set(np.unique(r.mask)) <= {0, 1, 255}
    assert r.structures.summary()["counts"]["demolished"] >= 1


@pytest.mark.shared
def test_quicklook_of_a_1024px_pair_is_titled_has_a_legend_and_stays_under_1_mb(shared_data, tmp_path):
    """quicklook.png of the xBD Joplin 1024² pair: under 1 MB, its panels shown every 2nd pixel,
    the titles above them, the legend's swatches below, and the change panel red where the mask is."""
    img = shared_data / "vhr-xbd-joplin" / "images"
    b, a, _ = read_pair(img / "joplin-tornado_00000000_pre_disaster.tif", img / "joplin-tornado_00000000_post_disaster.tif")
    r = compare_scenes(b, a)
    paths = write_compare_outputs(r, tmp_path / "out", before=b, after=a)
    png = paths["quicklook.png"]
    assert png.stat().st_size < 1_000_000, png.stat().st_size
    with Image.open(png) as im:
        q = np.asarray(im.convert("RGB"))
    k = 2  # 1024 px panels, at most QUICKLOOK_PANEL_PX = 512 shown
    assert k == -(-1024 // QUICKLOOK_PANEL_PX)
    red = (q == QUICKLOOK_LEGEND[0][0]).all(-1)
    rows = np.nonzero(red)[0]
    # the change panel is the right third; its red share equals the mask's changed share, every 2nd pixel
    panel = red[:, 2 * q.shape[1] // 3:]
    shown = r.mask[::k, ::k]
    assert panel.sum() == pytest.approx((shown == 1).sum(), rel=0.02)
    assert red[:, :2 * q.shape[1] // 3 - 10].sum() < 200  # before and after panels: no overlay (a swatch at most)
    # the title band above the panels and the legend band below carry dark text pixels
    top = rows.min()
    assert (q[:top - 2].min(-1) < 100).sum() > 200
    legend_band = q[top + 1024 // k:]
    for rgb, _label in QUICKLOOK_LEGEND:  # each swatch, to within the palette's rounding
        assert (np.abs(legend_band.astype(int) - rgb).max(-1) <= 12).sum() > 20, rgb
    assert quicklook_titles(b.date, a.date)[2] == f"CHANGE {b.date} → {a.date}\nover AFTER"
