"""Plain notebook tables: values formatted for people, and small HTML (name, value) tables.

Ground layer (stdlib and numpy only; imports nothing from campwatch): the ``_repr_html_`` of
result objects (:class:`~campwatch.structures.GrowthResult`, :class:`~campwatch.track.Timeline`)
and :mod:`campwatch.plot`'s table functions format through here, so a core stage can describe
itself in a notebook without importing the view layer.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["fmt_value", "html_records", "html_table"]


def fmt_value(v: Any) -> str:
    """A value as shown in a table: None as "—", booleans as yes/no, numbers with thousands separators.

    Examples
    --------
    >>> fmt_value(1234567), fmt_value(0.12345), fmt_value(None), fmt_value(True)
    ('1,234,567', '0.1235', '—', 'yes')
    """
    if v is None:
        return "—"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        f = float(v)
        if not math.isfinite(f):
            return str(f)
        return f"{f:,.1f}" if abs(f) >= 100 else f"{f:.4g}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k}: {fmt_value(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return "; ".join(fmt_value(x) for x in v)
    return str(v)


_TH = "<th style='text-align:left;vertical-align:top'>"
_TD = "<td style='text-align:left;vertical-align:top'>"


def html_table(rows: Iterable[tuple[str, Any]], *, caption: str | None = None) -> str:
    """A two-column (name, value) HTML table; values are formatted and escaped.

    Examples
    --------
    >>> html_table([("net", -86427.94), ("note", "<b>")], caption="growth")
    "<table><caption>growth</caption><tr><th style='text-align:left;vertical-align:top'>net</th><td style='text-align:left;vertical-align:top'>-86,427.9</td></tr><tr><th style='text-align:left;vertical-align:top'>note</th><td style='text-align:left;vertical-align:top'>&lt;b&gt;</td></tr></table>"
    """
    body = "".join(f"<tr>{_TH}{html.escape(str(k))}</th>{_TD}{html.escape(fmt_value(v))}</td></tr>" for k, v in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}{body}</table>"


def html_records(records: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None,
                 caption: str | None = None) -> str:
    """An HTML table with one row per record (e.g. ``timeline.rows()``).

    Examples
    --------
    >>> html_records([{"date": "2015-08-21", "m2": 147930.8}], caption="t").count("<tr>")
    2
    """
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in records for k in r))
    head = "<tr>" + "".join(f"{_TH}{html.escape(c)}</th>" for c in cols) + "</tr>"
    body = "".join("<tr>" + "".join(f"{_TD}{html.escape(fmt_value(r.get(c)))}</td>" for c in cols) + "</tr>"
                   for r in records)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}{head}{body}</table>"
