import numpy as np
import pytest
import rasterio
import shapely
from rasterio import features
from scipy import ndimage
from shapely.geometry import shape

from campwatch.compare import compare_scenes, read_pair
from campwatch.grid import GEOD
from campwatch.vectorize import mask_to_polygons


def test_bulk_polygons_equal_a_plain_reference(samples):
    """mask_to_polygons (rings assembled in bulk, per-ring geodesic sums) against a plain reference:
    shapely.shape + union_all per object and pyproj's Geod.geometry_area_perimeter, on real change
    polygons with holes and an object made of two separate pieces."""
    b, a, _ = read_pair(samples / "rennes" / "imgs_1", samples / "rennes" / "imgs_2")
    whole = compare_scenes(b, a, min_area_m2=0, coregister=False)
    hit = ndimage.binary_closing(whole.mask == 1, iterations=2) | (whole.mask == 1)  # rings with holes
    lab, _ = ndimage.label(hit, structure=np.ones((3, 3), bool))
    r0, r1 = 40, 300
    strip = lab[r0:r1].astype(np.int32)
    first, second = np.unique(strip)[1:3]
    strip[strip == second] = first  # two separate pieces under one id
    g = b.grid.window(rasterio.windows.Window(0, r0, b.grid.width, r1 - r0))
    fast = mask_to_polygons(strip > 0, g, labels=strip)
    pieces: dict[int, list] = {}
    for geom, value in features.shapes(strip, mask=strip > 0, transform=g.transform, connectivity=8):
        pieces.setdefault(int(value), []).append(shape(geom))
    ids = sorted(pieces)
    assert fast["object_id"].tolist() == ids and len(ids) > 10
    assert any(gm.geom_type == "MultiPolygon" for gm in fast.geometry)
    assert any(len(gm.interiors) for gm in fast.geometry if gm.geom_type == "Polygon")
    for oid, geom, area, perim in zip(ids, fast.geometry, fast["area_m2"], fast["perimeter_m"], strict=True):
        ref = shapely.union_all(pieces[oid]) if len(pieces[oid]) > 1 else pieces[oid][0]
        assert geom.equals(ref)
        ref_area, ref_perim = GEOD.geometry_area_perimeter(ref)
        assert area == pytest.approx(abs(ref_area), rel=1e-9)
        assert perim == pytest.approx(ref_perim, rel=1e-9)
    assert fast["n_pixels"].sum() == int((strip > 0).sum())
