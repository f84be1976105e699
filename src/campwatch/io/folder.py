"""The band-folder layout: a folder of one scene's per-band files.

The file names say which sensor's layout it is: Sentinel-2 (:mod:`campwatch.io.sentinel2`) or
Landsat (:mod:`campwatch.io.landsat`).  A folder holding a single raster is read as that
multi-band file (:mod:`campwatch.io.multiband`).
"""

from __future__ import annotations

from pathlib import Path

from campwatch.errors import InvalidSceneError
from campwatch.io.dates import find_date
from campwatch.io.landsat import LANDSAT_FILE_RE, QA_PIXEL_FILE_RE, landsat_bands
from campwatch.io.multiband import source_from_file
from campwatch.io.sentinel2 import S2_FILE_RE, SCL_FILE_RE, assume_baseline_04, sentinel2_bands
from campwatch.io.source import SceneSource
from campwatch.profiles import COMMON_NAMES, SensorProfile

__all__ = ["RASTER_SUFFIXES", "source_from_folder"]


RASTER_SUFFIXES = {".tif", ".tiff", ".jp2", ".vrt", ".img", ".dat", ".bsq", ".bil", ".hdr", ".nc", ".png"}


def _band_folder_files(folder: Path) -> list[Path]:
    """Raster files under ``folder``, without SAFE quality masks (``QI_DATA/MSK_DETFOO_B02.jp2`` is not a band)."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES
             and "QI_DATA" not in p.relative_to(folder).parts[:-1] and not p.name.upper().startswith("MSK_")]
    return sorted(files)


def source_from_folder(folder: Path, profile: SensorProfile | None) -> SceneSource:
    """The :class:`SceneSource` of band folder ``folder`` (``profile``: the user's, else detected)."""
    files = _band_folder_files(folder)
    if not files:
        raise InvalidSceneError(
            f"{folder}: the folder holds no raster files; point at a multi-band image or a folder of band files (*_B02.tif ...)"
        )
    s2: dict[str, list[Path]] = {}
    landsat: dict[str, Path] = {}
    landsat_sensor: str | None = None
    scl: list[Path] = []
    for f in files:
        if SCL_FILE_RE.search(f.name) or QA_PIXEL_FILE_RE.search(f.name):
            scl.append(f)
        elif m := S2_FILE_RE.search(f.name):
            s2.setdefault(m[1].upper(), []).append(f)
        elif m := LANDSAT_FILE_RE.search(f.name):
            landsat[m[2].upper()] = f
            landsat_sensor = m[1].upper()
    if not s2 and not landsat:
        if len(files) == 1:
            return source_from_file(files[0], profile)
        raise InvalidSceneError(
            f"{folder}: {len(files)} raster files but none named like band files (*_B02.tif, *_SR_B4.TIF); "
            "point at one multi-band image, or at a folder holding one scene's band files"
        )
    if s2:
        prof, refs, tags, scl_ref, notes = sentinel2_bands(folder, s2, scl, profile)
    else:
        prof, refs, tags, scl_ref, notes = landsat_bands(landsat, landsat_sensor, scl, profile)
    refs.sort(key=lambda b: COMMON_NAMES.index(b.key))
    crss = {b.grid.crs.to_string() for b in refs}
    if len(crss) > 1:
        raise InvalidSceneError(f"{folder}: band files in different CRSs ({', '.join(sorted(crss))}); one scene needs one CRS")
    date, date_source, date_notes = find_date(folder, [Path(b.path) for b in refs], tags)
    if s2 and profile is None:
        prof, notes = assume_baseline_04(folder, prof, date, notes)
    return SceneSource(str(folder), "band-folder", prof, tuple(refs), date, date_source, scl_ref,
                       tuple(notes + date_notes), tags)
