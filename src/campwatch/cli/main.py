"""``campwatch`` entry point: the command group and the one-line error handling.

Every library error is a :class:`~campwatch.errors.CampwatchError`; here it becomes one
line on stderr and exit code 2, with the traceback only under ``--debug``.
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings

import click

from campwatch._version import __version__
from campwatch.cli.console import is_quiet, set_verbosity
from campwatch.errors import CampwatchError

# One module per command in campwatch.cli; each defines ``command`` (a click command or group).
COMMANDS = ("info", "aois", "fetch", "track", "coregister", "compare", "evaluate", "bench", "report")

_state = {"debug": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="campwatch")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logging.")
@click.option("-v", "--verbose", count=True, help="More detail: -v adds detail lines and info logging, -vv debug logging.")
@click.option("-q", "--quiet", is_flag=True,
              help="Only errors and the result lines (no notes, warnings, progress or logging below errors).")
def cli(debug: bool, verbose: int, quiet: bool) -> None:
    """campwatch: measure change at detention camps between satellite acquisitions."""
    if verbose and quiet:
        raise click.UsageError("-v and -q contradict each other; give one of them", ctx=click.get_current_context())
    _state["debug"] = debug
    set_verbosity(-1 if quiet else verbose)
    level = (logging.DEBUG if debug or verbose > 1 else logging.INFO if verbose else logging.ERROR if quiet
             else logging.WARNING)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")  # a no-op where handlers exist (pytest)
    logging.getLogger().setLevel(level)


for _name in COMMANDS:
    cli.add_command(importlib.import_module(f"campwatch.cli.{_name}").command)


def _show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
    if not is_quiet():
        click.echo(f"warning: {message}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 findings or failed sites, 2 bad input,
    3 insufficient data: too little of the AOI observed on both dates to state any figure)."""
    args = sys.argv[1:] if argv is None else argv
    _state["debug"] = "--debug" in args
    set_verbosity(0)  # until the group's options are parsed (a previous call in this process may have set it)
    if not _state["debug"]:
        warnings.showwarning = _show_warning
        # Library deprecations (rasterio on affine 3, ...) are for developers, not analysts.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
    try:
        result = cli.main(args=args, prog_name="campwatch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except CampwatchError as exc:
        if _state["debug"]:
            raise
        click.echo(f"error: {exc}", err=True)
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if _state["debug"]:
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback, "
                   "and please report it)", err=True)
        return 1
    return int(result or 0)


def run() -> None:
    """Console-script entry point."""
    import gc

    # the imported libraries' objects live as long as the command: leave them out of the
    # collector's full passes (each walked them all; a full tile's 75,000 polygons set off many)
    gc.freeze()
    sys.exit(main())
