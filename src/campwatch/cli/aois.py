"""``campwatch aois``: list, show, check and export areas of interest."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from campwatch.aoi import AOI, AOI_SUFFIXES, load_catalogue, resolve_aoi, validate_aoi_file, write_aois
from campwatch.cli.options import overwrite_option

_FORMATS = ("geojson", "gpkg", "kml")


def _console() -> Console:
    # Wide enough that ids and names are never cut when the output is piped.
    return Console(width=None if sys.stdout.isatty() else 140, soft_wrap=False)


@click.group("aois")
def command() -> None:
    """The catalogue of known camps and user AOI files (see aois/README.md)."""


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print id, name, kind, status, area and quality as JSON.")
@click.option("--no-samples", is_flag=True, help="Hide the sample-tile AOIs (which are not camps).")
def list_cmd(as_json: bool, no_samples: bool) -> None:
    """Table of every catalogue AOI: id, name, kind, status, geodesic area and geometry quality."""
    order = {"kwanliso": 0, "kyohwaso": 2, "sample": 4}
    aois = sorted(load_catalogue(include_samples=not no_samples),
                  key=lambda a: (order.get(a.kind, 1 if a.kind.startswith("restricted") else 3),
                                 a.properties.get("camp_number") or 999, a.id))
    rows: list[dict[str, Any]] = [{"id": a.id, "name": a.name, "kind": a.kind, "status": a.status,
             "area_km2": round(a.area_m2() / 1e6, 3), "geometry_quality": a.geometry_quality} for a in aois]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table = Table(title=f"{len(rows)} AOIs in the catalogue", title_justify="left")
    for col, just in (("id", "left"), ("name", "left"), ("kind", "left"), ("status", "left"),
                      ("area km²", "right"), ("geometry", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        quality = r["geometry_quality"]
        style = "yellow" if quality == "approximate" else ("dim" if quality == "sample" else "")
        table.add_row(escape(r["id"]), escape(r["name"]), escape(r["kind"]), escape(r["status"]),
                      f"{r['area_km2']:,.2f}", f"[{style}]{quality}[/{style}]" if style else quality)
    con = _console()
    con.print(table)
    con.print("approximate = drafted from a published centre and area, not a perimeter; "
              "sample = demo AOI on a sample tile, not a camp. Details: campwatch aois show ID")


def _fmt_source(s: Any) -> str:
    if isinstance(s, dict):
        return " ".join(str(x) for x in (s.get("title") or s.get("source"), f"<{s['url']}>" if s.get("url") else "")
                        if x)
    return str(s)


def _fmt_record(r: Any) -> str:
    if not isinstance(r, dict):
        return str(r)
    if set(r) <= {"title", "url"}:
        return _fmt_source(r)
    parts = []
    for k, v in r.items():
        if v is None or k == "url":
            continue
        parts.append(f"{k}={_fmt_source(v) if isinstance(v, dict) else v}")
    if r.get("url"):
        parts.append(f"<{r['url']}>")
    return "; ".join(parts)


@command.command("show")
@click.argument("aoi")
@click.option("--json", "as_json", is_flag=True, help="Print the AOI as a GeoJSON Feature.")
def show_cmd(aoi: str, as_json: bool) -> None:
    """Everything about one AOI (id, alias or file): status, areas, caveats, expected changes, sources."""
    a = resolve_aoi(aoi)
    if as_json:
        click.echo(json.dumps(a.to_feature(), ensure_ascii=False, indent=1))
        return
    p = dict(a.properties)
    con = _console()
    out = con.print
    out(f"[bold]{escape(a.id)}[/bold]  {escape(a.name)}")
    if a.source_path:
        out(f"  file: {escape(a.source_path)}")
    w, s, e, n = a.search_bbox()
    out(f"  geometry: {a.geometry.geom_type}, quality [yellow]{escape(a.geometry_quality)}[/yellow]"
        f"{' (' + escape(str(p['geometry_method'])) + ')' if p.get('geometry_method') else ''}; "
        f"area {a.area_m2() / 1e6:,.3f} km² on the WGS84 ellipsoid; local CRS {a.utm_crs()}")
    out(f"  search bbox (+1 km): {w:.5f}, {s:.5f}, {e:.5f}, {n:.5f}")
    shown = {"id", "name", "caveats", "expected_changes", "sources"}
    for c in a.caveats:
        out(f"  [red]caveat:[/red] {escape(c)}")
    for key, value in p.items():
        if key in shown:
            continue
        if isinstance(value, list):
            if not value:
                continue
            out(f"  [cyan]{escape(key)}[/cyan]:")
            for item in value:
                out(f"    - {escape(_fmt_record(item) if isinstance(item, dict) else str(item))}")
        elif isinstance(value, dict):
            out(f"  [cyan]{escape(key)}[/cyan]: {escape(_fmt_record(value))}")
        elif value is not None and value != "":
            out(f"  [cyan]{escape(key)}[/cyan]: {escape(str(value))}")
    out(f"  [bold]expected changes[/bold] ({len(a.expected_changes)}):")
    for ch in a.expected_changes:
        if isinstance(ch, dict):
            where = f" at lat/lon {ch['location_latlon']}" if ch.get("location_latlon") else ""
            out(f"    - [{escape(str(ch.get('period', '?')))}] {escape(str(ch.get('observation', '')))}{escape(where)} "
                f"({escape(_fmt_source(ch))})")
        else:
            out(f"    - {escape(str(ch))}")
    out(f"  [bold]sources[/bold] ({len(a.sources)}):")
    for src in a.sources:
        out(f"    - {escape(_fmt_source(src))}")


def _expand(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AOI_SUFFIXES
                            and f.suffix.lower() != ".json" and f.suffix.lower() != ".zip")
        else:
            files.append(p)
    return files


@command.command("check")
@click.argument("paths", nargs=-1, required=True)
def check_cmd(paths: tuple[str, ...]) -> int:
    """Validate AOI files (or every AOI file in a folder): one line per problem; exit 1 if any."""
    files = _expand(paths)
    if not files:
        click.echo(f"no AOI files ({', '.join(AOI_SUFFIXES)}) under {', '.join(paths)}", err=True)
        return 1
    n_problems = 0
    bad_files = 0
    for f in files:
        problems = validate_aoi_file(f)
        for pr in problems:
            click.echo(str(pr))
        n_problems += len(problems)
        bad_files += bool(problems)
    if n_problems:
        click.echo(f"{n_problems} problem(s) in {bad_files} of {len(files)} file(s)", err=True)
        return 1
    click.echo(f"ok: {len(files)} file(s) valid", err=True)
    return 0


@command.command("export")
@click.argument("aois", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default=None,
              help="Output format (default: from the file suffix, else geojson).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output file; refused if it exists unless --overwrite.")
@overwrite_option
def export_cmd(aois: tuple[str, ...], fmt: str | None, output: Path, overwrite: bool) -> None:
    """Write catalogue AOIs (ids, aliases or files) to one GeoJSON, GeoPackage or KML file."""
    if fmt is None:
        by_suffix = {".gpkg": "gpkg", ".kml": "kml", ".geojson": "geojson", ".json": "geojson"}
        if output.suffix.lower() not in by_suffix:
            from campwatch.errors import InvalidAOIError

            raise InvalidAOIError(f"{output}: cannot tell the format from the suffix {output.suffix or '(none)'!r}; "
                                  "use .geojson, .gpkg or .kml, or pass --format")
        fmt = by_suffix[output.suffix.lower()]
    resolved: list[AOI] = []
    for text in aois:
        a = resolve_aoi(text)
        if a.id not in {r.id for r in resolved}:
            resolved.append(a)
    write_aois(output, resolved, format=fmt, overwrite=overwrite)  # type: ignore[arg-type]
    click.echo(f"wrote {len(resolved)} AOI(s) to {output} ({fmt})", err=True)
