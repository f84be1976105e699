"""campwatch: measure how detention camps change between satellite acquisitions.

The public API is listed in ``__all__``; everything else is internal.
"""

from campwatch._version import __version__

# Public names are imported on first use (PEP 562): ``import campwatch`` and every CLI
# command start without loading geopandas, scipy.stats and the rest until they are needed.
_LAZY = {
    **dict.fromkeys(('AOI', 'load_catalogue', 'read_aoi_file', 'resolve_aoi', 'validate_aoi_file'), "aoi"),
    **dict.fromkeys(('compare_files', 'compare_scenes', 'write_compare_outputs'), "compare"),
    **dict.fromkeys(('Shift', 'coregister', 'estimate_shift'), "coregister"),
    **dict.fromkeys(('ChangeResult', 'detect_change'), "detect"),
    **dict.fromkeys(('AcquisitionDateWarning', 'CampwatchError', 'CampwatchWarning', 'ConfigError', 'GridMismatchError', 'InvalidAOIError', 'InvalidSceneError', 'LowValidDataWarning', 'MisregistrationWarning', 'MissingBandsError', 'MissingDependencyError', 'NoOverlapError', 'OutputExistsError', 'ReflectanceScalingWarning', 'ReprojectionWarning', 'TileReadError'), "errors"),
    **dict.fromkeys(('Confusion', 'confusion'), "evaluate"),
    **dict.fromkeys(('Grid',), "grid"),
    **dict.fromkeys(('open_source', 'read_raster', 'read_scene', 'write_raster'), "io"),
    **dict.fromkeys(('cloud_mask', 'mask_clouds'), "masks"),
    **dict.fromkeys(('PROFILES', 'SensorProfile', 'get_profile'), "profiles"),
    **dict.fromkeys(('Scene',), "scene"),
    **dict.fromkeys(('Builtup', 'GrowthResult', 'builtup_mask', 'footprint_growth', 'structure_objects'), "structures"),
    **dict.fromkeys(('Timeline', 'track', 'write_structures', 'write_timeline'), "track"),
    **dict.fromkeys(('show_versions', 'versions'), "versions"),
    **dict.fromkeys(('VHRChangeResult', 'building_mask', 'vhr_change'), "vhr"),
}


def __getattr__(name: str) -> object:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'campwatch' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"campwatch.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "write_structures",
    "write_timeline",
]
