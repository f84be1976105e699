"""Masks to polygons with metric areas.

Pure module: ``rasterio.features.shapes`` works on arrays, and areas are geodesic
(WGS84 ellipsoid, ``pyproj.Geod``) whatever the grid's CRS, so a 10 m pixel in
EPSG:4326 gets its true area in m².
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features
from shapely.geometry import shape

from campwatch.grid import GEOD, Grid

__all__ = ["mask_to_polygons", "geodesic_area_m2", "geodesic_metrics"]


def geodesic_metrics(geoms: gpd.GeoSeries) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Geodesic area (m²), perimeter (m), and centroid lon/lat of each geometry.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> s = gpd.GeoSeries([box(500000, 4000000, 500100, 4000050)], crs="EPSG:32652")
    >>> area, perim, lon, lat = geodesic_metrics(s)
    >>> round(float(area[0]) / 5000, 2), round(float(perim[0]), -1)
    (1.0, 300.0)
    """
    ll = geoms.to_crs(4326) if geoms.crs is not None and not geoms.crs.equals("EPSG:4326") else geoms
    area = np.empty(len(ll))
    perim = np.empty(len(ll))
    for i, g in enumerate(ll.geometry):
        a, p = GEOD.geometry_area_perimeter(shapely.force_2d(g))
        area[i], perim[i] = abs(a), p
    # centroid in the source CRS (planar there), expressed in lon/lat
    with warnings.catch_warnings():
        # geopandas warns about planar centroids in a geographic CRS; for pixel-sized
        # polygons the planar lon/lat centroid is within millimetres of the geodesic one.
        warnings.simplefilter("ignore", UserWarning)
        cent = geoms.centroid
    if geoms.crs is not None and not geoms.crs.equals("EPSG:4326"):
        cent = cent.to_crs(4326)
    return area, perim, np.asarray(cent.x), np.asarray(cent.y)


def geodesic_area_m2(geoms: gpd.GeoSeries) -> np.ndarray:
    """Area of each geometry on the WGS84 ellipsoid, in m²."""
    return geodesic_metrics(geoms)[0]


def mask_to_polygons(mask: np.ndarray, grid: Grid, *, values: Mapping[str, np.ndarray] | None = None,
                     labels: np.ndarray | None = None, connectivity: int = 8) -> gpd.GeoDataFrame:
    """Polygons of the True pixels of ``mask``, one per connected component.

    Parameters
    ----------
    mask : (M, N) bool ndarray
    grid : Grid
        The grid of ``mask``; polygons are in its CRS.
    values : mapping of name to (M, N) ndarray, optional
        Each becomes a column ``mean_<name>``: the mean over the polygon's pixels.
    labels : (M, N) int ndarray, optional
        Component labels to use instead of labelling ``mask`` (0 = background).
    connectivity : {4, 8}

    Returns
    -------
    GeoDataFrame
        Columns ``object_id``, ``n_pixels``, ``area_m2`` (geodesic), ``perimeter_m``,
        ``compactness`` (4πA/P², 1 for a disc), ``centroid_lon``, ``centroid_lat``,
        ``mean_*`` and ``geometry``, in ``grid``'s CRS.

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid((4, 4), Affine(10, 0, 500000, 0, -10, 4000000), "EPSG:32652")
    >>> m = np.zeros((4, 4), bool); m[0:2, 0:2] = True; m[3, 3] = True
    >>> gdf = mask_to_polygons(m, g)
    >>> gdf["n_pixels"].tolist(), [round(a) for a in gdf["area_m2"]]
    ([4, 1], [400, 100])
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    grid_shape = grid.shape
    if mask.shape != grid_shape:
        raise ValueError(f"mask shape {mask.shape} does not match grid {grid_shape}")
    if labels is None:
        structure = np.ones((3, 3), bool) if connectivity == 8 else None
        labels, _ = ndimage.label(mask, structure=structure)
    labels = np.where(mask, labels, 0).astype(np.int32)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    columns = ["object_id", "n_pixels", "area_m2", "perimeter_m", "compactness", "centroid_lon", "centroid_lat"]
    columns += [f"mean_{k}" for k in (values or {})]
    if ids.size == 0:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=grid.crs)
    geoms: dict[int, list] = {}
    for geom, value in features.shapes(labels, mask=labels > 0, transform=grid.transform,
                                       connectivity=connectivity):
        geoms.setdefault(int(value), []).append(shape(geom))
    order = [int(i) for i in ids]
    polys = [shapely.union_all(geoms[i]) if len(geoms[i]) > 1 else geoms[i][0] for i in order]
    gdf = gpd.GeoDataFrame({"object_id": order}, geometry=polys, crs=grid.crs)
    counts = np.bincount(labels.ravel())
    gdf["n_pixels"] = counts[order]
    area, perim, lon, lat = geodesic_metrics(gdf.geometry)
    gdf["area_m2"] = area
    gdf["perimeter_m"] = perim
    gdf["compactness"] = np.where(perim > 0, 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2, 0.0)
    gdf["centroid_lon"] = lon
    gdf["centroid_lat"] = lat
    for name, arr in (values or {}).items():
        arr = np.asarray(arr, dtype=np.float64)
        finite = np.isfinite(arr) & (labels > 0)
        sums = np.bincount(labels[finite], weights=arr[finite], minlength=counts.size)
        n = np.bincount(labels[finite], minlength=counts.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            gdf[f"mean_{name}"] = (sums / n)[order]
    return gdf[[*columns, "geometry"]]
