"""Provenance records: what went in, with which parameters and versions.

An analyst must be able to rerun an output and get the same numbers, so every
output records each input's path, size and SHA-256, the acquisition dates, every
parameter, and the campwatch and library versions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from campwatch.versions import versions

__all__ = ["FETCH_RECORD", "fetch_records", "file_record", "input_records", "provenance", "now_utc"]

#: The record ``campwatch fetch`` leaves in each date folder: STAC items, asset hrefs and
#: ETags, bytes fetched and the SHA-256 of every file it wrote.
FETCH_RECORD = "fetch-record.json"


@lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_record(path: str | os.PathLike[str], *, relative_to: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Path, size in bytes and SHA-256 of one input file.

    Examples
    --------
    >>> rec = file_record("data/sample_tiles/rennes/dates.txt")
    >>> rec["size"], len(rec["sha256"])
    (34, 64)
    """
    p = Path(path)
    st = p.stat()
    shown = p
    if relative_to is not None:
        try:
            shown = p.resolve().relative_to(Path(relative_to).resolve())
        except ValueError:
            shown = p
    return {"path": shown.as_posix(), "size": st.st_size, "sha256": _sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)}


def input_records(paths: Iterable[str | os.PathLike[str]], *,
                  relative_to: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """:func:`file_record` for each distinct path, sorted by path."""
    seen = {Path(p).resolve(): p for p in paths}
    recs = [file_record(p, relative_to=relative_to) for p in seen.values()]
    return sorted(recs, key=lambda r: r["path"])


def fetch_records(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """The fetch record of each distinct folder among ``paths`` (files or folders) that
    ``campwatch fetch`` wrote: where its pixels came from (items, hrefs, ETags, SHA-256)."""
    import json

    out = []
    seen: set[Path] = set()
    for p in paths:
        q = Path(p)
        folder = (q if q.is_dir() else q.parent).resolve()
        if folder in seen or not (folder / FETCH_RECORD).is_file():
            continue
        seen.add(folder)
        rec = json.loads((folder / FETCH_RECORD).read_text(encoding="utf-8"))
        out.append({k: rec.get(k) for k in ("folder", "date", "items", "assets", "files", "reflectance", "notes")})
    return sorted(out, key=lambda r: str(r.get("folder")))


def now_utc() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def provenance(inputs: Iterable[str | os.PathLike[str]], *, parameters: Mapping[str, Any],
               dates: Mapping[str, str | None] | None = None,
               relative_to: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A provenance block: inputs with SHA-256, acquisition dates, parameters and versions (no times)."""
    inputs = list(inputs)
    fetched = fetch_records(inputs)
    return {
        "inputs": input_records(inputs, relative_to=relative_to),
        **({"fetched": fetched} if fetched else {}),
        "acquisition_dates": dict(dates or {}),
        "parameters": dict(parameters),
        "versions": versions(),
    }
