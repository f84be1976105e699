"""Areas of interest: the catalogue of known camps, user AOI files, validation and look-up.

An :class:`AOI` is one polygon or multipolygon in EPSG:4326 with an ``id``, a ``name`` and every other
property of the feature it came from (status, sources, expected changes ...). The catalogue lives in
the repository's ``aois/`` folder (one GeoJSON file per facility, plus ``aois/samples/`` for the sample
tiles); ``CAMPWATCH_AOIS`` points elsewhere.

Look-up rules (:func:`resolve_aoi`)
-----------------------------------
Text is compared after case-folding, removing accents and dropping every character that is not a
letter or digit, so ``Kwan-li-so No. 15``, ``kwanliso-15`` and ``KWANLISO15`` are the same key.

1. An exact catalogue ``id`` always wins.
2. Otherwise the key is looked up among every AOI's ``name``, ``aliases``, ``alt_names`` and
   ``korean_name``. A key claimed by two or more AOIs (``kaechon`` names both kwanliso 14 and
   kyohwaso 1) is ambiguous: it resolves to nothing and the error lists the candidates.
3. Otherwise, text naming an existing file (optionally ``path#feature``) is read as an AOI file.

Bare camp numbers (``15``, ``camp 15``) are aliases of the kwanliso only, as in the literature;
prisons (kyo-hwa-so) are reached by ``kyohwaso-22`` and the like. The catalogue's build script
writes those aliases into each file (and lists any alias shared with another facility under
``shared_aliases``), so the rule is visible and editable there.

File reading
------------
GeoJSON (``.geojson``/``.json``) is parsed directly, keeping nested properties, and defaults to
EPSG:4326 (RFC 7946); a legacy ``crs`` member is honoured. GeoPackage, Shapefile and KML are read
through pyogrio and reprojected to EPSG:4326. Every feature needs an ``id`` (``properties.id``,
the GeoJSON feature ``id`` or, for KML only, the placemark ``Name``).
"""

from __future__ import annotations

import contextlib
import difflib
import html
import json
import math
import os
import re
import unicodedata
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import shapely
from pyproj import CRS as ProjCRS
from pyproj import Geod, Transformer
from shapely.geometry import MultiPolygon, Polygon, mapping, shape

from campwatch.errors import AOIDefaultIdWarning, InvalidAOIError
from campwatch.io import atomic_path, utm_crs_for

__all__ = [
    "AOI",
    "AOIProblem",
    "catalogue_dir",
    "load_catalogue",
    "read_aoi_file",
    "resolve_aoi",
    "validate_aoi_file",
    "write_aois",
]

_GEOD = Geod(ellps="WGS84")
_WGS84 = ProjCRS.from_epsg(4326)
GEOJSON_SUFFIXES = (".geojson", ".json")
OGR_SUFFIXES = (".gpkg", ".shp", ".kml", ".zip")
AOI_SUFFIXES = GEOJSON_SUFFIXES + OGR_SUFFIXES
ExportFormat = Literal["geojson", "gpkg", "kml"]


# --------------------------------------------------------------------------------------------------
# The AOI object (pure)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AOI:
    """One area of interest in EPSG:4326.

    Parameters
    ----------
    id : str
        Catalogue or file identifier, unique within its file.
    name : str
        Human-readable name.
    geometry : shapely Polygon or MultiPolygon
        Longitude/latitude, EPSG:4326.
    properties : Mapping
        Every other property of the feature (status, sources, expected changes ...).
    source_path : str or None
        The file it was read from.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> aoi = AOI("demo", "Demo", box(126.8, 39.6, 126.81, 39.61), {"geometry_quality": "approximate"})
    >>> round(aoi.area_m2() / 1e6, 3)          # km² on the WGS84 ellipsoid
    0.954
    >>> aoi.utm_crs().to_epsg()
    32652
    """

    id: str
    name: str
    geometry: Polygon | MultiPolygon
    properties: Mapping[str, Any] = field(default_factory=dict)
    source_path: str | None = None

    # --- catalogue fields -------------------------------------------------------------------------
    @property
    def geometry_quality(self) -> str:
        """``approximate`` (drafted from a centre and an area), ``digitised``, ``sample`` or ``unspecified``."""
        return str(self.properties.get("geometry_quality") or "unspecified")

    @property
    def kind(self) -> str:
        return str(self.properties.get("kind") or "")

    @property
    def status(self) -> str:
        return str(self.properties.get("status") or "")

    @property
    def expected_changes(self) -> list[Any]:
        """Dated observations from published analyses (period, observation, source, url ...)."""
        return list(self.properties.get("expected_changes") or [])

    @property
    def sources(self) -> list[Any]:
        """Every source of the AOI's facts, as ``{"title", "url"}`` records."""
        return list(self.properties.get("sources") or [])

    @property
    def caveats(self) -> list[str]:
        """Known disagreements and limitations an analyst must read before quoting a figure."""
        return [str(c) for c in (self.properties.get("caveats") or [])]

    @property
    def aliases(self) -> list[str]:
        """Every name this AOI answers to in :func:`resolve_aoi` besides its id."""
        out: list[str] = [self.name]
        for key in ("aliases", "alt_names"):
            out.extend(str(a) for a in (self.properties.get(key) or []))
        if self.properties.get("korean_name"):
            out.append(str(self.properties["korean_name"]))
        return out

    # --- geometry -----------------------------------------------------------------------------------
    def area_m2(self) -> float:
        """Area on the WGS84 ellipsoid in m² (pyproj.Geod), independent of any projection."""
        return abs(_GEOD.geometry_area_perimeter(self.geometry)[0])

    def centroid_lonlat(self) -> tuple[float, float]:
        """``(lon, lat)`` of the centroid, taken in the AOI's UTM zone (a centroid of raw degrees is
        pulled poleward, since a degree of longitude shrinks with latitude).

        Examples
        --------
        >>> from shapely.geometry import box
        >>> lon, lat = AOI("d", "D", box(126.8, 39.6, 126.81, 39.61)).centroid_lonlat()
        >>> round(lon, 4), round(lat, 4)
        (126.805, 39.605)
        """
        utm = _to_pyproj(self.utm_crs())
        c = self.to_crs(utm).centroid
        lon, lat = Transformer.from_crs(utm, _WGS84, always_xy=True).transform(c.x, c.y)
        return float(lon), float(lat)

    def to_crs(self, crs: Any) -> Polygon | MultiPolygon:
        """The geometry in ``crs`` (anything pyproj or rasterio accepts: ``"EPSG:32652"``, a CRS ...).

        Examples
        --------
        >>> from shapely.geometry import box
        >>> g = AOI("d", "D", box(126.8, 39.6, 126.81, 39.61)).to_crs("EPSG:32652")
        >>> round(g.area / 1e6, 2)
        0.95
        """
        target = _to_pyproj(crs)
        if target == _WGS84:
            return self.geometry
        tr = Transformer.from_crs(_WGS84, target, always_xy=True)
        return _reproject(self.geometry, tr)

    def utm_crs(self) -> Any:
        """The WGS84 UTM zone CRS (a rasterio CRS) containing the AOI's centroid."""
        c = self.geometry.centroid
        return utm_crs_for(c.x, c.y)

    def search_bbox(self, *, buffer_m: float = 1000.0) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` in degrees: the AOI's bounds grown by ``buffer_m`` metres.

        The AOI is buffered by ``buffer_m`` in the local UTM zone (a true distance on the ground), then its
        longitude/latitude bounds are taken.

        Examples
        --------
        >>> from shapely.geometry import box
        >>> w, s, e, n = AOI("d", "D", box(126.8, 39.6, 126.81, 39.61)).search_bbox(buffer_m=1000)
        >>> round((n - s) * 111.0, 1)     # ~1.1 km tall + 2 x 1 km
        3.1
        """
        if buffer_m < 0 or not math.isfinite(buffer_m):
            raise InvalidAOIError(f"search_bbox buffer_m must be a finite distance >= 0 m, got {buffer_m!r}")
        utm = _to_pyproj(self.utm_crs())
        local = self.to_crs(utm)
        grown = (local.buffer(buffer_m, quad_segs=32) if buffer_m > 0 else local).segmentize(100.0)
        back = Transformer.from_crs(utm, _WGS84, always_xy=True)
        return tuple(float(v) for v in _reproject(grown, back).bounds)  # type: ignore[return-value]

    # --- conversions ----------------------------------------------------------------------------------
    def to_feature(self) -> dict[str, Any]:
        """A GeoJSON Feature dict (pure), ``id`` first among the properties."""
        props = {"id": self.id, "name": self.name}
        props.update({k: v for k, v in self.properties.items() if k not in ("id", "name")})
        return {"type": "Feature", "id": self.id, "properties": props, "geometry": mapping(self.geometry)}

    def _repr_html_(self) -> str:
        rows = [
            ("id", self.id), ("name", self.name), ("kind", self.kind), ("status", self.status),
            ("area", f"{self.area_m2() / 1e6:,.2f} km² (geodesic)"),
            ("geometry quality", self.geometry_quality),
            ("expected changes", str(len(self.expected_changes))), ("sources", str(len(self.sources))),
        ]
        rows += [("caveat", c) for c in self.caveats]
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in rows)
        return f"<table>{body}</table>"

    def __repr__(self) -> str:
        return f"AOI(id={self.id!r}, name={self.name!r}, geometry_quality={self.geometry_quality!r})"


def _reproject(geom: Any, transformer: Transformer) -> Any:
    """``geom`` with every vertex passed through ``transformer`` (always_xy)."""
    return shapely.transform(geom, lambda x, y: transformer.transform(x, y), interleaved=False)


def _to_pyproj(crs: Any) -> ProjCRS:
    try:
        return ProjCRS.from_user_input(crs)
    except Exception as exc:  # pyproj raises CRSError, rasterio objects go through to_wkt
        if hasattr(crs, "to_wkt"):
            return ProjCRS.from_wkt(crs.to_wkt())
        raise InvalidAOIError(f"cannot interpret {crs!r} as a CRS ({exc}); give e.g. 'EPSG:32652'") from exc


# --------------------------------------------------------------------------------------------------
# Validation (pure, on GeoJSON-like feature dicts)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AOIProblem:
    """One problem in one AOI file: which file, which feature (id or ``#index``), and why."""

    path: str
    feature: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: feature {self.feature}: {self.reason}"


def _feature_label(i: int, fid: str | None) -> str:
    return f"{fid!r} (#{i})" if fid else f"#{i}"


def _coords_ok(geom: Any) -> str | None:
    """Reason the lon/lat coordinates are out of range, or None."""
    try:
        coords = shapely.get_coordinates(geom)
    except Exception as exc:
        return f"unreadable coordinates ({exc})"
    if coords.size == 0:
        return None
    import numpy as np

    if not np.isfinite(coords).all():
        return "has non-finite coordinates (NaN or infinity)"
    lon, lat = coords[:, 0], coords[:, 1]
    if (np.abs(lat) > 90).any():
        worst = float(lat[np.argmax(np.abs(lat))])
        if (np.abs(lon) <= 90).all() and (np.abs(lat) <= 180).all():
            return (f"latitude {worst:g} is outside -90..90: latitude and longitude look swapped; "
                    "GeoJSON order is [longitude, latitude]")
        return f"latitude {worst:g} is outside -90..90"
    if (np.abs(lon) > 180).any():
        worst = float(lon[np.argmax(np.abs(lon))])
        return (f"longitude {worst:g} is outside -180..180; is the file in a projected CRS "
                "without saying so? Declare its CRS or reproject it to EPSG:4326")
    return None


def features_to_aois(features: Sequence[Mapping[str, Any]], *, source: str,
                     crs: Any = "EPSG:4326") -> tuple[list[AOI], list[AOIProblem]]:
    """Convert GeoJSON-like features to AOIs, collecting every problem instead of stopping at the first.

    Parameters
    ----------
    features : sequence of dict
        GeoJSON Feature mappings (``geometry``, ``properties``, optional ``id``).
    source : str
        File name used in problem messages.
    crs : CRS-like
        The CRS of the coordinates; they are reprojected to EPSG:4326.

    Returns
    -------
    aois : list of AOI
        The features without problems.
    problems : list of AOIProblem

    Examples
    --------
    >>> bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    >>> aois, problems = features_to_aois([{"properties": {"id": "x"}, "geometry": bowtie}], source="f.geojson")
    >>> print(problems[0])
    f.geojson: feature 'x' (#0): invalid geometry: Self-intersection[0.5 0.5]; fix it in a GIS (e.g. shapely.make_valid or QGIS 'Fix geometries')
    """
    problems: list[AOIProblem] = []
    aois: list[AOI] = []
    try:
        src_crs = _to_pyproj(crs)
    except InvalidAOIError as exc:
        return [], [AOIProblem(source, "-", str(exc))]
    tr = None if src_crs == _WGS84 else Transformer.from_crs(src_crs, _WGS84, always_xy=True)
    seen: dict[str, int] = {}
    for i, feat in enumerate(features):
        if not isinstance(feat, Mapping) or feat.get("type", "Feature") != "Feature":
            kind = feat.get("type") if isinstance(feat, Mapping) else type(feat).__name__
            problems.append(AOIProblem(source, f"#{i}", f"is a {kind!r}, not a GeoJSON Feature"))
            continue
        props = dict(feat.get("properties") or {})
        fid = props.get("id")
        if fid in (None, ""):
            fid = feat.get("id")
        fid = None if fid in (None, "") else str(fid)
        label = _feature_label(i, fid)
        bad = False
        if fid is None:
            problems.append(AOIProblem(source, label, "has no id; add a unique properties.id (e.g. \"my-site-1\")"))
            bad = True
        elif fid in seen:
            problems.append(AOIProblem(source, label, f"duplicate id {fid!r}, also used by feature #{seen[fid]}; "
                                                       "ids must be unique within a file"))
            bad = True
        else:
            seen[fid] = i
        gj = feat.get("geometry")
        if gj is None:
            problems.append(AOIProblem(source, label, "has no geometry; an AOI needs a Polygon or MultiPolygon"))
            continue
        gtype = gj.get("type") if isinstance(gj, Mapping) else None
        if gtype not in ("Polygon", "MultiPolygon"):
            problems.append(AOIProblem(source, label, f"is a {gtype}, not a Polygon or MultiPolygon; "
                                                       "draw the area as a polygon (buffer points or lines first)"))
            continue
        try:
            geom = shape(gj)
        except Exception as exc:
            problems.append(AOIProblem(source, label, f"unreadable {gtype} coordinates ({exc})"))
            continue
        if geom.is_empty:
            problems.append(AOIProblem(source, label, f"the {gtype} is empty"))
            continue
        if tr is not None:
            geom = _reproject(geom, tr)
        reason = _coords_ok(geom)
        if reason:
            problems.append(AOIProblem(source, label, reason))
            continue
        if not geom.is_valid:
            problems.append(AOIProblem(source, label, f"invalid geometry: {shapely.is_valid_reason(geom)}; fix it in "
                                                       "a GIS (e.g. shapely.make_valid or QGIS 'Fix geometries')"))
            continue
        if bad:
            continue
        name = str(props.pop("name", None) or props.pop("Name", None) or fid)
        props.pop("id", None)
        aois.append(AOI(fid, name, geom, props, source))  # type: ignore[arg-type]
    return aois, problems


def from_geojson(obj: Any, *, source: str = "<geojson>") -> tuple[list[AOI], list[AOIProblem]]:
    """Parse a decoded GeoJSON object (FeatureCollection or Feature) into AOIs and problems (pure)."""
    if not isinstance(obj, Mapping):
        return [], [AOIProblem(source, "-", f"top level is a JSON {type(obj).__name__}, not a GeoJSON object")]
    crs: Any = "EPSG:4326"
    legacy = obj.get("crs")
    if isinstance(legacy, Mapping):
        name = (legacy.get("properties") or {}).get("name")
        if name:
            crs = name
    kind = obj.get("type")
    if kind == "FeatureCollection":
        feats = obj.get("features")
        if not isinstance(feats, list):
            return [], [AOIProblem(source, "-", "FeatureCollection has no 'features' list")]
        if not feats:
            return [], [AOIProblem(source, "-", "FeatureCollection has no features; add at least one Polygon feature")]
    elif kind == "Feature":
        feats = [obj]
    elif kind in ("Polygon", "MultiPolygon", "Point", "MultiPoint", "LineString", "MultiLineString",
                  "GeometryCollection"):
        return [], [AOIProblem(source, "#0", f"is a bare {kind} geometry without an id; wrap it in a Feature "
                                             "with properties.id and properties.name")]
    else:
        return [], [AOIProblem(source, "-", f"GeoJSON type {kind!r} is not FeatureCollection or Feature")]
    return features_to_aois(feats, source=source, crs=crs)


# --------------------------------------------------------------------------------------------------
# File I/O edge
# --------------------------------------------------------------------------------------------------
def _read_file(path: str | os.PathLike[str]) -> tuple[list[AOI], list[AOIProblem]]:
    p = Path(path)
    src = str(p)
    if not p.exists():
        return [], [AOIProblem(src, "-", "file does not exist")]
    if p.is_dir():
        return [], [AOIProblem(src, "-", "is a folder; give an AOI file (.geojson, .gpkg, .shp, .kml)")]
    suffix = p.suffix.lower()
    if suffix in GEOJSON_SUFFIXES or suffix not in OGR_SUFFIXES:
        try:
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            return [], [AOIProblem(src, "-", f"is not UTF-8 text, so not GeoJSON ({exc.reason} at byte {exc.start})")]
        except OSError as exc:
            return [], [AOIProblem(src, "-", f"cannot be read ({exc.strerror})")]
        if not text.strip():
            return [], [AOIProblem(src, "-", "file is empty; it should hold a GeoJSON FeatureCollection")]
        if suffix not in GEOJSON_SUFFIXES and not text.lstrip().startswith("{"):
            return [], [AOIProblem(src, "-", f"unsupported AOI file type {suffix or '(no suffix)'!r}; "
                                             f"use one of {', '.join(AOI_SUFFIXES)}")]
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return [], [AOIProblem(src, "-", f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")]
        return from_geojson(with_default_id(obj, p.stem, source=src), source=src)
    return _read_ogr(p)


def with_default_id(obj: Any, stem: str, *, source: str) -> Any:
    """A file of one polygon without ``properties.id`` (a bare geometry, a lone Feature, or a
    collection of one) takes the file's stem as its id and name, with an :class:`AOIDefaultIdWarning`.

    Several features without ids stay as they are: which id goes with which is the user's to say.
    """
    if not isinstance(obj, Mapping):
        return obj
    kind = obj.get("type")
    if kind in ("Polygon", "MultiPolygon"):
        feature: Any = {"type": "Feature", "properties": {}, "geometry": obj}
    elif kind == "Feature":
        feature = obj
    elif kind == "FeatureCollection" and isinstance(obj.get("features"), list) and len(obj["features"]) == 1:
        feature = obj["features"][0]
    else:
        return obj
    if not isinstance(feature, Mapping):
        return obj
    props = dict(feature.get("properties") or {})
    if props.get("id") or feature.get("id"):
        return obj
    aoi_id = re.sub(r"[^\w-]+", "-", stem).strip("-") or "aoi"
    warnings.warn(f"{source}: the polygon has no properties.id; using the file name, id {aoi_id!r}",
                  AOIDefaultIdWarning, stacklevel=3)
    props.setdefault("name", stem)
    props["id"] = aoi_id
    one = {**feature, "properties": props}
    return {**{k: v for k, v in obj.items() if k not in ("type", "features", "geometry", "coordinates")},
            "type": "FeatureCollection", "features": [one]}


def _read_ogr(p: Path) -> tuple[list[AOI], list[AOIProblem]]:
    import pyogrio

    src = str(p)
    is_kml = p.suffix.lower() == ".kml"
    try:
        layers = pyogrio.list_layers(p)
    except Exception as exc:
        return [], [AOIProblem(src, "-", f"cannot be opened as a vector file ({exc})")]
    # attribute tables without geometry (QGIS's layer_styles, campwatch's own outputs) are not AOIs
    layers = [row for row in layers if row[1] is not None]
    if len(layers) == 0:
        return [], [AOIProblem(src, "-", "holds no vector layer")]
    aois: list[AOI] = []
    problems: list[AOIProblem] = []
    for layer_name, _ in layers:
        layer = str(layer_name)
        try:
            info = pyogrio.read_info(p, layer=layer)
            df = pyogrio.read_dataframe(p, layer=layer)
        except Exception as exc:
            problems.append(AOIProblem(src, "-", f"layer {layer!r} cannot be read ({exc})"))
            continue
        if info.get("crs") is None:
            problems.append(AOIProblem(src, "-", f"layer {layer!r} has no CRS; define it (e.g. a .prj beside "
                                                 "a Shapefile) or save as GeoJSON in EPSG:4326"))
            continue
        if len(df) == 0:
            if len(layers) == 1:
                problems.append(AOIProblem(src, "-", "holds no features; add at least one Polygon feature"))
            continue
        feats = []
        cols = [c for c in df.columns if c != "geometry"]
        int_fields = {str(n) for n, t in zip(info.get("fields", []), info.get("dtypes", []), strict=False) if "int" in str(t)}
        for _, row in df.iterrows():
            props = {c: _plain(row[c]) for c in cols}
            for c in int_fields:   # integer fields with nulls come back as floats
                if isinstance(props.get(c), float) and props[c].is_integer():
                    props[c] = int(props[c])
            if is_kml:
                props = _kml_props(props)
            geom = row.geometry
            feats.append({"type": "Feature", "properties": props,
                          "geometry": None if geom is None else mapping(geom)})
        a, pr = features_to_aois(feats, source=src if len(layers) == 1 else f"{src}[{layer}]", crs=info["crs"])
        aois += a
        problems += pr
    return aois, problems


_KML_STYLE = ("id", "description", "Description", "timestamp", "begin", "end", "altitudeMode", "tessellate",
              "extrude", "visibility", "drawOrder", "icon")


def _kml_props(props: dict[str, Any]) -> dict[str, Any]:
    """KML placemarks: the <name> is the id (KML readers invent their own ids); styling fields are dropped."""
    out = {k: v for k, v in props.items() if k not in _KML_STYLE and k != "Name"}
    for k, v in out.items():   # KML stores every value as text
        if isinstance(v, str) and re.fullmatch(r"-?\d+", v):
            out[k] = int(v)
        elif isinstance(v, str) and re.fullmatch(r"-?\d+\.\d*(e-?\d+)?", v):
            out[k] = float(v)
    out["id"] = props.get("Name")
    out["name"] = out.pop("aoi_name", None) or props.get("Name")
    return out


def _plain(value: Any) -> Any:
    """Numpy/pandas scalars to plain Python; decode JSON-encoded lists/objects written by :func:`write_aois`."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        with contextlib.suppress(ValueError, AttributeError):
            value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def validate_aoi_file(path: str | os.PathLike[str]) -> list[AOIProblem]:
    """Every problem in an AOI file (empty list when it is fine).

    Examples
    --------
    >>> validate_aoi_file("aois/kwanliso-15.geojson")
    []
    """
    return _read_file(path)[1]


def read_aoi_file(path: str | os.PathLike[str]) -> list[AOI]:
    """Read every AOI of a GeoJSON, GeoPackage, Shapefile or KML file, in EPSG:4326.

    Raises
    ------
    InvalidAOIError
        Listing every problem (file, feature and reason); see :func:`validate_aoi_file`.

    Examples
    --------
    >>> [a.id for a in read_aoi_file("aois/samples/sample-rennes.geojson")]
    ['sample-rennes']
    """
    aois, problems = _read_file(path)
    if problems:
        raise InvalidAOIError(_problems_message(problems))
    return aois


def _problems_message(problems: Sequence[AOIProblem]) -> str:
    head = "; ".join(str(p) for p in problems[:5])
    more = f" (and {len(problems) - 5} more; run `campwatch aois check` for all)" if len(problems) > 5 else ""
    return head + more


def write_aois(path: str | os.PathLike[str], aois: Sequence[AOI], *, format: ExportFormat = "geojson",
               overwrite: bool = False) -> Path:
    """Write AOIs to a GeoJSON, GeoPackage or KML file atomically; refuse an existing file unless ``overwrite``.

    GeoJSON keeps nested properties as they are; GeoPackage and KML store lists and objects as JSON text
    (read back by :func:`read_aoi_file`).
    """
    if not aois:
        raise InvalidAOIError("nothing to export: give at least one AOI")
    if format not in ("geojson", "gpkg", "kml"):
        raise InvalidAOIError(f"unknown export format {format!r}; use geojson, gpkg or kml")
    with atomic_path(path, overwrite=overwrite) as tmp:
        if format == "geojson":
            fc = {"type": "FeatureCollection", "features": [a.to_feature() for a in aois]}
            tmp.write_text(json.dumps(fc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        else:
            import geopandas as gpd

            rows = []
            for a in aois:
                props = a.to_feature()["properties"]
                row = {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v)
                       for k, v in props.items()}
                if format == "kml":
                    # KML readers (LIBKML) invent placemark ids, so the id travels as the placemark <name>.
                    row = {"Name": a.id, "Description": a.name, "aoi_name": a.name,
                           **{k: v for k, v in row.items() if k not in ("id", "name")}}
                rows.append(row)
            # Mixed-type columns (camp_number None/int) are written as text to keep every value.
            gdf = gpd.GeoDataFrame(rows, geometry=[a.geometry for a in aois], crs="EPSG:4326")
            for col in gdf.columns:
                if col == "geometry":
                    continue
                values = [r.get(col) for r in rows]
                if all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
                    gdf[col] = gdf[col].astype("Int64")   # camp_number: keep 15, not 15.0
                elif gdf[col].dtype == object:
                    gdf[col] = gdf[col].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
            driver = "GPKG" if format == "gpkg" else "KML"
            gdf.to_file(tmp, driver=driver, engine="pyogrio", layer="aois")
    return Path(path)


# --------------------------------------------------------------------------------------------------
# Catalogue and look-up
# --------------------------------------------------------------------------------------------------
def catalogue_dir() -> Path:
    """The catalogue folder: ``$CAMPWATCH_AOIS`` or the repository's ``aois/``."""
    env = os.environ.get("CAMPWATCH_AOIS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "aois"


def load_catalogue(path: str | os.PathLike[str] | None = None, *, include_samples: bool = True) -> list[AOI]:
    """Every AOI of the catalogue folder (``*.geojson`` and ``samples/*.geojson``), sorted by id.

    Raises
    ------
    InvalidAOIError
        If the folder is missing, a file is invalid, or two files share an id.

    Examples
    --------
    >>> ids = [a.id for a in load_catalogue()]
    >>> "kwanliso-15" in ids and "sample-paris" in ids
    True
    """
    folder = Path(path) if path is not None else catalogue_dir()
    if not folder.is_dir():
        raise InvalidAOIError(f"AOI catalogue folder {folder} does not exist; set CAMPWATCH_AOIS to the aois/ "
                              "folder of a campwatch checkout")
    files = sorted(folder.glob("*.geojson"))
    if include_samples:
        files += sorted((folder / "samples").glob("*.geojson"))
    out: list[AOI] = []
    problems: list[AOIProblem] = []
    owner: dict[str, str] = {}
    for f in files:
        aois, pr = _read_file(f)
        problems += pr
        for a in aois:
            if a.id in owner:
                problems.append(AOIProblem(str(f), repr(a.id), f"id already used in {owner[a.id]}"))
            owner[a.id] = str(f)
        out += aois
    if problems:
        raise InvalidAOIError("invalid AOI catalogue: " + _problems_message(problems))
    return sorted(out, key=lambda a: a.id)


def _key(text: str) -> str:
    """Case-folded, accent-free, letters and digits only: ``"Kwan-li-so No. 15"`` -> ``"kwanlisono15"``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


def alias_index(aois: Iterable[AOI]) -> dict[str, list[str]]:
    """Map each normalised id/alias key to the ids claiming it (more than one id = ambiguous)."""
    index: dict[str, list[str]] = {}
    for a in aois:
        for text in [a.id, *a.aliases]:
            k = _key(text)
            if k and a.id not in index.setdefault(k, []):
                index[k].append(a.id)
    return index


def resolve_aoi(text: str, *, catalogue: Sequence[AOI] | None = None) -> AOI:
    """An AOI from a catalogue id or alias (case-insensitive), or from a file ``path`` or ``path#feature``.

    See the module docstring for the look-up rules.

    Examples
    --------
    >>> resolve_aoi("yodok").id
    'kwanliso-15'
    >>> resolve_aoi("Camp 15").id == resolve_aoi("15").id == resolve_aoi("KWANLISO-15").id
    True
    >>> resolve_aoi("aois/samples/sample-bercy.geojson").id
    'sample-bercy'
    """
    text = str(text).strip()
    if not text:
        raise InvalidAOIError("empty AOI: give a catalogue id (see `campwatch aois list`) or an AOI file")
    path_part, _, feature = text.partition("#")
    looks_like_file = Path(path_part).suffix.lower() in AOI_SUFFIXES
    if looks_like_file and Path(path_part).exists():
        return _resolve_file(Path(path_part), feature or None)
    cat = list(catalogue) if catalogue is not None else load_catalogue()
    by_id = {a.id: a for a in cat}
    if text in by_id:
        return by_id[text]
    lowered = {a.id.casefold(): a for a in cat}
    if text.casefold() in lowered:
        return lowered[text.casefold()]
    index = alias_index(cat)
    hits = index.get(_key(text), [])
    if len(hits) == 1:
        return by_id[hits[0]]
    if len(hits) > 1:
        listed = ", ".join(f"{i} ({by_id[i].name})" for i in hits)
        raise InvalidAOIError(f"AOI {text!r} is ambiguous: it names {listed}; use the id")
    if Path(path_part).is_file():          # a file without a known suffix, e.g. exported from a web map
        return _resolve_file(Path(path_part), feature or None)
    if looks_like_file:
        raise InvalidAOIError(f"AOI file {path_part} does not exist")
    close = difflib.get_close_matches(_key(text), list(index), n=8, cutoff=0.6)
    ids: list[str] = []
    for k in close:
        for i in index[k]:
            if i not in ids:
                ids.append(i)
    hint = f"; did you mean {', '.join(ids[:5])}?" if ids else ""
    raise InvalidAOIError(f"unknown AOI {text!r}: not a catalogue id or alias, nor an existing file{hint} "
                          "(`campwatch aois list` shows the catalogue)")


def _resolve_file(path: Path, feature: str | None) -> AOI:
    aois = read_aoi_file(path)
    if feature is None:
        if len(aois) == 1:
            return aois[0]
        ids = ", ".join(a.id for a in aois[:10])
        raise InvalidAOIError(f"{path} holds {len(aois)} features ({ids}); choose one as {path}#<feature id>")
    for a in aois:
        if a.id == feature:
            return a
    if re.fullmatch(r"\d+", feature) and int(feature) < len(aois) and not any(a.id == feature for a in aois):
        return aois[int(feature)]
    raise InvalidAOIError(f"{path} has no feature {feature!r}; its ids are {', '.join(a.id for a in aois[:20])}")
