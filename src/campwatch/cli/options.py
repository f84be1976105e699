"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def overwrite_option(f: F) -> F:
    return click.option("--overwrite", is_flag=True, help="Replace existing outputs.")(f)


def aoi_option(f: F) -> F:
    return click.option("--aoi", "aoi", default=None, metavar="ID|PATH",
                        help="A catalogue AOI id or alias (see `campwatch aois list`), or an AOI file.")(f)


def _band_map(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, int] | None:
    """``--bands NAME=INDEX,...`` parsed once, for every command that takes it."""
    from campwatch.profiles import parse_band_override

    return parse_band_override(value) if value else None


def band_options(f: F) -> F:
    from campwatch.profiles import PROFILES

    f = click.option("--profile", type=click.Choice(sorted(PROFILES)), default=None,
                     help="Override the detected sensor profile.")(f)
    f = click.option("--bands", "band_map", default=None, metavar="NAME=INDEX,...", callback=_band_map,
                     help="Map band indexes of a multi-band file, e.g. red=1,green=2,blue=3,nir=4.")(f)
    return f
