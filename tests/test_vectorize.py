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


def test_scale_factor_metrics_agree_with_geodesic_sums(samples, monkeypatch):
    """In a UTM grid, small parts are measured in the plane with the projection's scale
    factors; on real change polygons that stays within 1e-6 of pyproj's geodesic sums
    (the whole path switched off by SCALE_FACTOR_MAX_M = 0)."""
    b, a, _ = read_pair(samples / "bercy" / "imgs_1", samples / "bercy" / "imgs_2")
    whole = compare_scenes(b, a, min_area_m2=0, coregister=False)
    # the sample tiles are in lon/lat: their change polygons in UTM zone 31N, and one far
    # from its central meridian (zone 30N), where the scale factor is largest
    for crs in ("EPSG:32631", "EPSG:32630"):
        gdf = mask_to_polygons(whole.mask == 1, whole.grid).to_crs(crs)
        _check_scale_factor_path(gdf, monkeypatch)


def _check_scale_factor_path(gdf, monkeypatch):
    import campwatch.vectorize as vec

    assert len(gdf) > 20 and gdf.crs.is_projected
    from pyproj import Transformer

    parts = shapely.get_parts(np.asarray(gdf.geometry.values))
    cent = shapely.centroid(parts)
    lon, lat = Transformer.from_crs(gdf.crs, 4326, always_xy=True).transform(shapely.get_x(cent), shapely.get_y(cent))
    assert vec._scale_factor_metrics(parts, gdf.crs, lon, lat) is not None  # the fast path is taken
    fast = vec.geodesic_metrics(gdf.geometry)
    monkeypatch.setattr(vec, "SCALE_FACTOR_MAX_M", 0.0)
    assert vec._scale_factor_metrics(parts, gdf.crs, lon, lat) is None
    exact = vec.geodesic_metrics(gdf.geometry)
    for f, e in zip(fast, exact, strict=True):
        np.testing.assert_allclose(f, e, rtol=1e-6)
    monkeypatch.undo()
    # in lon/lat there are no scale factors: the geodesic sums
    assert vec._scale_factor_metrics(parts, "EPSG:4326", lon, lat) is None
