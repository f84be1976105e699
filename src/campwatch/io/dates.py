"""The acquisition date of a scene: from its tags, an OSCD ``dates.txt`` beside it, or its file names.

Pure apart from reading ``dates.txt``: :func:`find_date` is given the tags and file names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["find_date"]


_DATE_TAGS = ("ACQUISITION_DATETIME", "ACQUISITION_DATE", "CAPTURE_DATE", "DATATAKE_1_DATATAKE_SENSING_START",
              "SENSING_TIME", "DATE_ACQUIRED")


# TIFFTAG_DATETIME is often the time the file was written, so it is the last resort, with a note.
_WEAK_DATE_TAG = "TIFFTAG_DATETIME"


_DATE_NAME_PATTERNS = (
    ("sentinel-2 tile name sensing time", re.compile(r"T\d{2}[A-Z]{3}_(\d{8})T\d{6}")),
    ("SAFE product sensing time", re.compile(r"MSIL[12][AC]_(\d{8})T\d{6}")),
    ("landsat product acquisition date", re.compile(r"L[CTEO]0\d_L\w{3}_\d{6}_(\d{8})_")),
    ("ISO date in file name", re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)")),
)


# Old-style Sentinel-2 names (S2A_OPER_MSI_L1C_TL_EPA__20160706T155721_...) carry the *processing*
# time, not the sensing time, so they are not read as an acquisition date.
_OLD_S2_NAME = re.compile(r"S2[AB]_OPER_MSI_L1C_TL_\w{4}_(\d{8})T")


def _date_from_tags(tags: Mapping[str, str], keys: Sequence[str] = _DATE_TAGS) -> tuple[dt.date | None, str | None]:
    for key in keys:
        value = tags.get(key)
        if value:
            m = re.search(r"(\d{4})[-:]?(\d{2})[-:]?(\d{2})", value)
            if m:
                with contextlib.suppress(ValueError):
                    return dt.date(int(m[1]), int(m[2]), int(m[3])), f"tag {key}"
    return None, None


def _date_from_dates_txt(folder: Path) -> tuple[dt.date | None, str | None]:
    """OSCD layout: ``<city>/dates.txt`` gives ``date_1`` for ``imgs_1`` and ``date_2`` for ``imgs_2``."""
    m = re.fullmatch(r"imgs_(\d)", folder.name)
    dates = folder.parent / "dates.txt"
    if not m or not dates.is_file():
        return None, None
    for line in dates.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == f"date_{m[1]}":
            with contextlib.suppress(ValueError):
                return dt.datetime.strptime(value.strip(), "%Y%m%d").date(), f"{dates.name} date_{m[1]}"
    return None, None


def _date_from_name(name: str) -> tuple[dt.date | None, str | None]:
    for label, rx in _DATE_NAME_PATTERNS:
        m = rx.search(name)
        if m:
            text = m[1].replace("-", "")
            with contextlib.suppress(ValueError):
                return dt.datetime.strptime(text, "%Y%m%d").date(), f"{label} ({m[0]})"
    return None, None


def find_date(path: Path, files: Sequence[Path], tags: Mapping[str, str]) -> tuple[dt.date | None, str | None, list[str]]:
    notes: list[str] = []
    date, source = _date_from_tags(tags)
    if date is None:
        folder = path if path.is_dir() else path.parent
        date, source = _date_from_dates_txt(folder)
    if date is None:
        for f in [path, *files]:
            date, source = _date_from_name(f.name)
            if date:
                break
    if date is None:
        date, source = _date_from_tags(tags, (_WEAK_DATE_TAG,))
        if date is not None:
            notes.append(f"date {date} comes from {_WEAK_DATE_TAG}, which may be when the file was written; "
                         "check it, or give the date explicitly")
    if date is None and any(_OLD_S2_NAME.search(f.name) for f in files):
        notes.append("file names carry a processing date, not the acquisition date; pass the date explicitly")
    return date, source, notes
