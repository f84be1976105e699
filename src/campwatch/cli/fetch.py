"""``campwatch fetch AOI --start D --end D -o DIR``: find and download free imagery of an AOI from STAC."""

from __future__ import annotations

import logging

import click

from campwatch.cli.console import progress_bar, result, say
from campwatch.fetch import COLLECTIONS, DEFAULT_STAC_URL


def _date(ctx: click.Context, param: click.Parameter, value: str) -> str:
    import datetime as dt

    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD", ctx, param) from None


@click.command("fetch")
@click.argument("aoi", metavar="AOI")
@click.option("--start", required=True, callback=_date, metavar="YYYY-MM-DD", help="First acquisition date.")
@click.option("--end", required=True, callback=_date, metavar="YYYY-MM-DD", help="Last acquisition date.")
@click.option("--collection", type=click.Choice(sorted(COLLECTIONS)), default="sentinel-2-l2a", show_default=True)
@click.option("--stac-url", default=DEFAULT_STAC_URL, show_default=True, help="STAC API root.")
@click.option("--max-cloud", "max_cloud_pct", type=click.FloatRange(0, 100), default=20.0, show_default=True,
              help="Largest cloud cover over the AOI itself (percent, from the SCL band) of a kept scene.")
@click.option("--max-tile-cloud", "max_tile_cloud_pct", type=click.FloatRange(0, 100), default=90.0,
              show_default=True, help="Pre-filter on the tile-wide eo:cloud_cover (percent).")
@click.option("--per", type=click.Choice(["month", "season", "year", "all"]), default="month", show_default=True,
              help="Keep the best scene per period.")
@click.option("--months", default=None, metavar="M-N", help="Only these months, e.g. 5-10 or 11-2 or 6,7,8.")
@click.option("--bands", default=None, metavar="NAME,...",
              help="Bands to fetch, by common name (default blue,green,red,nir; the SCL band always).")
@click.option("--margin", "margin_m", type=click.FloatRange(0, 10_000), default=200.0, show_default=True,
              help="Margin around the AOI, in metres.")
@click.option("--dry-run", is_flag=True, help="Search and screen only: print each candidate and why it is kept or dropped.")
@click.option("-o", "--output", "outdir", default=None, type=click.Path(path_type=str), metavar="DIR",
              help="Folder for the dates (a rerun resumes and skips completed dates).")
def command(aoi: str, start: str, end: str, collection: str, stac_url: str, max_cloud_pct: float,
            max_tile_cloud_pct: float, per: str, months: str | None, bands: str | None, margin_m: float,
            dry_run: bool, outdir: str | None) -> None:
    """Find and download the imagery of AOI (a catalogue id or alias, or an AOI file).

    Searches the STAC API, reads the cloud mask over the AOI only, keeps the best scene per
    period, and writes each as DIR/<date>_<item-id>/ (one GeoTIFF per band on the item's own
    grid, the SCL band, the item JSON), with a fetch.json manifest. Needs network access.
    """
    from rich.progress import TaskID

    from campwatch.fetch import fetch

    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # urllib3 logs each retry; the error says it once
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    if outdir is None and not dry_run:
        raise click.UsageError("give -o DIR (or --dry-run to only list the candidates)")
    with progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, i: int, n: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task("reading cloud masks over the AOI" if stage == "screen"
                                            else "downloading dates", total=n)
            bar.update(tasks[stage], completed=i)

        got = fetch(aoi, start=start, end=end, outdir=outdir, collection=collection, stac_url=stac_url,
                    max_cloud_pct=max_cloud_pct, max_tile_cloud_pct=max_tile_cloud_pct,
                    per=per,  # type: ignore[arg-type]
                    months=months, bands=[b.strip() for b in bands.split(",")] if bands else None,
                    margin_m=margin_m, dry_run=dry_run, progress=progress)
    q = got.manifest["query"]
    say(f"{q['items_returned']} items from {stac_url} ({collection}, {start}..{end}); "
        f"{len(got.candidates)} acquisitions over AOI {q['aoi']['id']}")
    for c in got.candidates:  # a dry run's result; otherwise detail
        cloud = "   ?" if c.aoi_cloud is None else f"{c.aoi_cloud:4.0%}"
        (result if dry_run else say)(f"{c.date}  {c.status:7}  AOI cloud {cloud}  {' + '.join(it['id'] for it in c.items)}  ({c.reason})")
    if dry_run:
        result("dry run: nothing written")
        return
    for r in got.records:
        what = "already there (resumed)" if r.get("resumed") else (
            f"{r['bytes_fetched'] / 1e6:.2f} MB fetched in {r['seconds']:.1f} s")
        say(f"{r['folder']}: {what}")
    t = got.manifest["totals"]
    frac = t["fraction_of_asset_bytes"]
    result(f"{t['dates']} dates in {got.outdir}; {t['bytes_fetched_this_run'] / 1e6:.2f} MB fetched this run"
           + (f" ({frac:.1%} of the assets' {t['asset_bytes_touched_this_run'] / 1e6:.1f} MB)" if frac else "")
           + f"; manifest {got.outdir}/fetch.json")
