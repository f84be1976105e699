"""What the CLI prints, and how much: the global ``-v``/``-q`` and the one progress bar helper.

- :func:`result`: a result line (what was measured, where the outputs are); always printed, on stdout.
- :func:`say`: a detail line (notes, per-date lines, candidates); not under ``-q``.
- :func:`detail`: more detail, only under ``-v``.
- :func:`progress_bar`: a rich progress bar on **stderr**, drawn only when stderr is a terminal and
  not under ``-q``, and cleared when it ends; stdout (tables, JSON) is never touched by it.

Errors are printed by :func:`campwatch.cli.main.main` whatever the verbosity.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = ["detail", "is_quiet", "progress_bar", "result", "say", "set_verbosity", "verbosity"]

_level = {"v": 0}


def set_verbosity(level: int) -> None:
    """-1 under ``-q``, 0 by default, 1 and more for each ``-v``."""
    _level["v"] = level


def verbosity() -> int:
    return _level["v"]


def is_quiet() -> bool:
    return _level["v"] < 0


def result(message: str) -> None:
    click.echo(message)


def say(message: str) -> None:
    if not is_quiet():
        click.echo(message)


def detail(message: str) -> None:
    if _level["v"] > 0:
        click.echo(message)


def progress_bar(*, transient: bool = True, hidden: bool = False) -> Progress:
    """A rich progress bar on stderr (use as a context manager; ``add_task``/``update``/``advance``).

    Disabled (draws nothing) under ``-q`` or when stderr is not a terminal (a pipe, a log file,
    CI), so what a script reads is the same with or without it; ``hidden`` disables it too.
    """
    err = Console(stderr=True)
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=transient,
                    disable=hidden or is_quiet() or not err.is_terminal,
                    redirect_stdout=False, redirect_stderr=False)  # stdout stays the command's own
