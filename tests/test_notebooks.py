"""Every notebook in ``notebooks/`` executes offline against the sample tiles.

Each jupytext percent-format ``.py`` is converted to a notebook and run with nbclient in a
``python3`` kernel of this interpreter, from the repository root; any error in any cell fails.
Figures are rendered by the headless inline backend (Agg underneath), so the test can also
check that each notebook drew real figures.  Executed notebooks are written to a temporary
folder only (``CAMPWATCH_NOTEBOOK_OUT`` keeps them elsewhere); outputs are never committed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if os.environ.get("CI"):  # never skip silently in CI: the dev extra installs these
    import jupytext
    import nbclient
    import nbformat
else:
    jupytext = pytest.importorskip("jupytext", reason="pip install 'campwatch[notebook]'")
    nbclient = pytest.importorskip("nbclient", reason="pip install 'campwatch[notebook]'")
    nbformat = pytest.importorskip("nbformat", reason="pip install 'campwatch[notebook]'")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.py"))
CELL_TIMEOUT_S = 120


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3, f"expected at least three notebooks in {ROOT / 'notebooks'}"


def _kernel_name() -> str:
    """The ``python3`` kernel of this interpreter (installed into sys.prefix if missing)."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if "python3" not in specs:
        from ipykernel.kernelspec import install

        install(prefix=sys.prefix)
    return "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_structure(path: Path) -> None:
    nb = jupytext.read(path)
    cells = nb.cells
    assert cells[0].cell_type == "markdown", f"{path.name}: the first cell must say what the notebook shows"
    assert cells[0].source.lstrip().startswith("# "), f"{path.name}: the first cell must open with a title"
    assert len(cells[0].source) > 200, f"{path.name}: the opening cell is too short to say what it shows"
    assert "campwatch " in cells[-1].source and "```sh" in cells[-1].source, \
        f"{path.name}: the last cell must give the equivalent campwatch command"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Headless: the inline backend renders with Agg and needs no display; an inherited
    # MPLBACKEND=Agg would draw nothing into the notebook, so it is overridden for the kernel.
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=_kernel_name(),
                                     resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute()
    finally:
        out_dir = Path(os.environ.get("CAMPWATCH_NOTEBOOK_OUT", tmp_path))
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / f"{path.stem}.ipynb")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2, f"{path.name}: drew {len(images)} figure(s); expected the sample-tile figures"


def _commands(path: Path) -> list[list[str]]:
    """The ``campwatch`` command lines of the notebook's closing ``sh`` block."""
    import re
    import shlex

    last = jupytext.read(path).cells[-1].source
    block = re.search(r"```sh\n(.*?)```", last, re.S)
    assert block, f"{path.name}: no ```sh block in the last cell"
    lines = [ln.lstrip("# ").split("  #")[0].strip() for ln in block.group(1).splitlines()]
    return [shlex.split(ln) for ln in lines if ln.startswith("campwatch ")]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_commands_run(path: Path, tmp_path: Path) -> None:
    """The closing CLI commands are real: each runs on the sample tiles (outputs under tmp_path)."""
    import warnings

    from campwatch.cli.main import main
    from campwatch.errors import CampwatchWarning

    commands = _commands(path)
    assert commands, f"{path.name}: the last cell names no campwatch command"
    for argv in commands:
        args = [str(tmp_path / a) if a.startswith("out/") else a for a in argv[1:]]
        with warnings.catch_warnings():  # the CLI prints campwatch warnings as one line; so do we
            warnings.simplefilter("always", CampwatchWarning)
            assert main(args) == 0, f"{path.name}: `{' '.join(argv)}` failed"
