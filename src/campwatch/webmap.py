"""What the report's interactive map draws: per-date display images and GeoJSON (the view layer).

The map (Leaflet, vendored under ``templates/vendor/leaflet``) has no basemap and fetches nothing:
each date is one PNG shown with ``L.imageOverlay`` and the polygons are GeoJSON embedded in the page.
Leaflet stretches an image linearly between its corner coordinates in Web Mercator, so each date's
image is reprojected to EPSG:3857 (nearest neighbour, about the source's pixel count) **for display
only**: every figure and polygon is measured on the source grid.

Everything here is pure: arrays and geometries in, arrays and JSON-ready dicts out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from campwatch.grid import Grid
from campwatch.layers import CLASS_COLOURS, OTHER_COLOUR, to_rgb

__all__ = [
    "CLASS_COLOURS",
    "RASTER_COLOURS",
    "display_image",
    "legend",
    "outline_feature",
    "polygon_features",
    "to_web_mercator",
]

#: Solid colours of the pixels a date's image does not show (distinct from each other, from any
#: polygon class, and from the grey mask outside the AOI, which is R = G = B).
RASTER_COLOURS: dict[str, str] = {
    "no data": "#7b00d4",  # violet: the image has no value here (outside its footprint, fill, quality band)
    "cloud": "#ff8fd0",    # pink: the spectral cloud test flagged it (grown by its buffer)
}
#: Outside the AOI: the image's luminance at this weight, blended into this grey (R = G = B).
OUTSIDE_GREY, OUTSIDE_WEIGHT = 170, 0.35
OUTSIDE_LABEL = "outside the AOI (grey mask)"

def display_image(rgb: np.ndarray, *, nodata: np.ndarray, cloud: np.ndarray | None = None,
                  inside: np.ndarray | None = None) -> np.ndarray:
    """(M, N, 4) uint8 RGBA: a date's true-colour image with what it does not show painted over.

    Parameters
    ----------
    rgb : (M, N, 3) uint8 ndarray
        The true-colour composite (:func:`campwatch.detect.rgb_composite`).
    nodata : (M, N) bool ndarray
        No value in this date's image: drawn in :data:`RASTER_COLOURS` ``["no data"]``.
    cloud : (M, N) bool ndarray, optional
        Flagged as cloud: drawn in ``RASTER_COLOURS["cloud"]``.
    inside : (M, N) bool ndarray, optional
        Inside the AOI; outside it the image is a grey mask (R = G = B), whatever the pixel is.

    Examples
    --------
    >>> rgb = np.full((1, 3, 3), 200, np.uint8)
    >>> img = display_image(rgb, nodata=np.array([[1, 0, 0]], bool), cloud=np.array([[0, 1, 0]], bool))
    >>> img[0, :, :3].tolist(), int(img[0, 0, 3])
    ([[123, 0, 212], [255, 143, 208], [200, 200, 200]], 255)
    """
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255
    out[nodata, :3] = to_rgb(RASTER_COLOURS["no data"])
    if cloud is not None:
        out[cloud & ~nodata, :3] = to_rgb(RASTER_COLOURS["cloud"])
    if inside is not None:
        lum = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        grey = np.round(OUTSIDE_WEIGHT * lum + (1 - OUTSIDE_WEIGHT) * OUTSIDE_GREY).astype(np.uint8)
        out[~inside, :3] = grey[~inside, None]
    return out


def to_web_mercator(image: np.ndarray, grid: Grid) -> tuple[np.ndarray, list[list[float]]]:
    """An (M, N, C) uint8 image on ``grid``, reprojected to EPSG:3857 for display.

    Nearest neighbour, with square pixels the size of the source pixel's shorter side (so at least
    the source's resolution in both directions); pixels outside the source are 0 (with RGBA,
    transparent).  Returns the image and its Leaflet bounds ``[[south, west], [north, east]]``.

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid((100, 200), Affine(10, 0, 500000, 0, -10, 4000000), "EPSG:32652")  # 10 m UTM pixels
    >>> img, bounds = to_web_mercator(np.full((100, 200, 4), 255, np.uint8), g)
    >>> img.shape, [[round(v, 4) for v in c] for c in bounds]   # the grid spans 129.0-129.0222 E, 36.1357-36.1447 N
    ((101, 201, 4), [[36.1357, 129.0], [36.1447, 129.0223]])
    """
    from pyproj import Transformer
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    h, w = grid.shape
    dst_t, dw, dh = calculate_default_transform(grid.crs, "EPSG:3857", w, h, *grid.bounds,
                                                resolution=_finest_step(grid))
    src = np.moveaxis(np.asarray(image, np.uint8), -1, 0)
    out = np.zeros((src.shape[0], dh, dw), np.uint8)
    reproject(src, out, src_transform=grid.transform, src_crs=grid.crs, dst_transform=dst_t, dst_crs="EPSG:3857",
              resampling=Resampling.nearest, src_nodata=None, dst_nodata=0)
    west, north = dst_t.c, dst_t.f
    east, south = dst_t.c + dst_t.a * dw, dst_t.f + dst_t.e * dh
    to_ll = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    (lon0, lon1), (lat0, lat1) = to_ll.transform([west, east], [south, north])
    return np.moveaxis(out, 0, -1), [[float(lat0), float(lon0)], [float(lat1), float(lon1)]]


def _finest_step(grid: Grid) -> float:
    """The shorter side, in EPSG:3857 metres, of the source pixel at the grid's centre: square
    display pixels no larger than the source's (a degree grid's pixels are not square in metres)."""
    from pyproj import Transformer

    t = grid.transform
    r, c = grid.height / 2, grid.width / 2
    cols, rows = np.array([c, c + 1, c]), np.array([r, r, r + 1])
    xs, ys = t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f
    mx, my = Transformer.from_crs(grid.crs, "EPSG:3857", always_xy=True).transform(xs, ys)
    return float(min(np.hypot(mx[1] - mx[0], my[1] - my[0]), np.hypot(mx[2] - mx[0], my[2] - my[0])))


def _rounded(geom: Any, ndigits: int = 7) -> dict[str, Any]:
    """A geometry as GeoJSON with coordinates rounded to ``ndigits`` decimals of a degree (7: about 1 cm)."""
    import shapely

    return dict(shapely.geometry.mapping(shapely.transform(geom, lambda c: np.round(c, ndigits))))


def polygon_features(polygons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (EPSG:4326) of a pair's polygons, one feature per GeoPackage row.

    ``polygons`` are the report's records (``wkb`` plus the GeoPackage columns); each feature
    carries what its popup shows: class, area, uncertainty, significance, low confidence,
    reason, and its colour.  Areas are rounded to 0.1 m², as in the GeoPackage.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> fc = polygon_features([{"class": "new", "area_m2": 812.34, "uncertainty_m2": 300.0, "significant": True,
    ...                         "low_confidence": False, "reason": None, "wkb": box(0, 0, 1e-3, 1e-3).wkb}])
    >>> f = fc["features"][0]; f["properties"]["area_m2"], f["properties"]["colour"], f["geometry"]["type"]
    (812.3, '#00e5ff', 'Polygon')
    """
    import shapely

    features = []
    for p in polygons:
        cls = str(p.get("class"))
        props = {
            "class": cls,
            "colour": CLASS_COLOURS.get(cls, OTHER_COLOUR),
            **{k: (None if p.get(k) is None else round(float(p[k]), 1)) for k in ("area_m2", "uncertainty_m2", "delta_m2")},
            "significant": None if p.get("significant") is None else bool(p["significant"]),
            "low_confidence": None if p.get("low_confidence") is None else bool(p["low_confidence"]),
            "reason": p.get("reason"),
        }
        features.append({"type": "Feature", "properties": props, "geometry": _rounded(shapely.from_wkb(p["wkb"]))})
    return {"type": "FeatureCollection", "features": features}


def outline_feature(geom: Any) -> dict[str, Any]:
    """The AOI outline as GeoJSON (EPSG:4326)."""
    return _rounded(geom)


def legend(classes: Sequence[str], *, rasters: Sequence[str]) -> list[tuple[str, str]]:
    """(colour, label) for every polygon class drawn and every raster colour used, in a fixed order.

    Examples
    --------
    >>> legend(["new", "change", "new"], rasters=["no data"])
    [('#ff2d2d', 'change'), ('#00e5ff', 'new'), ('#7b00d4', 'no data')]
    """
    present = set(classes)
    out = [(c, k) for k, c in CLASS_COLOURS.items() if k in present]
    out += [(OTHER_COLOUR, k) for k in sorted(present - set(CLASS_COLOURS))]
    out += [(RASTER_COLOURS[r], r) for r in RASTER_COLOURS if r in rasters]
    if OUTSIDE_LABEL in rasters:
        grey = f"#{OUTSIDE_GREY:02x}{OUTSIDE_GREY:02x}{OUTSIDE_GREY:02x}"
        out.append((grey, OUTSIDE_LABEL))
    return out
