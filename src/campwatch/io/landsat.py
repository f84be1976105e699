"""The Landsat layout: a folder of one product's band files (``LC08_..._SR_B4.TIF``, Collection 2
Level-2 or Level-1), with an optional ``QA_PIXEL`` band.

It picks the profile from the sensor in the file names (OLI, or TM/ETM+) and the product level
(``SR_`` bands), and takes the band files' own GDAL scale/offset when they carry one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from campwatch.io.source import BandRef, band_refs, gdal_scaling, mask_ref
from campwatch.profiles import PROFILES, SensorProfile

__all__ = ["LANDSAT_FILE_RE", "QA_PIXEL_FILE_RE", "landsat_bands"]


LANDSAT_FILE_RE = re.compile(r"^(L[CTEO]0[4-9])_.*?_((?:SR_)?B\d{1,2})\.(?:tif|tiff)$", re.IGNORECASE)


QA_PIXEL_FILE_RE = re.compile(r"(?:^|_)QA_PIXEL\.(?:tif|tiff)$", re.IGNORECASE)


def landsat_bands(landsat: Mapping[str, Path], landsat_sensor: str | None, scl: Sequence[Path],
                  profile: SensorProfile | None
                  ) -> tuple[SensorProfile, list[BandRef], dict[str, str], BandRef | None, list[str]]:
    """The Landsat bands of a band folder: ``landsat`` maps band ids (SR_B4, B4 ...) to their files,
    ``landsat_sensor`` is the sensor of the file names (LC08 ...), ``scl`` lists the quality-band files.

    Returns the profile (with its reflectance scaling), a :class:`BandRef` per band, the tags of the
    last band file opened, the QA_PIXEL band (or None) and notes saying where the scaling came from.
    """
    notes: list[str] = []
    name = "landsat-oli" if landsat_sensor in ("LC08", "LC09", "LO08", "LO09") else "landsat-tm-etm"
    if any(k.startswith("SR_") for k in landsat):
        name = "landsat-c2l2" if name == "landsat-oli" else "landsat-c2l2-tm-etm"
    prof = profile or PROFILES[name]
    if profile is None and (gdal := gdal_scaling(next(iter(landsat.values())))) is not None:
        prof = prof.with_scaling(scale=gdal[0], offset=gdal[1] / gdal[0])
        notes.append(f"reflectance scaling from the band files' scale/offset: DN * {gdal[0]:g} + {gdal[1]:g}")
    refs, tags = band_refs(landsat, prof)
    scl_ref = mask_ref(scl, "qa_pixel", "QA_PIXEL")
    return prof, refs, tags, scl_ref, notes
