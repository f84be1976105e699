"""AOI catalogue, look-up, file reading and validation (campwatch.aoi)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyproj import Geod
from shapely.geometry import box, shape

from campwatch import AOI, InvalidAOIError, load_catalogue, read_aoi_file, resolve_aoi, validate_aoi_file
from campwatch.aoi import alias_index, write_aois

ROOT = Path(__file__).resolve().parents[1]
AOIS = ROOT / "aois"
CATALOGUE_FILES = sorted(AOIS.glob("*.geojson")) + sorted((AOIS / "samples").glob("*.geojson"))
KWANLISO = ("kwanliso-14", "kwanliso-15", "kwanliso-16", "kwanliso-18", "kwanliso-22", "kwanliso-25")
GEOD = Geod(ellps="WGS84")

YODOK_SQUARE = [[126.80, 39.60], [126.82, 39.60], [126.82, 39.62], [126.80, 39.62], [126.80, 39.60]]


def _feature(fid, geometry, **props):
    p = {"name": f"site {fid}", **props}
    if fid is not None:
        p["id"] = fid
    return {"type": "Feature", "properties": p, "geometry": geometry}


def _poly(coords=YODOK_SQUARE):
    return {"type": "Polygon", "coordinates": [coords]}


def _fc(*features):
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


# Each bad case: file name, file text, feature label expected in the message, reason fragment.
BAD_CASES = {
    "bowtie": ("bowtie.geojson", _fc(_feature("bow", _poly([[126.8, 39.6], [126.82, 39.62], [126.82, 39.6],
                                                            [126.8, 39.62], [126.8, 39.6]]))),
               "'bow' (#0)", "Self-intersection"),
    "point": ("point.geojson", _fc(_feature("pt", {"type": "Point", "coordinates": [126.8, 39.6]})),
              "'pt' (#0)", "is a Point, not a Polygon"),
    "missing-id": ("noid.geojson", _fc(_feature("ok", _poly()), _feature(None, _poly())), "#1", "has no id"),
    "duplicate-ids": ("dup.geojson", _fc(_feature("a", _poly()), _feature("a", _poly())), "'a' (#1)",
                      "duplicate id 'a'"),
    "swapped-latlon": ("swapped.geojson", _fc(_feature("sw", _poly([[y, x] for x, y in YODOK_SQUARE]))),
                       "'sw' (#0)", "swapped"),
    "empty-file": ("empty.geojson", "", "-", "empty"),
    "not-json": ("notjson.geojson", "this is not { json", "-", "not valid JSON"),
    "no-features": ("nofeatures.geojson", _fc(), "-", "no features"),
}


def write_case(tmp_path: Path, case: str) -> tuple[Path, str, str]:
    name, text, feature, reason = BAD_CASES[case]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, feature, reason


# --- the catalogue ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", CATALOGUE_FILES, ids=lambda p: p.name)
def test_every_catalogue_file_validates(path):
    assert validate_aoi_file(path) == []
    (aoi,) = read_aoi_file(path)
    assert aoi.id == path.stem and aoi.sources and aoi.caveats
    assert aoi.geometry_quality in ("approximate", "digitised", "sample")


def test_catalogue_has_the_six_kwanliso_choma_bong_and_kyohwaso():
    cat = {a.id: a for a in load_catalogue()}
    assert set(KWANLISO) <= set(cat)
    assert "restricted-choma-bong" in cat
    assert sum(a.kind == "kyohwaso" for a in cat.values()) >= 10
    for i in KWANLISO:
        a = cat[i]
        assert a.kind == "kwanliso" and a.properties["camp_number"] == int(i.split("-")[1])
        assert a.geometry_quality == "approximate"
        assert a.expected_changes and a.properties["population_estimates"] and a.properties["korean_name"]
    assert {"sample-bercy", "sample-paris", "sample-rennes"} <= set(cat)


def test_catalogue_loses_no_property_of_the_reference(shared_data):
    ref_path = shared_data.parent / "reference" / "camps_reference.geojson"
    ref = json.loads(ref_path.read_text(encoding="utf-8"))
    cat = {a.id: a for a in load_catalogue()}
    assert len(ref["features"]) == sum(a.kind != "sample" for a in cat.values())
    for f in ref["features"]:
        a = cat[f["properties"]["id"]]
        if a.geometry_quality == "approximate":          # digitised files may replace the geometry
            assert shape(f["geometry"]).equals(a.geometry)
        props = a.to_feature()["properties"]
        for key, value in f["properties"].items():
            if key.startswith("geometry_") and a.geometry_quality != "approximate":
                continue                                  # a digitised file documents its own geometry
            assert props[key] == value, (a.id, key)


@pytest.mark.parametrize("aoi", [a for a in load_catalogue() if a.properties.get("geometry_method") ==
                                 "equal_area_circle"], ids=lambda a: a.id)
def test_equal_area_circles_match_published_area_within_2_percent(aoi):
    published_km2 = aoi.properties["geometry_params"]["from_area_km2"]
    assert published_km2 in [e.get("km2") for e in aoi.properties["area_estimates"]]
    assert aoi.area_m2() / 1e6 == pytest.approx(published_km2, rel=0.02)


def test_caveats_from_the_reference_readme_are_carried():
    cat = {a.id: a for a in load_catalogue()}
    assert any("10.47 km" in c for c in cat["kwanliso-16"].caveats)
    assert any("Published coordinates differ" in c for c in cat["kwanliso-22"].caveats)
    assert any("12.3 km" in c for c in cat["kyohwaso-11"].caveats)
    assert any("contested" in c for c in cat["kwanliso-15"].caveats)
    assert all("approximate" in a.caveats[0] for a in cat.values() if a.kind != "sample")


def test_sample_aois_lie_inside_their_tile_and_say_they_are_not_camps(samples):
    for city in ("bercy", "paris", "rennes"):
        a = resolve_aoi(city)
        footprint = shape(json.loads((samples / city / f"{city}.geojson").read_text())["features"][0]["geometry"])
        assert a.id == f"sample-{city}" and a.kind == "sample" and a.geometry_quality == "sample"
        assert footprint.contains(a.geometry)
        assert 0.5e6 < a.area_m2() < 5e6
        assert "not a camp" in a.properties["note"].lower()


def test_aliases_are_unambiguous_except_declared_shared_aliases():
    cat = load_catalogue()
    by_id = {a.id: a for a in cat}
    from campwatch.aoi import _key

    for key, ids in alias_index(cat).items():
        if len(ids) > 1:
            for i in ids:
                declared = {_key(s) for s in by_id[i].properties.get("shared_aliases", [])}
                assert key in declared, (key, ids)


# --- look-up ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["yodok", "YODOK", "kwanliso-15", "Kwanliso 15", "15", "Camp 15", "camp-15",
                                  "Kwan-li-so No. 15 (Yodok)", "Yodŏk", "요덕 제15호 관리소", " kwanliso-15 "])
def test_resolve_aoi_aliases(text):
    assert resolve_aoi(text).id == "kwanliso-15"


def test_bare_numbers_are_kwanliso_and_prisons_need_their_prefix():
    assert resolve_aoi("22").id == "kwanliso-22"
    assert resolve_aoi("kyohwaso-22").id == "kyohwaso-22"
    assert resolve_aoi("Kyo-hwa-so No. 22").id == "kyohwaso-22"


@pytest.mark.parametrize("text,both", [("kaechon", ("kwanliso-14", "kyohwaso-1")),
                                       ("kyohwaso 8", ("kyohwaso-8-sungho", "kyohwaso-8-yongdam"))])
def test_shared_alias_is_refused_and_names_both(text, both):
    with pytest.raises(InvalidAOIError, match="ambiguous") as err:
        resolve_aoi(text)
    assert all(i in str(err.value) for i in both)


def test_unknown_aoi_lists_close_matches():
    with pytest.raises(InvalidAOIError, match=r"unknown AOI 'yodock'.*kwanliso-15"):
        resolve_aoi("yodock")


def test_resolve_file_and_feature(tmp_path, monkeypatch):
    path = tmp_path / "sites.geojson"
    path.write_text(_fc(_feature("north", _poly()), _feature("south", _poly([[x, y - 0.1] for x, y in YODOK_SQUARE]))))
    with pytest.raises(InvalidAOIError, match=r"2 features.*#<feature id>"):
        resolve_aoi(str(path))
    assert resolve_aoi(f"{path}#south").id == "south"
    assert resolve_aoi(f"{path}#1").id == "south"
    with pytest.raises(InvalidAOIError, match=r"no feature 'east'.*north, south"):
        resolve_aoi(f"{path}#east")
    with pytest.raises(InvalidAOIError, match="does not exist"):
        resolve_aoi(str(tmp_path / "missing.geojson"))
    # A catalogue id beats a same-named file in the working directory; a suffix-less file still works.
    (tmp_path / "15").write_text(_fc(_feature("decoy", _poly())))
    (tmp_path / "site").write_text(_fc(_feature("plain", _poly())))
    monkeypatch.chdir(tmp_path)
    assert resolve_aoi("15").id == "kwanliso-15"
    assert resolve_aoi("site").id == "plain"


def test_catalogue_folder_from_environment(tmp_path, monkeypatch):
    (tmp_path / "mine.geojson").write_text(_fc(_feature("my-site", _poly())))
    monkeypatch.setenv("CAMPWATCH_AOIS", str(tmp_path))
    assert [a.id for a in load_catalogue()] == ["my-site"]
    assert resolve_aoi("site my-site").id == "my-site"      # the name is an alias
    (tmp_path / "other.geojson").write_text(_fc(_feature("my-site", _poly())))
    with pytest.raises(InvalidAOIError, match=r"my-site.*already used"):
        load_catalogue()
    monkeypatch.setenv("CAMPWATCH_AOIS", str(tmp_path / "nowhere"))
    with pytest.raises(InvalidAOIError, match="CAMPWATCH_AOIS"):
        load_catalogue()


# --- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_raises_invalid_aoi_error_naming_feature_and_reason(tmp_path, case):
    path, feature, reason = write_case(tmp_path, case)
    problems = validate_aoi_file(path)
    assert problems and any(p.feature == feature and reason in p.reason for p in problems), problems
    with pytest.raises(InvalidAOIError) as err:
        read_aoi_file(path)
    msg = str(err.value)
    assert str(path) in msg and f"feature {feature}" in msg and reason in msg
    with pytest.raises(InvalidAOIError):
        resolve_aoi(str(path))
    assert isinstance(err.value, ValueError)


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    path = tmp_path / "many.geojson"
    path.write_text(_fc(_feature("pt", {"type": "Point", "coordinates": [0, 0]}), _feature(None, _poly()),
                        _feature("ok", _poly()), _feature("ok", _poly()),
                        _feature("nogeom", None)))
    reasons = [p.reason for p in validate_aoi_file(path)]
    assert len(reasons) == 4
    assert any("Point" in r for r in reasons) and any("no id" in r for r in reasons)
    assert any("duplicate" in r for r in reasons) and any("no geometry" in r for r in reasons)


def test_projected_geojson_with_legacy_crs_is_reprojected(tmp_path):
    path = tmp_path / "utm.geojson"
    square = [[300000, 4390000], [302000, 4390000], [302000, 4392000], [300000, 4392000], [300000, 4390000]]
    obj = json.loads(_fc(_feature("utm", _poly(square))))
    obj["crs"] = {"type": "name", "properties": {"name": "EPSG:32652"}}
    path.write_text(json.dumps(obj))
    (a,) = read_aoi_file(path)
    assert 126 < a.geometry.centroid.x < 127.5 and 39 < a.geometry.centroid.y < 40
    assert a.area_m2() == pytest.approx(4e6, rel=0.01)       # 2 km x 2 km, UTM scale factor < 0.1 %
    # The same numbers without the crs member are metres read as degrees: refused, not silently wrong.
    del obj["crs"]
    path.write_text(json.dumps(obj))
    assert "outside -90..90" in validate_aoi_file(path)[0].reason


@pytest.mark.parametrize("fmt", ["gpkg", "kml"])
def test_round_trip_through_ogr_formats(tmp_path, fmt):
    src = [resolve_aoi("kwanliso-15"), resolve_aoi("sample-paris")]
    out = write_aois(tmp_path / f"aois.{fmt}", src, format=fmt)
    back = read_aoi_file(out)
    assert [a.id for a in back] == ["kwanliso-15", "sample-paris"]
    assert [a.name for a in back] == [a.name for a in src]
    assert back[0].area_m2() == pytest.approx(src[0].area_m2(), rel=1e-6)
    assert back[0].sources == src[0].sources and back[0].expected_changes == src[0].expected_changes
    assert back[0].properties["camp_number"] == 15
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_aois(out, src, format=fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"aois.{fmt}"]     # no temporary left behind


def test_a_geopackage_with_a_style_table_reads(tmp_path):
    """QGIS (and campwatch's outputs) add a ``layer_styles`` attribute table: not an AOI, not an error."""
    import sqlite3

    out = write_aois(tmp_path / "aois.gpkg", [resolve_aoi("kwanliso-15")], format="gpkg")
    with sqlite3.connect(out) as db:
        db.execute("CREATE TABLE layer_styles (id INTEGER PRIMARY KEY, f_table_name TEXT, styleQML TEXT)")
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) "
                   "VALUES ('layer_styles', 'attributes', 'layer_styles')")
    assert validate_aoi_file(out) == []
    assert [a.id for a in read_aoi_file(out)] == ["kwanliso-15"]


def test_shapefile_without_crs_is_reported(tmp_path):
    import geopandas as gpd

    gdf = gpd.GeoDataFrame({"id": ["a"], "name": ["A"]}, geometry=[box(126.8, 39.6, 126.82, 39.62)], crs=None)
    with pytest.warns(UserWarning, match="crs"):
        gdf.to_file(tmp_path / "nocrs.shp", engine="pyogrio")
    (problem,) = validate_aoi_file(tmp_path / "nocrs.shp")
    assert "no CRS" in problem.reason
    gdf.set_crs("EPSG:4326").to_file(tmp_path / "ok.shp", engine="pyogrio")
    assert [a.id for a in read_aoi_file(tmp_path / "ok.shp")] == ["a"]


# --- geometry helpers ------------------------------------------------------------------------------
def test_area_to_crs_utm_and_search_bbox():
    a = resolve_aoi("yodok")
    assert a.utm_crs().to_epsg() == 32652
    planar = a.to_crs(a.utm_crs()).area
    assert a.area_m2() == pytest.approx(planar, rel=0.005)         # ellipsoid vs UTM: same area
    assert a.to_crs("EPSG:4326") is a.geometry
    w, s, e, n = a.search_bbox(buffer_m=2000)
    x0, y0, x1, y1 = a.geometry.bounds
    assert w < x0 and s < y0 and e > x1 and n > y1
    # The buffer is ~2 km on the ground north and south (UTM grid north differs from true north slightly).
    assert GEOD.inv(x0, y0, x0, s)[2] == pytest.approx(2000, rel=0.05)
    assert GEOD.inv(x1, y1, x1, n)[2] == pytest.approx(2000, rel=0.05)
    with pytest.raises(InvalidAOIError, match="buffer_m"):
        a.search_bbox(buffer_m=-1)
    assert "<table>" in a._repr_html_() and "approximate" in a._repr_html_()


def test_aoi_is_constructible_and_exported():
    a = AOI("x", "X", box(2.3, 48.8, 2.31, 48.81))
    assert a.geometry_quality == "unspecified" and a.expected_changes == [] and a.sources == []
    assert a.to_feature()["properties"]["id"] == "x"
