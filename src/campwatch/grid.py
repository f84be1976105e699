"""The pixel grid: shape, affine transform and CRS, as one small immutable object.

Every array that crosses a module boundary travels with its :class:`Grid`.
Co-registration checks, AOI windows and tiling are operations on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from affine import Affine
from pyproj import Geod
from rasterio.crs import CRS
from rasterio.windows import Window

from campwatch.errors import GridMismatchError, NoOverlapError

__all__ = ["Grid", "GEOD"]

#: WGS84 ellipsoid used for every geodesic area.
GEOD = Geod(ellps="WGS84")


def _apply(t: Affine, x: Any, y: Any) -> tuple[Any, Any]:
    """Apply an affine transform to coordinates (scalars or arrays)."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


@dataclass(frozen=True)
class Grid:
    """A raster grid: ``shape`` (rows, cols), ``transform`` and ``crs``.

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid((100, 200), Affine(10, 0, 500000, 0, -10, 4000000), "EPSG:32652")
    >>> g.res
    (10.0, 10.0)
    >>> g.bounds
    (500000.0, 3999000.0, 502000.0, 4000000.0)
    >>> round(float(g.pixel_area_m2().mean()), 2)   # 10 m UTM pixels on the central meridian: 100 / 0.9996²
    100.08
    """

    shape: tuple[int, int]
    transform: Affine
    crs: CRS

    def __post_init__(self) -> None:
        rows, cols = (int(v) for v in self.shape)
        if rows <= 0 or cols <= 0:
            raise GridMismatchError(f"grid shape must be positive, got {self.shape}")
        object.__setattr__(self, "shape", (rows, cols))
        if not isinstance(self.crs, CRS):
            object.__setattr__(self, "crs", CRS.from_user_input(self.crs))

    # -- basic properties --------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        t = self.transform
        x0, y0 = t.c, t.f
        x1, y1 = _apply(t, self.width, self.height)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    @property
    def is_geographic(self) -> bool:
        return bool(self.crs.is_geographic)

    def __repr__(self) -> str:
        return f"Grid(shape={self.shape}, res={self.res}, crs={self.crs.to_string()}, bounds={self.bounds})"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description of the grid."""
        return {
            "shape": list(self.shape),
            "transform": list(self.transform)[:6],
            "crs": self.crs.to_string(),
            "res": list(self.res),
            "bounds": list(self.bounds),
        }

    # -- metric sizes ------------------------------------------------------------------
    def pixel_area_m2(self) -> np.ndarray:
        """Area of each pixel row on the WGS84 ellipsoid, as an (M, 1) array in m².

        Pixels in a geographic CRS shrink with latitude, so the area is computed
        per row; in a projected CRS each row gets ``|a * e|`` in metres divided by the
        projection's areal scale factor there (:meth:`_areal_scale`).
        """
        return self._row_areas

    @cached_property
    def _row_areas(self) -> np.ndarray:
        rows = self.height
        if not self.is_geographic:
            unit = self.crs.linear_units_factor[1] if self.crs.linear_units_factor else 1.0
            area = abs(self.transform.a * self.transform.e) * unit * unit
            out = np.full((rows, 1), area, dtype=np.float64) / self._areal_scale()
            out.setflags(write=False)
            return out
        t = self.transform
        out = np.empty((rows, 1), dtype=np.float64)
        x0, x1 = t.c, t.c + t.a
        for r in range(rows):
            y0 = t.f + t.e * r
            y1 = y0 + t.e
            area, _ = GEOD.polygon_area_perimeter([x0, x1, x1, x0], [y0, y0, y1, y1])
            out[r, 0] = abs(area)
        out.setflags(write=False)
        return out

    def _areal_scale(self) -> np.ndarray:
        """Map-to-ellipsoid areal scale factor at each row's centre pixel, as an (M, 1) array.

        A projected pixel of nominal area A covers ``A / areal_scale`` on the ellipsoid (for UTM,
        0.9992 at the central meridian to ~1.0016 at a zone edge).  The factor is taken at the
        middle column, so what remains is its east-west change within a row (< 0.05 % over a
        110 km Sentinel-2 tile).  Where pyproj cannot give factors for the CRS, 1 is used.
        """
        from pyproj import Proj, Transformer

        rows = np.arange(self.height) + 0.5
        cols = np.full(self.height, self.width / 2.0)
        x, y = _apply(self.transform, cols, rows)
        try:
            lon, lat = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True).transform(x, y)
            scale = np.asarray(Proj(self.crs).get_factors(lon, lat).areal_scale, dtype=np.float64)
        except Exception:  # pragma: no cover - CRSs without projection factors
            return np.ones((self.height, 1))
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        return scale.reshape(-1, 1)

    def pixel_size_m(self) -> float:
        """Mean linear pixel size in metres (square root of the mean pixel area)."""
        return float(math.sqrt(self.pixel_area_m2().mean()))

    # -- comparisons and sub-grids -------------------------------------------------------
    def same_as(self, other: Grid, *, tol: float = 1e-6) -> bool:
        """True if both grids have the same shape, CRS and transform (within ``tol`` pixels)."""
        if self.shape != other.shape or self.crs != other.crs:
            return False
        a, b = self.transform, other.transform
        px = max(abs(a.a), abs(a.e))
        return all(abs(u - v) <= tol * px for u, v in zip(list(a)[:6], list(b)[:6], strict=True))

    def require_same(self, other: Grid, *, what: str = "arrays") -> None:
        """Raise :class:`GridMismatchError` unless ``other`` is the same grid."""
        if not self.same_as(other):
            raise GridMismatchError(
                f"{what} are on different grids: {self!r} vs {other!r}; "
                "align them first (campwatch.io.read_scene(..., grid=first.grid))"
            )

    def window(self, window: Window) -> Grid:
        """The sub-grid covered by a pixel ``window`` (may extend beyond this grid)."""
        return Grid(
            (int(window.height), int(window.width)),
            self.transform @ Affine.translation(window.col_off, window.row_off),
            self.crs,
        )

    def window_of_bounds(self, bounds: tuple[float, float, float, float], *, clip: bool = True) -> Window:
        """The integer pixel window that covers ``bounds`` (in this grid's CRS), rounded outwards.

        Raises :class:`NoOverlapError` when ``clip`` and the bounds miss the grid.
        """
        inv = ~self.transform
        left, bottom, right, top = bounds
        cols, rows = zip(*(_apply(inv, x, y) for x, y in ((left, top), (right, top), (left, bottom), (right, bottom))), strict=True)
        c0, c1 = math.floor(min(cols) + 1e-9), math.ceil(max(cols) - 1e-9)
        r0, r1 = math.floor(min(rows) + 1e-9), math.ceil(max(rows) - 1e-9)
        if clip:
            c0, r0 = max(c0, 0), max(r0, 0)
            c1, r1 = min(c1, self.width), min(r1, self.height)
            if c1 <= c0 or r1 <= r0:
                raise NoOverlapError(
                    f"bounds {tuple(round(v, 6) for v in bounds)} do not overlap grid bounds "
                    f"{tuple(round(v, 6) for v in self.bounds)} ({self.crs.to_string()}); "
                    "check the AOI and that the scene covers it"
                )
        return Window(c0, r0, c1 - c0, r1 - r0)

    def tiles(self, size: int, *, halo: int = 0) -> Iterator[tuple[Window, Window]]:
        """Yield ``(core, padded)`` windows that tile the grid in blocks of ``size`` pixels.

        ``padded`` is ``core`` grown by ``halo`` pixels on each side, clipped to the grid;
        neighbourhood steps read ``padded`` and keep ``core``.

        Examples
        --------
        >>> from affine import Affine
        >>> g = Grid((5, 7), Affine.identity(), "EPSG:32652")
        >>> [(int(c.row_off), int(c.col_off), int(c.height), int(c.width)) for c, _ in g.tiles(4)]
        [(0, 0, 4, 4), (0, 4, 4, 3), (4, 0, 1, 4), (4, 4, 1, 3)]
        """
        if size <= 0:
            raise ValueError(f"tile size must be positive, got {size}")
        for r in range(0, self.height, size):
            for c in range(0, self.width, size):
                h, w = min(size, self.height - r), min(size, self.width - c)
                core = Window(c, r, w, h)
                r0, c0 = max(r - halo, 0), max(c - halo, 0)
                r1, c1 = min(r + h + halo, self.height), min(c + w + halo, self.width)
                yield core, Window(c0, r0, c1 - c0, r1 - r0)

    def lonlat(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude (EPSG:4326) of fractional pixel positions (row, col)."""
        from pyproj import Transformer

        xs, ys = _apply(self.transform, np.asarray(cols, dtype=float), np.asarray(rows, dtype=float))
        if self.crs == CRS.from_epsg(4326):
            return np.asarray(xs), np.asarray(ys)
        tr = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        lon, lat = tr.transform(xs, ys)
        return np.asarray(lon), np.asarray(lat)
