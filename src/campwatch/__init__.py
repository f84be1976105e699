"""campwatch: measure how detention camps change between satellite acquisitions.

The public API is listed in ``__all__``; everything else is internal.
"""

from campwatch._version import __version__
from campwatch.aoi import AOI, load_catalogue, read_aoi_file, resolve_aoi, validate_aoi_file
from campwatch.bench.metrics import Confusion, confusion
from campwatch.compare import compare_files, compare_scenes, write_compare_outputs
from campwatch.coregister import Shift, coregister, estimate_shift
from campwatch.detect import ChangeResult, detect_change
from campwatch.errors import (
    AcquisitionDateWarning,
    CampwatchError,
    CampwatchWarning,
    ConfigError,
    FetchError,
    GridMismatchError,
    InvalidAOIError,
    InvalidSceneError,
    LowValidDataWarning,
    MisregistrationWarning,
    MissingBandsError,
    MissingDependencyError,
    NoOverlapError,
    OutputExistsError,
    ReflectanceScalingWarning,
    ReprojectionWarning,
    TileReadError,
)
from campwatch.fetch import FetchResult, fetch
from campwatch.grid import Grid
from campwatch.io import open_source, read_raster, read_scene, write_raster
from campwatch.masks import cloud_mask, mask_clouds
from campwatch.profiles import PROFILES, SensorProfile, get_profile
from campwatch.scene import Scene
from campwatch.structures import Builtup, GrowthResult, builtup_mask, footprint_growth, structure_objects
from campwatch.track import Timeline, track, write_structures, write_timeline
from campwatch.versions import show_versions, versions
from campwatch.vhr import VHRChangeResult, building_mask, vhr_change

__all__ = [
    "__version__",
    "AOI",
    "AcquisitionDateWarning",
    "CampwatchError",
    "CampwatchWarning",
    "ConfigError",
    "Grid",
    "GridMismatchError",
    "InvalidAOIError",
    "InvalidSceneError",
    "LowValidDataWarning",
    "MisregistrationWarning",
    "MissingBandsError",
    "MissingDependencyError",
    "NoOverlapError",
    "OutputExistsError",
    "PROFILES",
    "ReflectanceScalingWarning",
    "ReprojectionWarning",
    "Scene",
    "SensorProfile",
    "TileReadError",
    "get_profile",
    "load_catalogue",
    "open_source",
    "read_aoi_file",
    "read_raster",
    "read_scene",
    "resolve_aoi",
    "show_versions",
    "validate_aoi_file",
    "versions",
    "write_raster",
    "VHRChangeResult",
    "building_mask",
    "vhr_change",
    "Shift",
    "estimate_shift",
    "coregister",
    "cloud_mask",
    "mask_clouds",
    "ChangeResult",
    "detect_change",
    "compare_scenes",
    "compare_files",
    "write_compare_outputs",
    "Confusion",
    "confusion",
    "Builtup",
    "GrowthResult",
    "builtup_mask",
    "footprint_growth",
    "structure_objects",
    "Timeline",
    "track",
    "fetch",
    "FetchResult",
    "FetchError",
    "write_structures",
    "write_timeline",
]
