"""``campwatch report CONFIG.toml -o OUTDIR``: a batch report over many sites and dates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from campwatch.cli.options import overwrite_option


@click.command("report")
@click.argument("config", type=click.Path(path_type=str))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(path_type=str),
              help="Output folder (index.html, summary.json/.csv, changes.gpkg, manifest.json).")
@click.option("--scheduler", default=None, metavar="ADDRESS|sync",
              help="A dask.distributed scheduler address (tcp://HOST:PORT), or 'sync' to run in this process. "
                   "Default: a LocalCluster sized to this machine.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failing site.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@overwrite_option
def command(config: str, outdir: str, scheduler: str | None, fail_fast: bool, quiet: bool, overwrite: bool) -> None:
    """Run every site and date pair of CONFIG and write a self-contained report to OUTDIR.

    Exit code 0 when every site succeeded, 1 when any failed (the report is still written),
    2 for bad input (config, existing OUTDIR without --overwrite).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from campwatch.io import check_output_dir
    from campwatch.report import pair_tasks, read_config, run_report, write_report

    cfg = read_config(config)
    check_output_dir(outdir, overwrite=overwrite)
    n = len(pair_tasks(cfg))
    err = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=quiet, transient=False)
    with progress:
        bar = progress.add_task(f"{len(cfg.sites)} site(s), {n} pair(s)", total=n)

        def advance(task: Any, res: dict[str, Any]) -> None:
            row = res["row"]
            progress.advance(bar)
            if row["status"] != "ok" and not quiet:
                err.print(f"[red]failed[/red] {task.site} {row['date_before']} → {row['date_after']}: {row['error']}")

        run = run_report(cfg, scheduler=scheduler, fail_fast=fail_fast, progress=advance)
    paths = write_report(run, outdir, overwrite=overwrite, repo_root=Path.cwd())
    rows = [r["row"] for r in run["results"]]
    failed = sum(1 for r in rows if r["status"] != "ok")
    click.echo(f"report: {paths['index.html']}")
    click.echo(f"{len(rows)} pair(s), {failed} failed; summary: {paths['summary.json']}, manifest: {paths['manifest.json']}")
    if failed or len(rows) < n:
        click.get_current_context().exit(1)
