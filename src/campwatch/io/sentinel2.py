"""The Sentinel-2 layout: band files named ``*_B02.jp2`` / ``*_B02_10m.tif`` in a folder, a SAFE
``IMG_DATA`` tree or an L2A ``R10m/R20m/R60m`` tree, with an optional SCL band.

It picks the L1C or L2A profile, keeps the finest copy of each band, and takes the reflectance
scaling from the SAFE ``MTD_MSIL*.xml``, the band files' own GDAL scale/offset or, failing both,
the processing baseline implied by the sensing date.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from campwatch.errors import InvalidSceneError, ReflectanceScalingWarning
from campwatch.io.source import BandRef, band_refs, gdal_scaling, mask_ref
from campwatch.profiles import PROFILES, SensorProfile

__all__ = ["S2_BASELINE_04_START", "S2_FILE_RE", "SCL_FILE_RE", "assume_baseline_04", "sentinel2_bands"]


S2_FILE_RE = re.compile(r"(?:^|_)(B(?:0[1-9]|1[0-2]|8A))(?:_(10|20|60)m)?\.(?:tif|tiff|jp2)$", re.IGNORECASE)


SCL_FILE_RE = re.compile(r"(?:^|_)SCL(?:_(20|60)m)?\.(?:tif|tiff|jp2)$", re.IGNORECASE)


#: Sentinel-2 processing baseline 04.00 (from 2022-01-25) adds 1000 to every DN (BOA/RADIO_ADD_OFFSET).
S2_BASELINE_04_START = dt.date(2022, 1, 25)


def _s2_metadata_scaling(folder: Path, level: str) -> tuple[float | None, float | None, str | None]:
    """Quantification value and additive offset from a SAFE ``MTD_MSIL1C/2A.xml`` above ``folder``."""
    for parent in [folder, *folder.parents][:6]:
        for mtd in parent.glob("MTD_MSIL*.xml"):
            try:
                root = ET.parse(mtd).getroot()
            except ET.ParseError:
                continue
            quant = offset = None
            baseline = None
            for el in root.iter():
                tag = el.tag.rsplit("}", 1)[-1]
                if tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE") and el.text:
                    quant = float(el.text)
                elif tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.text and offset is None:
                    offset = float(el.text)
                elif tag == "PROCESSING_BASELINE" and el.text:
                    baseline = el.text.strip()
            return quant, offset, f"{mtd.name} (processing baseline {baseline})"
    return None, None, None


def sentinel2_bands(folder: Path, s2: Mapping[str, Sequence[Path]], scl: Sequence[Path], profile: SensorProfile | None
                    ) -> tuple[SensorProfile, list[BandRef], dict[str, str], BandRef | None, list[str]]:
    """The Sentinel-2 bands of band folder ``folder``: ``s2`` maps band ids (B02 ...) to their files
    (one per resolution in an L2A tree), ``scl`` lists its quality-band files.

    Returns the profile (with its reflectance scaling), a :class:`BandRef` per band, the tags of the
    last band file opened, the SCL band (or None) and notes saying where the scaling came from.
    """
    notes: list[str] = []
    is_l2a = any("SCL" in f.name.upper() for f in scl) or any(re.search(r"_(10|20|60)m\.|MSIL2A|/R[126]0m/", str(f)) for fs in s2.values() for f in fs)
    name = "sentinel2-l2a" if is_l2a else "sentinel2-l1c"
    prof = profile or PROFILES[name]
    # several resolutions of one band (L2A R10m/R20m/R60m): keep the finest copy.
    chosen: dict[str, Path] = {}
    for bid, fs in s2.items():
        chosen[bid] = min(fs, key=lambda p: int((S2_FILE_RE.search(p.name) or [None, None, "99"])[2] or 99))
    tiles = {re.sub(r"_?B(?:0[1-9]|1[0-2]|8A)(?:_\d\dm)?\.\w+$", "", p.name, flags=re.I) for p in chosen.values()}
    if len(tiles) > 1:
        raise InvalidSceneError(
            f"{folder}: band files of {len(tiles)} different products ({', '.join(sorted(tiles)[:3])}...); "
            "a scene folder must hold one product's bands"
        )
    if profile is None:
        quant, offset, mtd = _s2_metadata_scaling(next(iter(chosen.values())).parent, name)
        if quant:
            prof = prof.with_scaling(scale=1.0 / quant, offset=offset or 0.0)
            notes.append(f"reflectance scaling from {mtd}: (DN + {offset or 0:g}) / {quant:g}")
        elif (gdal := gdal_scaling(next(iter(chosen.values())))) is not None:
            prof = prof.with_scaling(scale=gdal[0], offset=gdal[1] / gdal[0])
            notes.append(f"reflectance scaling from the band files' scale/offset: DN * {gdal[0]:g} + {gdal[1]:g}")
    refs, tags = band_refs(chosen, prof)
    scl_ref = mask_ref(scl, "scl", "SCL")
    return prof, refs, tags, scl_ref, notes


def assume_baseline_04(folder: Path, prof: SensorProfile, date: dt.date | None,
                       notes: Sequence[str]) -> tuple[SensorProfile, list[str]]:
    """The profile and notes of a Sentinel-2 band folder once its date is known: without a scaling
    found in metadata (no "reflectance scaling from" note), a scene sensed from
    :data:`S2_BASELINE_04_START` on gets the -1000 DN offset of processing baseline 04.00, with a
    note and a :class:`~campwatch.errors.ReflectanceScalingWarning`."""
    notes = list(notes)
    if (not any("reflectance scaling from" in n for n in notes)
            and date is not None and date >= S2_BASELINE_04_START):
        # No MTD XML beside the bands: products processed with baseline >= 04.00 (all sensed from
        # 2022-01-25) carry a -1000 DN offset; without it reflectance is biased by +0.1.
        prof = prof.with_scaling(offset=-1000.0)
        msg = (f"no MTD_MSIL*.xml found; sensed {date} (>= {S2_BASELINE_04_START}), so processing baseline "
               ">= 04.00 is assumed and DN - 1000 is used; give --profile sentinel2-reflectance or the "
               "product's MTD file if that is wrong")
        notes.append(msg)
        warnings.warn(f"{folder}: {msg}", ReflectanceScalingWarning, stacklevel=4)
    return prof, notes
