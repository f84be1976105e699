"""``campwatch info PATH``: bands, common names, size, CRS, resolution, bounds and date."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from campwatch.cli.options import band_options
from campwatch.io import open_source


@click.command("info")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@band_options
def command(path: str, as_json: bool, profile: str | None, band_map: dict[str, int] | None) -> None:
    """Describe a scene: a multi-band raster or a folder of per-band files."""
    src = open_source(path, profile=profile, bands=band_map)
    desc = src.describe()
    if as_json:
        click.echo(json.dumps(desc, indent=2))
        return
    con = Console(soft_wrap=not sys.stdout.isatty())  # piped: whole lines, paths never broken mid-name
    desc = _escaped(desc)  # paths, tags and notes are user text: never rich markup
    con.print(f"[bold]{desc['path']}[/bold]  ({desc['layout']}, profile [cyan]{desc['profile']}[/cyan])")
    con.print(f"  {desc['profile_description']}")
    con.print(f"  date: {desc['date'] or 'unknown'}" + (f"  (from {desc['date_source']})" if desc["date_source"] else ""))
    con.print(f"  CRS: {desc['crs']}   size: {desc['size']['rows']} x {desc['size']['cols']} px   "
              f"resolution: {desc['resolution'][0]:.6g} x {desc['resolution'][1]:.6g} (~{desc['pixel_size_m']} m)")
    b = desc["bounds"]
    ll = desc["bounds_lonlat"]
    con.print(f"  bounds: {b[0]:.6f}, {b[1]:.6f}, {b[2]:.6f}, {b[3]:.6f}   lon/lat: {ll[0]}, {ll[1]}, {ll[2]}, {ll[3]}")
    table = Table(title=f"{len(desc['bands'])} bands")
    for col in ("name", "band id", "file", "index", "pixel (m)", "size", "dtype", "nodata"):
        table.add_column(col)
    for band in desc["bands"]:
        table.add_row(band["name"], band["band_id"], band["file"], str(band["index"]), f"{band['pixel_size_m']:.1f}",
                      f"{band['size'][0]}x{band['size'][1]}", band["dtype"], str(band["nodata"]))
    con.print(table)
    for note in desc["notes"]:
        con.print(f"  note: {note}")


def _escaped(value: Any) -> Any:
    """Every string in ``value`` (dicts, lists) escaped for rich markup."""
    from rich.markup import escape

    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    return value
