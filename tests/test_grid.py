import numpy as np
import pytest
from affine import Affine

from campwatch import Grid, GridMismatchError, NoOverlapError, read_scene
from campwatch.grid import GEOD


def test_geographic_pixel_area_matches_geodesic_polygon(samples):
    scene = read_scene(samples / "rennes" / "imgs_1", bands=["red"])
    g = scene.grid
    left, bottom, right, top = g.bounds
    whole, _ = GEOD.polygon_area_perimeter([left, right, right, left], [bottom, bottom, top, top])
    total = g.pixel_area_m2().sum() * g.width
    assert total == pytest.approx(abs(whole), rel=1e-6)
    # ~10 m Sentinel-2 pixels at 48 deg N in EPSG:4326 are about 8.5 x 12.7 m
    assert 95 < g.pixel_area_m2().mean() < 115


def test_window_of_bounds_and_tiles_cover_grid():
    g = Grid((100, 120), Affine(10, 0, 1000, 0, -10, 5000), "EPSG:32652")
    win = g.window_of_bounds((1005, 4005, 1100, 4100))
    assert (win.col_off, win.row_off, win.width, win.height) == (0, 90, 10, 10)
    cover = np.zeros(g.shape, int)
    for core, padded in g.tiles(32, halo=4):
        cover[core.row_off:core.row_off + core.height, core.col_off:core.col_off + core.width] += 1
        assert padded.row_off <= core.row_off and padded.height >= core.height
    assert (cover == 1).all()
    with pytest.raises(NoOverlapError, match="do not overlap"):
        g.window_of_bounds((0, 0, 10, 10))


def test_require_same_names_both_grids():
    a = Grid((10, 10), Affine(10, 0, 0, 0, -10, 100), "EPSG:32652")
    b = Grid((10, 11), Affine(10, 0, 0, 0, -10, 100), "EPSG:32652")
    assert a.same_as(a.window(a.window_of_bounds(a.bounds)))
    with pytest.raises(GridMismatchError, match=r"\(10, 11\)"):
        a.require_same(b)
    with pytest.raises(ValueError):
        Grid((0, 5), Affine.identity(), "EPSG:4326")
