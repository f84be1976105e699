"""Typed errors and warnings.

Every error derives from :class:`CampwatchError` and from the builtin it most
resembles, so callers can catch either (``except ValueError`` still works), in
the way rasterio's ``RasterioIOError(RasterioError, OSError)`` does.  Code
catches by type, never by message text.
"""

from __future__ import annotations

__all__ = [
    "CampwatchError",
    "FetchError",
    "InvalidAOIError",
    "InvalidSceneError",
    "MissingBandsError",
    "GridMismatchError",
    "NoOverlapError",
    "TileReadError",
    "OutputExistsError",
    "OutputLockedError",
    "OutputWriteError",
    "InsufficientDataError",
    "DateOrderError",
    "ConfigError",
    "MissingDependencyError",
    "CampwatchWarning",
    "MisregistrationWarning",
    "LowValidDataWarning",
    "ReprojectionWarning",
    "AcquisitionDateWarning",
    "AOIDefaultIdWarning",
    "ReflectanceScalingWarning",
]


class CampwatchError(Exception):
    """Base class of every error campwatch raises on purpose."""


class InvalidAOIError(CampwatchError, ValueError):
    """An area of interest is missing, malformed, or geometrically invalid."""


class InvalidSceneError(CampwatchError, ValueError):
    """A path does not hold a usable scene (empty folder, mixed files, unknown layout)."""


class MissingBandsError(CampwatchError, ValueError):
    """A method needs bands the scene lacks; the message lists what is there."""


class GridMismatchError(CampwatchError, ValueError):
    """Two arrays that must share a pixel grid do not."""


class NoOverlapError(CampwatchError, ValueError):
    """An AOI or a second scene does not overlap the first; the message gives both bounds."""


class TileReadError(CampwatchError, OSError):
    """A raster file is missing or cannot be read; the message names the path."""


class OutputExistsError(CampwatchError, FileExistsError):
    """An output exists already and ``overwrite`` was not given."""


class OutputWriteError(CampwatchError, OSError):
    """An output cannot be written (read-only folder, full disk); the message names the path."""


class OutputLockedError(CampwatchError, BlockingIOError):
    """Another campwatch run is writing the same output path right now."""


class InsufficientDataError(CampwatchError, ValueError):
    """Too little of the AOI (or of the scene overlap) is observed on both dates for any figure.

    The CLI exits with :attr:`exit_code` 3: nothing was measured, so nothing is reported.
    """

    exit_code = 3


class DateOrderError(CampwatchError, ValueError):
    """BEFORE is not earlier than AFTER, or a given date contradicts the date in the files."""


class ConfigError(CampwatchError, ValueError):
    """A batch configuration file is malformed."""


class ModelWeightsError(CampwatchError, ValueError):
    """A pretrained network's weights file is not the one campwatch was measured with."""


class MissingDependencyError(CampwatchError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class FetchError(CampwatchError, OSError):
    """A STAC search or an asset download failed (after retries); the message names the URL."""


class CampwatchWarning(UserWarning):
    """Base class of campwatch warnings; filter by class, never by text."""


class MisregistrationWarning(CampwatchWarning):
    """The dates are shifted more than can be corrected, or the shift estimate is unreliable."""


class LowValidDataWarning(CampwatchWarning):
    """Too few valid (cloud-free, non-nodata) pixels for a trustworthy figure."""


class ReprojectionWarning(CampwatchWarning):
    """A scene was reprojected onto another CRS to align it."""


class ReflectanceScalingWarning(CampwatchWarning):
    """Reflectance scaling was inferred (e.g. the Sentinel-2 baseline 04.00 offset) rather than read."""


class AOIDefaultIdWarning(CampwatchWarning):
    """An AOI file's only polygon has no id, so the file's name is used as its id."""


class AcquisitionDateWarning(CampwatchWarning):
    """The acquisition date could not be found, or only a processing date was."""
