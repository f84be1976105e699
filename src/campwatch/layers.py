"""The vector layers campwatch writes: one schema per kind, the class colours, and QGIS styles.

``compare``, ``track`` and ``report`` write their polygons through :func:`to_layer`, so the same
kind has the same columns, types and rounding whichever tool wrote it:

- ``changes``: pixels the change detector flagged, one row per object (``class`` ``"change"``),
  with the pair's confidence (``low_confidence``, ``reason``: :func:`campwatch.compare.pair_flags`);
- ``structures``: built-up growth groups (10 m) or buildings (VHR), ``class`` one of
  ``new``, ``demolished``, ``expanded``, ``shrunk``, ``unchanged``;
- ``objects``: one date's built-up objects (``objects_before``, ``objects_after``; no class).

A column a tool does not measure is present and empty (NULL), never missing or a string
``'None'``.  Booleans are booleans (NULL where not assessed); areas and lengths are rounded to
0.1 m² and 0.1 m (the polygons are traced on pixels of at least 0.3 m, so a finer figure states
nothing), centroids to 1e-7 degree (about 1 cm), fractions and compactness to 1e-4.

:data:`CLASS_COLOURS` is the one source of each class's colour: the report's overlay, map and
legend, the figures of :mod:`campwatch.plot`, and the QGIS style (:func:`qgis_style`) stored in
each GeoPackage's ``layer_styles`` table all read it.

Pure module: frames in, frames and text out (:func:`campwatch.io.write_layers` writes them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

import geopandas as gpd
import numpy as np
import pandas as pd

__all__ = [
    "CLASS_COLOURS",
    "LOW_CONFIDENCE_REASON_10M",
    "OTHER_COLOUR",
    "SCHEMA",
    "Kind",
    "qgis_style",
    "sld_style",
    "structure_frame",
    "structure_layers",
    "style_rows",
    "to_layer",
    "to_records",
    "to_rgb",
]

Kind = Literal["changes", "structures", "objects"]

#: The colour of each polygon class (the ``class`` column), in legend order.
CLASS_COLOURS: dict[str, str] = {
    "change": "#ff2d2d",
    "new": "#00e5ff",
    "demolished": "#ffd400",
    "expanded": "#2ecc40",
    "shrunk": "#ff851b",
    "unchanged": "#bdbdbd",
}
#: A class outside :data:`CLASS_COLOURS` (none today) is drawn in this colour and named in the legend.
OTHER_COLOUR = "#ff00ff"
#: Outline of a layer without classes (one date's built-up objects).
OBJECT_COLOUR = "#9e9e9e"

# column types: str, int, bool, m (rounded to 0.1), deg (1e-7), frac (1e-4), float (as measured)
_HEAD = (("site", "str"), ("date_before", "str"), ("date_after", "str"), ("object_id", "int"))
_SHAPE = (("n_pixels", "int"), ("perimeter_m", "m"), ("compactness", "frac"), ("centroid_lon", "deg"),
          ("centroid_lat", "deg"))
#: Columns and types of each kind, in order (the geometry follows).
SCHEMA: dict[str, tuple[tuple[str, str], ...]] = {
    "changes": (*_HEAD, ("class", "str"), ("area_m2", "m"), ("mean_score", "float"), ("low_confidence", "bool"),
                ("reason", "str"), *_SHAPE),
    "structures": (*_HEAD, ("class", "str"), ("area_m2", "m"), ("area_before_m2", "m"), ("area_after_m2", "m"),
                   ("delta_m2", "m"), ("uncertainty_m2", "m"), ("significant", "bool"), ("low_confidence", "bool"),
                   ("reason", "str"), ("change_fraction", "frac"), *_SHAPE),
    "objects": (*_HEAD, ("area_m2", "m"), *_SHAPE),
}
_DIGITS = {"m": 1, "deg": 7, "frac": 4}
_DTYPES = {"str": "string", "int": "Int64", "bool": "boolean"}

#: Why a 10 m growth group is low confidence (``significant`` is False): the rule of
#: :func:`campwatch.structures.growth_between`.
LOW_CONFIDENCE_REASON_10M = "change within its outline uncertainty, or not confirmed by the change detector"


def to_layer(gdf: gpd.GeoDataFrame, kind: Kind, *, site: str | None = None, date_before: Any = None,
             date_after: Any = None) -> gpd.GeoDataFrame:
    """``gdf`` in the schema of ``kind`` (:data:`SCHEMA`): every column, typed, rounded, in order.

    ``site``, ``date_before`` and ``date_after`` fill those columns where ``gdf`` lacks them;
    a change polygon's ``class`` is ``"change"``.  Missing columns are empty; a column outside
    the schema is a ValueError (a writer that drifted from the schema).

    Examples
    --------
    >>> from shapely.geometry import box
    >>> g = gpd.GeoDataFrame({"area_m2": [812.349], "n_pixels": [8]}, geometry=[box(0, 0, 1, 1)], crs=4326)
    >>> out = to_layer(g, "changes", date_before="2020-01-02")
    >>> out.loc[0, "class"], float(out.loc[0, "area_m2"]), out.loc[0, "date_before"], out["site"].isna().all()
    ('change', 812.3, '2020-01-02', np.True_)
    """
    columns = SCHEMA[kind]
    extra = set(gdf.columns) - {c for c, _ in columns} - {gdf.geometry.name}
    if extra:
        raise ValueError(f"columns {sorted(extra)} are not in the {kind!r} layer schema (campwatch.layers.SCHEMA)")
    fill = {"site": site, "date_before": _iso(date_before), "date_after": _iso(date_after),
            "class": "change" if kind == "changes" else None}
    n = len(gdf)
    data: dict[str, Any] = {}
    for name, typ in columns:
        values = gdf[name].to_numpy(dtype=object) if name in gdf.columns else np.full(n, fill.get(name), dtype=object)
        if typ in _DTYPES:
            if typ == "str":
                values = np.array([None if _missing(v) or v == "" else (_iso(v) if name.startswith("date") else str(v))
                                   for v in values], dtype=object)
            data[name] = pd.array([None if _missing(v) else v for v in values], dtype=_DTYPES[typ])
        else:
            f = pd.to_numeric(pd.Series(values, dtype=object), errors="raise").astype("float64").to_numpy()
            data[name] = np.round(f, _DIGITS[typ]) if typ in _DIGITS else f
    return gpd.GeoDataFrame(data, geometry=gdf.geometry.to_numpy(), crs=gdf.crs)


def structure_frame(result: Any) -> gpd.GeoDataFrame:
    """The ``structures`` rows of a growth result (10 m :class:`~campwatch.structures.GrowthResult`
    or VHR :class:`~campwatch.vhr.VHRChangeResult`), in schema columns (see :func:`to_layer`).

    At 10 m a group is low confidence when it is not ``significant`` (within its outline
    uncertainty, or not confirmed by the change detector); in VHR mode the building test says
    so with its reason, and ``significant`` is its complement.
    """
    if hasattr(result, "polygons"):  # 10 m footprints
        gp = result.polygons
        sig = gp["significant"].astype(bool)
        return gp.assign(low_confidence=~sig, reason=[None if s else LOW_CONFIDENCE_REASON_10M for s in sig])
    gp = result.growth  # VHR buildings
    low = gp["low_confidence"].astype(bool)
    return gp.rename(columns={"growth_class": "class", "changed_fraction": "change_fraction"}).assign(
        significant=~low, low_confidence=low, reason=[r or None for r in gp["reason"]])


def structure_layers(result: Any, *, site: str | None = None, date_before: Any = None,
                     date_after: Any = None) -> dict[str, gpd.GeoDataFrame]:
    """The layers of a growth result: ``structures`` (:func:`structure_frame`) and, at 10 m, each
    date's built-up objects (``objects_before``, ``objects_after``), all in their schema."""
    kw = {"site": site, "date_before": date_before, "date_after": date_after}
    out = {"structures": to_layer(structure_frame(result), "structures", **kw)}
    if hasattr(result, "objects_before"):
        out["objects_before"] = to_layer(result.objects_before, "objects", **kw)
        out["objects_after"] = to_layer(result.objects_after, "objects", **kw)
    return out


def to_records(gdf: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """The rows of a layer as dicts (empty cells None) with the geometry as ``wkb``."""
    rows = gdf.drop(columns=gdf.geometry.name).to_dict("records")
    return [{**{k: None if _missing(v) else v for k, v in row.items()}, "wkb": geom.wkb}
            for row, geom in zip(rows, gdf.geometry, strict=True)]


def _iso(v: Any) -> Any:
    return v.isoformat() if hasattr(v, "isoformat") else v


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


# --------------------------------------------------------------------------------------------------
# QGIS styles (the GeoPackage's layer_styles table)
# --------------------------------------------------------------------------------------------------
def _classes(gdf: gpd.GeoDataFrame) -> list[str]:
    present = {str(v) for v in gdf["class"].dropna()}
    return [c for c in CLASS_COLOURS if c in present] + sorted(present - set(CLASS_COLOURS))


def to_rgb(hex_colour: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` as (r, g, b) 0-255.

    Examples
    --------
    >>> to_rgb(CLASS_COLOURS["new"])
    (0, 229, 255)
    """
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _rgba(hex_colour: str, alpha: int) -> str:
    return ",".join(str(v) for v in (*to_rgb(hex_colour), alpha))


def _fill_symbol(name: str, colour: str, *, fill_alpha: int) -> str:
    props = {"color": _rgba(colour, fill_alpha), "style": "solid", "outline_color": _rgba(colour, 255),
             "outline_style": "solid", "outline_width": "0.6", "outline_width_unit": "MM", "joinstyle": "miter"}
    options = "".join(f'<Option name="{k}" type="QString" value="{v}"/>' for k, v in props.items())
    legacy = "".join(f'<prop k="{k}" v="{v}"/>' for k, v in props.items())  # QGIS < 3.26 reads these
    return (f'<symbol type="fill" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">'
            f'<layer class="SimpleFill" enabled="1" locked="0" pass="0"><Option type="Map">{options}</Option>'
            f"{legacy}</layer></symbol>")


def qgis_style(gdf: gpd.GeoDataFrame) -> str:
    """QML of a layer: polygons coloured by ``class`` (:data:`CLASS_COLOURS`, a categorized
    renderer with one category per class value in the layer; every class of the colours when the
    layer is empty), or one grey outline for a layer without ``class``.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> g = gpd.GeoDataFrame({"class": ["new", "change"]}, geometry=[box(0, 0, 1, 1)] * 2, crs=4326)
    >>> qml = qgis_style(g)
    >>> 'type="categorizedSymbol" attr="class"' in qml, 'value="new"' in qml, "0,229,255,255" in qml
    (True, True, True)
    """
    head = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n<qgis version=\"3.28.0\" styleCategories=\"Symbology\">"
    if "class" not in gdf.columns:
        renderer = (f'<renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0">'
                    f"<symbols>{_fill_symbol('0', OBJECT_COLOUR, fill_alpha=0)}</symbols></renderer-v2>")
        return f"{head}{renderer}</qgis>\n"
    classes = _classes(gdf) or list(CLASS_COLOURS)
    cats = "".join(f'<category value={quoteattr(c)} label={quoteattr(c)} symbol="{i}" render="true"/>'
                   for i, c in enumerate(classes))
    symbols = "".join(_fill_symbol(str(i), CLASS_COLOURS.get(c, OTHER_COLOUR), fill_alpha=90)
                      for i, c in enumerate(classes))
    renderer = (f'<renderer-v2 type="categorizedSymbol" attr="class" symbollevels="0" enableorderby="0" '
                f'forceraster="0"><categories>{cats}</categories><symbols>{symbols}</symbols></renderer-v2>')
    return f"{head}{renderer}</qgis>\n"


def sld_style(gdf: gpd.GeoDataFrame, *, name: str) -> str:
    """The same style as SLD 1.1 (one rule per class, for tools other than QGIS)."""
    classes = _classes(gdf) if "class" in gdf.columns else []

    def rule(title: str, colour: str, filt: str, opacity: float) -> str:
        return (f"<se:Rule><se:Name>{title}</se:Name>{filt}<se:PolygonSymbolizer><se:Fill>"
                f'<se:SvgParameter name="fill">{colour}</se:SvgParameter>'
                f'<se:SvgParameter name="fill-opacity">{opacity}</se:SvgParameter></se:Fill><se:Stroke>'
                f'<se:SvgParameter name="stroke">{colour}</se:SvgParameter>'
                f'<se:SvgParameter name="stroke-width">2</se:SvgParameter></se:Stroke></se:PolygonSymbolizer></se:Rule>')

    rules = "".join(rule(c, CLASS_COLOURS.get(c, OTHER_COLOUR),
                         f"<ogc:Filter><ogc:PropertyIsEqualTo><ogc:PropertyName>class</ogc:PropertyName>"
                         f"<ogc:Literal>{c}</ogc:Literal></ogc:PropertyIsEqualTo></ogc:Filter>", 0.35)
                    for c in classes) if classes else rule(name, OBJECT_COLOUR, "", 0.0)
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<StyledLayerDescriptor version="1.1.0" xmlns="http://www.opengis.net/sld" '
            'xmlns:ogc="http://www.opengis.net/ogc" xmlns:se="http://www.opengis.net/se">'
            f"<NamedLayer><se:Name>{name}</se:Name><UserStyle><se:Name>{name}</se:Name><se:FeatureTypeStyle>"
            f"{rules}</se:FeatureTypeStyle></UserStyle></NamedLayer></StyledLayerDescriptor>\n")


def style_rows(layers: Mapping[str, gpd.GeoDataFrame], *, geometry_column: str,
               stamp: str) -> Sequence[tuple[Any, ...]]:
    """One default ``layer_styles`` row per layer: (f_table_catalog, f_table_schema, f_table_name,
    f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, owner, ui, update_time)."""
    return [("", "", name, geometry_column, f"{name} by class" if "class" in gdf.columns else name,
             qgis_style(gdf), sld_style(gdf, name=name), True,
             "campwatch: coloured by class as in the report's legend" if "class" in gdf.columns
             else "campwatch: one date's built-up objects", "campwatch", None, stamp)
            for name, gdf in layers.items()]
