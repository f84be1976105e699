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


def band_options(f: F) -> F:
    from campwatch.profiles import PROFILES

    f = click.option("--profile", type=click.Choice(sorted(PROFILES)), default=None,
                     help="Override the detected sensor profile.")(f)
    f = click.option("--bands", "band_map", default=None, metavar="NAME=INDEX,...",
                     help="Map band indexes of a multi-band file, e.g. red=1,green=2,blue=3,nir=4.")(f)
    return f
