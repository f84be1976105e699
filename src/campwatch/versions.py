"""Version report for bug reports and provenance (``campwatch.show_versions()``)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from campwatch._version import __version__

__all__ = ["versions", "show_versions"]

_PACKAGES = ("numpy", "scipy", "rasterio", "scikit-image", "shapely", "geopandas", "pyproj", "pyogrio",
             "click", "rich", "jinja2", "matplotlib", "dask", "distributed")


def versions() -> dict[str, str]:
    """campwatch, Python, GDAL/PROJ and dependency versions, as a dict (used in every provenance record)."""
    out = {"campwatch": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        import rasterio

        out["gdal"] = rasterio.__gdal_version__
        import pyproj

        out["proj"] = pyproj.proj_version_str
    except ImportError:  # pragma: no cover - core dependencies
        pass
    return out


def show_versions() -> None:
    """Print the version report.

    Examples
    --------
    >>> show_versions()  # doctest: +ELLIPSIS
    campwatch: ...
    """
    for key, value in versions().items():
        print(f"{key}: {value}")
