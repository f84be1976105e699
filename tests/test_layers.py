"""One GeoPackage schema for compare, track and report, and the QGIS styles stored with it
(campwatch.layers), on the sample tiles."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest

from campwatch.cli.main import main
from campwatch.layers import CLASS_COLOURS, SCHEMA, to_layer, to_rgb
from campwatch.report import LEGEND
from campwatch.webmap import legend

RENNES = Path("data/sample_tiles/rennes")
PAIR = [f"{RENNES}/imgs_1", f"{RENNES}/imgs_2", "--aoi", "sample-rennes"]
GPKG_TYPES = {"str": "TEXT", "int": "INTEGER", "bool": "BOOLEAN", "m": "REAL", "deg": "REAL", "frac": "REAL",
              "float": "REAL"}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("layers")
    assert main(["compare", *PAIR, "-o", str(tmp / "compare")]) == 0
    assert main(["track", *PAIR, "-o", str(tmp / "track")]) == 0
    (track_gpkg,) = (tmp / "track").glob("growth_*.gpkg")
    return {"compare": tmp / "compare" / "changes.gpkg", "track": track_gpkg}


def _columns(path: Path, layer: str) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as con:
        rows = con.execute(f'PRAGMA table_info("{layer}")').fetchall()
    return [(name, typ) for _, name, typ, *_ in rows if name not in ("fid", "geom")]


def _kind(layer: str) -> str:
    return "objects" if layer.startswith("objects_") else layer


def test_each_kind_has_the_same_columns_and_types_whichever_tool_wrote_it(written, demo_report):
    files = {**written, "report": demo_report / "changes.gpkg"}
    layers = {tool: [n for n, _ in pyogrio.list_layers(p) if n != "layer_styles"] for tool, p in files.items()}
    assert layers == {"compare": ["changes", "structures", "objects_before", "objects_after"],
                      "track": ["structures", "objects_before", "objects_after"],
                      "report": ["changes", "structures"]}
    for tool, path in files.items():
        for layer in layers[tool]:
            expected = [(name, GPKG_TYPES[typ]) for name, typ in SCHEMA[_kind(layer)]]
            assert _columns(path, layer) == expected, (tool, layer)
    # the same structures, measured by compare and by track, are the same rows; only compare has a change
    # detector to confirm them (change_fraction), so only its significance may be stricter
    a = gpd.read_file(files["compare"], layer="structures")
    b = gpd.read_file(files["track"], layer="structures")
    cols = ["class", "area_m2", "area_before_m2", "area_after_m2", "delta_m2", "uncertainty_m2", "site",
            "date_before", "date_after", "object_id", "n_pixels", "perimeter_m"]
    assert len(a) == len(b) > 0 and a[cols].equals(b[cols])
    assert b["change_fraction"].isna().all() and a["change_fraction"].notna().all()
    assert not (a["significant"] & ~b["significant"]).any()


def test_booleans_are_booleans_and_areas_are_rounded_to_a_tenth(written, demo_report):
    for path in (written["compare"], demo_report / "changes.gpkg"):
        with sqlite3.connect(path) as con:
            for v, in con.execute("SELECT DISTINCT typeof(significant) || ':' || coalesce(significant, '') "
                                  "FROM structures"):
                assert v in ("integer:0", "integer:1"), v  # GeoPackage BOOLEAN: 0/1, never 'True'/'False'
            low = con.execute("SELECT count(*) FROM structures WHERE low_confidence = 1 AND reason IS NULL").fetchone()
            assert low == (0,)  # every low-confidence row says why
            for col in ("area_m2", "area_before_m2", "delta_m2", "uncertainty_m2"):
                for v, in con.execute(f"SELECT {col} FROM structures WHERE {col} IS NOT NULL"):
                    assert round(v, 1) == v, (path, col, v)
        s = gpd.read_file(path, layer="structures")
        assert s["significant"].dtype == bool and (s["low_confidence"] == ~s["significant"]).all()


def test_every_layer_has_one_default_qgis_style_coloured_by_class_as_in_the_legend(written, demo_report):
    for path in (*written.values(), demo_report / "changes.gpkg"):
        layers = [n for n, _ in pyogrio.list_layers(path) if n != "layer_styles"]
        with sqlite3.connect(path) as con:
            styles = con.execute("SELECT f_table_name, f_geometry_column, styleQML, styleSLD, useAsDefault "
                                 "FROM layer_styles").fetchall()
            registered = con.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchone()
        assert registered == ("attributes",)
        assert sorted(s[0] for s in styles) == sorted(layers) and all(s[4] == 1 and s[1] == "geom" for s in styles)
        for name, _geom, qml, sld, _default in styles:
            ET.fromstring(sld)
            root = ET.fromstring(qml.split("\n", 1)[1])  # after the DOCTYPE line
            renderer = root.find("renderer-v2")
            assert renderer is not None
            df = pyogrio.read_dataframe(path, layer=name)
            if "class" not in df.columns:  # one date's objects: one outline
                assert renderer.get("type") == "singleSymbol"
                continue
            assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "class"
            cats = {c.get("value"): c.get("symbol") for c in renderer.iter("category")}
            assert set(df["class"]) == set(cats), (path, name)
            for value, symbol in cats.items():
                sym = next(s for s in renderer.iter("symbol") if s.get("name") == symbol)
                outline = next(o.get("value") for o in sym.iter("Option") if o.get("name") == "outline_color")
                assert tuple(int(v) for v in outline.split(",")[:3]) == to_rgb(CLASS_COLOURS[value])


def test_report_legends_use_the_class_colours():
    assert dict((label, colour) for colour, label in LEGEND)["new structure"] == CLASS_COLOURS["new"]
    assert legend(["demolished"], rasters=[]) == [(CLASS_COLOURS["demolished"], "demolished")]


def test_a_column_outside_the_schema_is_refused():
    from shapely.geometry import box

    g = gpd.GeoDataFrame({"area_m2": [1.0], "colour": ["red"]}, geometry=[box(0, 0, 1, 1)], crs=4326)
    with pytest.raises(ValueError, match="colour"):
        to_layer(g, "changes")
