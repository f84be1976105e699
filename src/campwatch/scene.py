"""The in-memory scene: band-first reflectance on a :class:`~campwatch.grid.Grid`.

Pure module: building and slicing scenes never touches a file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from campwatch.errors import GridMismatchError, MissingBandsError
from campwatch.grid import Grid

__all__ = ["Scene"]


@dataclass(frozen=True, eq=False)
class Scene:
    """One acquisition over one grid.

    Parameters
    ----------
    data : (B, M, N) float32 ndarray
        Reflectance (or scaled DN for uncalibrated imagery), NaN where invalid.
    bands : tuple of str
        The common-name key of each band, in ``data`` order.
    grid : Grid
        The pixel grid of ``data``.
    valid : (M, N) bool ndarray
        True where every band holds a usable value (not nodata, not saturated,
        not masked as cloud).
    date : datetime.date or None
        Acquisition date, when the file names, tags or a ``dates.txt`` give it.
    profile : str
        The sensor profile name used to read the bands.
    sources : tuple of str
        The files the pixels came from.
    meta : dict
        Free-form provenance: date source, scaling, cloud fraction, notes.
    """

    data: np.ndarray
    bands: tuple[str, ...]
    grid: Grid
    valid: np.ndarray
    date: dt.date | None = None
    profile: str = "generic"
    sources: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != 3 or self.data.shape[0] != len(self.bands):
            raise GridMismatchError(
                f"scene data has shape {self.data.shape} but {len(self.bands)} band names {self.bands}"
            )
        if self.data.shape[1:] != self.grid.shape or self.valid.shape != self.grid.shape:
            raise GridMismatchError(
                f"scene arrays {self.data.shape[1:]} / valid {self.valid.shape} do not match grid {self.grid.shape}"
            )
        if len(set(self.bands)) != len(self.bands):
            raise MissingBandsError(f"duplicate band names {self.bands}")

    # -- band access -------------------------------------------------------------------
    def has(self, *names: str) -> bool:
        return all(n in self.bands for n in names)

    def require(self, names: Sequence[str], *, method: str = "this method") -> None:
        """Raise :class:`MissingBandsError` naming what is missing and what is there."""
        missing = [n for n in names if n not in self.bands]
        if missing:
            raise MissingBandsError(
                f"{method} needs bands {', '.join(missing)} but the scene ({self.profile}"
                f"{', ' + self.sources[0] if self.sources else ''}) has only {', '.join(self.bands)}; "
                "choose another method or map bands with --bands NAME=INDEX"
            )

    def band(self, name: str) -> np.ndarray:
        """One band as an (M, N) array (a read-only view)."""
        self.require([name])
        view = self.data[self.bands.index(name)]
        view.flags.writeable = False
        return view

    def select(self, names: Sequence[str]) -> Scene:
        """A scene with only ``names``, in that order."""
        self.require(names)
        idx = [self.bands.index(n) for n in names]
        return dataclasses.replace(self, data=self.data[idx], bands=tuple(names))

    def with_valid(self, valid: np.ndarray, **meta: Any) -> Scene:
        """A copy whose valid mask is ``self.valid & valid``; invalid pixels become NaN."""
        new_valid = self.valid & valid
        data = np.where(new_valid[None], self.data, np.float32(np.nan)).astype(np.float32, copy=False)
        return dataclasses.replace(self, data=data, valid=new_valid, meta={**self.meta, **meta})

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean()) if self.valid.size else 0.0

    @property
    def label(self) -> str:
        """Short human label: the date, or the first source file name."""
        if self.date:
            return self.date.isoformat()
        return self.sources[0].rsplit("/", 1)[-1] if self.sources else "scene"

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (no pixels)."""
        return {
            "date": self.date.isoformat() if self.date else None,
            "profile": self.profile,
            "bands": list(self.bands),
            "grid": self.grid.to_dict(),
            "pixel_size_m": round(self.grid.pixel_size_m(), 3),
            "valid_fraction": round(self.valid_fraction, 6),
            "sources": list(self.sources),
            "meta": dict(self.meta),
        }

    def __repr__(self) -> str:
        return (f"Scene(date={self.date}, profile={self.profile!r}, bands={self.bands}, "
                f"shape={self.grid.shape}, valid={self.valid_fraction:.1%})")

    def _repr_html_(self) -> str:
        rows = [
            ("date", self.date or "unknown"),
            ("profile", self.profile),
            ("bands", ", ".join(self.bands)),
            ("shape (rows, cols)", self.grid.shape),
            ("pixel size", f"{self.grid.pixel_size_m():.2f} m"),
            ("CRS", self.grid.crs.to_string()),
            ("valid", f"{self.valid_fraction:.1%}"),
            ("sources", f"{len(self.sources)} file(s)"),
        ]
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table><caption>campwatch Scene</caption>{body}</table>"
