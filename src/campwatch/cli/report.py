"""``campwatch report CONFIG.toml -o OUTDIR``: a batch report over many sites and dates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from campwatch.cli.console import progress_bar, result
from campwatch.cli.options import overwrite_option


@click.command("report")
@click.argument("config", type=click.Path(path_type=str))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(path_type=str),
              help="Output folder (index.html, summary.json/.csv, changes.gpkg, manifest.json).")
@click.option("--scheduler", default=None, metavar="ADDRESS|sync",
              help="A dask.distributed scheduler address (tcp://HOST:PORT), or 'sync' to run in this process. "
                   "Default: a LocalCluster sized to this machine.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failing site.")
@click.option("--quiet", is_flag=True, help="No progress bar (as the global campwatch -q, which also drops notes).")
@overwrite_option
def command(config: str, outdir: str, scheduler: str | None, fail_fast: bool, quiet: bool, overwrite: bool) -> None:
    """Run every site and date pair of CONFIG and write a self-contained report to OUTDIR.

    Dates that are mostly cloud or no data over the AOI are skipped, as `track` does, and the
    dates around them are paired.  Exit code 0 when every pair was measured, 1 when any failed,
    3 when none failed but some had too little of the AOI observed to state a figure (the report
    is written in each case), 2 for bad input (config, OUTDIR that exists without --overwrite or
    was not written by campwatch).
    """
    from rich.console import Console
    from rich.markup import escape

    from campwatch.io import check_output_dir
    from campwatch.report import fetch_sites, pair_tasks, read_config, run_report, write_report

    cfg = read_config(config)
    check_output_dir(outdir, overwrite=overwrite)
    out = Path(outdir).resolve()
    cfg = fetch_sites(cfg, out.parent / f"{out.name}-fetch-cache")  # sites with `fetch = {...}`; reused on reruns
    n = len(pair_tasks(cfg))  # before the cloudy dates are screened out: an upper bound
    err = Console(stderr=True)
    with progress_bar(transient=False, hidden=quiet) as progress:
        bar = progress.add_task(f"{len(cfg.sites)} site(s), {n} pair(s)", total=n)

        def advance(task: Any, res: dict[str, Any]) -> None:
            row = res["row"]
            progress.advance(bar)
            if row["status"] != "ok":  # an error: printed under -q too
                err.print(f"[red]{row['status']}[/red] {escape(task.site)} {row['date_before']} → {row['date_after']}: "
                          f"{escape(str(row['error']))}")

        def planned(k: int) -> None:
            nonlocal n
            n = k
            progress.update(bar, total=k, description=f"{len(cfg.sites)} site(s), {k} pair(s)")

        run = run_report(cfg, scheduler=scheduler, fail_fast=fail_fast, progress=advance, planned=planned)
    paths = write_report(run, outdir, overwrite=overwrite, repo_root=Path.cwd())
    rows = [r["row"] for r in run["results"]]
    failed = sum(1 for r in rows if r["status"] == "failed")
    short = sum(1 for r in rows if r["status"] == "insufficient-data")
    skipped = sum(len(v) for v in run["skipped"].values())
    result(f"report: {paths['index.html']}")
    result(f"{len(rows)} pair(s), {failed} failed, {short} with insufficient data, {skipped} date(s) skipped; "
               f"summary: {paths['summary.json']}, manifest: {paths['manifest.json']}")
    if failed or len(rows) - run["unpaired"] < len(run["tasks"]):  # a failure, or --fail-fast stopped early
        click.get_current_context().exit(1)
    if short:
        click.get_current_context().exit(3)
