"""campwatch.structures on real pixels: built-up masks, objects, growth accounting and significance."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import ndimage
from shapely.geometry import box

from campwatch.errors import GridMismatchError, MissingBandsError
from campwatch.io import read_raster, read_scene
from campwatch.structures import (
    GROWTH_CLASSES,
    builtup_mask,
    date_footprint,
    footprint_growth,
    structure_objects,
)

BANDS = ["blue", "green", "red", "nir", "swir16"]
CITIES = ("bercy", "paris", "rennes")


@pytest.fixture(scope="module")
def pairs():
    from conftest import SAMPLES

    out = {}
    for city in CITIES:
        before = read_scene(SAMPLES / city / "imgs_1", bands=BANDS)
        after = read_scene(SAMPLES / city / "imgs_2", grid=before.grid, bands=BANDS)
        out[city] = (before, after)
    return out


@pytest.fixture(scope="module")
def growth(pairs):
    return {city: footprint_growth(b, a) for city, (b, a) in pairs.items()}


@pytest.mark.parametrize("city", CITIES)
def test_accounting_identity_is_exact(growth, city):
    r = growth[city]
    s = r.summary()
    a = r.class_areas()
    net = r.footprint_after_m2 - r.footprint_before_m2
    identity = a["new"] - a["demolished"] + a["expanded"] - a["shrunk"]
    assert identity == pytest.approx(net, abs=1e-6 * max(r.footprint_before_m2, 1.0))
    assert a["unchanged_net"] == 0.0
    # the rounded summary agrees within rounding (the four-term identity)
    sa = s["areas_m2"]
    assert abs(sa["new"] - sa["demolished"] + sa["expanded"] - sa["shrunk"] - s["net_m2"]) <= 0.3
    # footprints are pixel-area sums of the accounted masks
    w = np.broadcast_to(r.grid.pixel_area_m2(), r.grid.shape)
    assert r.footprint_before_m2 == pytest.approx(float(w[r.before_mask].sum()), rel=1e-9)
    assert r.footprint_after_m2 == pytest.approx(float(w[r.after_mask].sum()), rel=1e-9)
    assert not (r.before_mask & ~r.observed).any() and not (r.after_mask & ~r.observed).any()
    # every class obeys its definition
    p = r.polygons
    assert set(p["class"]) <= set(GROWTH_CLASSES)
    assert (p.loc[p["class"] == "new", "area_before_m2"] == 0).all()
    assert (p.loc[p["class"] == "demolished", "area_after_m2"] == 0).all()
    assert (p.loc[p["class"] == "unchanged", "delta_m2"].abs() < 1e-6).all()
    assert (p.loc[p["class"] == "expanded", "delta_m2"] > 0).all()
    assert (p.loc[p["class"] == "shrunk", "delta_m2"] < 0).all()
    # significance is the separate test against the outline uncertainty
    persisting = p[p["class"].isin(["expanded", "shrunk", "unchanged"])]
    assert (persisting["significant"] == (persisting["delta_m2"].abs() > persisting["uncertainty_m2"])).all()
    assert sum(s["significant_counts"].values()) == int(p["significant"].sum())
    assert sum(s["counts"].values()) == len(p)
    assert s["pixel_size_m"] == pytest.approx(10, rel=0.1)


@pytest.mark.parametrize("city", CITIES)
def test_polygon_area_matches_pixel_area(growth, city):
    r = growth[city]
    labels, _ = ndimage.label(r.before_mask | r.after_mask, structure=np.ones((3, 3), bool))
    w = np.broadcast_to(r.grid.pixel_area_m2(), r.grid.shape)
    union_area = np.bincount(labels.ravel(), weights=w.ravel())
    p = r.polygons
    assert len(p) > 10
    pix = union_area[p["object_id"].to_numpy()]
    rel = np.abs(p["area_m2"].to_numpy() - pix) / pix
    assert rel.max() < 0.01
    # the polygon's own geodesic area, recomputed independently
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    ll = p.geometry.to_crs(4326)
    own = [abs(geod.geometry_area_perimeter(g)[0]) for g in ll.iloc[:50]]
    assert np.allclose(own, p["area_m2"].iloc[:50], rtol=1e-6)


def test_same_scene_twice_is_unchanged_and_not_significant(pairs):
    before, _ = pairs["rennes"]
    r = footprint_growth(before, before)
    s = r.summary()
    assert s["net_m2"] == 0 and s["significance"] == "not-significant"
    assert s["counts"]["unchanged"] == len(r.polygons) > 0


def test_one_pixel_shift_is_not_significant_growth(pairs):
    """A 1-pixel misregistration of real pixels moves outlines but is not growth."""
    before, _ = pairs["bercy"]
    shifted = dataclasses.replace(before, data=np.roll(before.data, 1, axis=2), valid=np.roll(before.valid, 1, axis=1))
    s = footprint_growth(before, shifted, misregistration_px=1.0).summary()
    assert s["significance"] == "not-significant"
    assert abs(s["net_m2"]) < s["net_uncertainty_m2"]


def test_inputs_not_mutated(pairs):
    before, after = pairs["paris"]
    copies = [before.data.copy(), before.valid.copy(), after.data.copy()]
    footprint_growth(before, after)
    assert np.array_equal(copies[0], before.data, equal_nan=True)
    assert np.array_equal(copies[1], before.valid)
    assert np.array_equal(copies[2], after.data, equal_nan=True)


def test_windowed_equals_in_memory(pairs):
    scene, _ = pairs["rennes"]
    whole = builtup_mask(scene, tile=4096)
    tiled = builtup_mask(scene, tile=64)
    assert whole.mask.any()
    assert np.array_equal(whole.mask, tiled.mask)


def test_objects_per_date(pairs):
    scene, _ = pairs["bercy"]
    b = builtup_mask(scene)
    objs = structure_objects(b, min_object_m2=300)
    assert len(objs) > 5
    assert (objs["area_m2"] >= 300 * 0.99).all()
    assert {"perimeter_m", "compactness", "centroid_lon", "centroid_lat"} <= set(objs.columns)
    lon0, lat0, lon1, lat1 = scene.grid.bounds
    assert objs["centroid_lon"].between(lon0, lon1).all() and objs["centroid_lat"].between(lat0, lat1).all()
    fp = date_footprint(b, min_object_m2=300)
    assert fp["n_objects"] == len(objs)
    assert fp["footprint_m2"] == pytest.approx(objs["area_m2"].sum(), rel=0.01)


def test_aoi_restricts_and_is_reported(pairs):
    from campwatch.aoi import resolve_aoi

    before, after = pairs["rennes"]
    aoi = resolve_aoi("aois/samples/sample-rennes.geojson")
    whole = footprint_growth(before, after).summary()
    left, bottom, right, top = before.grid.bounds
    half = box(left, bottom, (left + right) / 2, top)
    s_half = footprint_growth(before, after, aoi=half).summary()
    assert s_half["observed_fraction"] == pytest.approx(0.5, abs=0.02)
    assert s_half["footprint_before_m2"] < whole["footprint_before_m2"]
    assert s_half["geometry_quality"] == "unspecified"
    s_aoi = footprint_growth(before, after, aoi=aoi).summary()
    assert s_aoi["aoi_id"] == aoi.id and s_aoi["geometry_quality"] == aoi.geometry_quality
    assert whole["geometry_quality"] == "none"


def test_low_valid_data_is_insufficient(pairs):
    from campwatch.errors import LowValidDataWarning

    before, after = pairs["paris"]
    cloudy = np.zeros(before.grid.shape, bool)
    cloudy[: before.grid.height // 4] = True  # only a quarter observed
    with pytest.warns(LowValidDataWarning):
        s = footprint_growth(before, after.with_valid(cloudy)).summary()
    assert s["significance"] == "insufficient-data"
    assert s["valid_fraction_after"] == pytest.approx(0.25, abs=0.01)


def test_errors(pairs):
    before, _ = pairs["rennes"]
    with pytest.raises(MissingBandsError, match="nir"):
        builtup_mask(before.select(["blue", "green", "red"]))
    other, _ = pairs["paris"]
    with pytest.raises(GridMismatchError):
        footprint_growth(before, other)


def test_resolution_aware_method(pairs, shared_data):
    s2, _ = pairs["rennes"]
    assert builtup_mask(s2).method == "spectral-texture"
    ls = read_scene(shared_data / "landsat-taizhou" / "taizhou_2000-03-17.tif")
    b = builtup_mask(ls)
    assert b.method == "spectral" and not any("PanTex" in e for e in b.evidence)
    assert "dark-object" in " ".join(b.evidence)  # uint8 DN


@pytest.mark.shared
def test_vhr_goes_to_vhr_module(shared_data):
    from campwatch import vhr

    path = shared_data / "vhr-levircd" / "crop256" / "A" / "test_2_0000_0000.tif"
    scene = read_scene(path, profile="vhr-rgb")
    assert scene.grid.pixel_size_m() < 5
    b = builtup_mask(scene)
    assert b.method == "vhr"
    assert np.array_equal(b.mask, vhr.building_mask(scene) & scene.valid)


@pytest.mark.shared
def test_taizhou_sampled_pixel_accuracy(shared_data):
    d = shared_data / "landsat-taizhou"
    before = read_scene(d / "taizhou_2000-03-17.tif")
    after = read_scene(d / "taizhou_2003-02-06.tif", grid=before.grid)
    ref, _ = read_raster(d / "taizhou_reference_samples.tif", grid=before.grid)
    r = footprint_growth(before, after)
    pred = r.before_mask ^ r.after_mask
    sampled, truth = ref > 0, ref == 2
    acc = float((pred == truth)[sampled].mean())
    base = max(float(truth[sampled].mean()), 1 - float(truth[sampled].mean()))
    assert acc > base + 0.03  # better than calling every sample the majority class
    grow = r.after_mask & ~r.before_mask
    assert float(truth[grow & sampled].mean()) > 0.8  # new built-up pixels are mostly labelled change


@pytest.mark.shared
@pytest.mark.slow
def test_oscd_new_objects_hit_labelled_change(shared_data):
    from rasterio.features import geometry_mask

    hits = n_new = 0
    base_hits = n_rand = 0
    rng = np.random.default_rng(0)
    for city in ("bercy", "nantes", "rennes"):
        d = shared_data / "oscd" / city
        before = read_scene(d / "imgs_1", bands=BANDS)
        after = read_scene(d / "imgs_2", grid=before.grid, bands=BANDS)
        label, _ = read_raster(d / "cm" / f"{city}-cm.tif", grid=before.grid)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            r = footprint_growth(before, after)
        change = label == 2
        new = r.polygons[r.polygons["class"] == "new"]
        for geom in new.geometry:
            inside = geometry_mask([geom], out_shape=r.grid.shape, transform=r.grid.transform, invert=True)
            n_new += 1
            hits += bool((inside & change).any())
            # chance: the same object moved to a random place
            rows, cols = np.nonzero(inside)
            dr = rng.integers(-rows.min(), r.grid.height - rows.max())
            dc = rng.integers(-cols.min(), r.grid.width - cols.max())
            n_rand += 1
            base_hits += bool(change[rows + dr, cols + dc].any())
    assert n_new > 20
    assert hits / n_new > 1.5 * base_hits / n_rand


def test_change_confirmation_raises_new_object_precision(shared_data):
    """New objects confirmed by the change detector hit labelled change far more often (OSCD)."""
    from rasterio import features

    from campwatch.compare import compare_scenes, read_pair
    from campwatch.io import read_raster

    hits = {"all": [0, 0], "confirmed": [0, 0]}
    for city in ("rennes", "nantes", "saclay_e"):
        root = shared_data / "oscd" / city
        b, a, _ = read_pair(root / "imgs_1", root / "imgs_2")
        r = compare_scenes(b, a, structures=True)
        truth = read_raster(root / "cm" / f"{city}-cm.tif", grid=r.grid)[0] == 2
        p = r.structures.polygons
        assert p["change_fraction"].between(0, 1).all()
        for geom, sig, cls in zip(p.geometry, p["significant"], p["class"], strict=True):
            if cls != "new":
                continue
            hit = truth[features.geometry_mask([geom], out_shape=r.grid.shape, transform=r.grid.transform,
                                               invert=True)].any()
            for key in ("all", "confirmed") if sig else ("all",):
                hits[key][0] += int(hit)
                hits[key][1] += 1
    precision = {k: h / max(n, 1) for k, (h, n) in hits.items()}
    assert hits["confirmed"][1] >= 10
    assert precision["confirmed"] > 2 * precision["all"], precision
