"""The global -v/-q and the progress bar (campwatch.cli.console) on the sample tiles."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from campwatch.cli.main import main

RENNES = Path("data/sample_tiles/rennes")
PAIR = [f"{RENNES}/imgs_1", f"{RENNES}/imgs_2", "--aoi", "sample-rennes"]


def test_quiet_prints_only_the_result_lines_and_verbose_adds_detail(tmp_path, capsys):
    assert main(["compare", *PAIR, "-o", str(tmp_path / "n")]) == 0
    normal = capsys.readouterr().out.splitlines()
    assert main(["-q", "compare", *PAIR, "-o", str(tmp_path / "q")]) == 0
    quiet = capsys.readouterr()
    assert main(["-v", "compare", *PAIR, "-o", str(tmp_path / "v")]) == 0
    verbose = capsys.readouterr().out.splitlines()
    assert any(line.startswith("note:") for line in normal)
    q = quiet.out.splitlines()
    assert not any(line.startswith("note:") for line in q) and quiet.err == ""
    assert q[0].startswith("default: changed") and q[-1].startswith("outputs in")
    assert [line for line in normal if not line.startswith("note:")] == [line.replace("/q:", "/n:") for line in q]
    assert any(line.startswith("co-registration: dx") for line in verbose)
    assert any(line.startswith("clouds: masked") for line in verbose)
    assert not any(line.startswith("co-registration") for line in normal)


def test_quiet_track_keeps_the_pair_and_written_lines(tmp_path, capsys):
    assert main(["-q", "track", *PAIR, "-o", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("2015-08-21 -> 2017-06-21: net") and "wrote" in out[1]


def test_verbose_and_quiet_together_are_refused_in_one_line(tmp_path, capsys):
    assert main(["-v", "-q", "compare", *PAIR, "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "-v and -q contradict each other" in err and not (tmp_path / "x").exists()


def _run(args, tmp_path, **env):
    return subprocess.run([sys.executable, "-m", "campwatch", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_progress_is_on_stderr_of_a_terminal_only_and_never_in_stdout(tmp_path):
    piped = _run(["compare", *PAIR, "-o", str(tmp_path / "a")], tmp_path)
    tty = _run(["compare", *PAIR, "-o", str(tmp_path / "b")], tmp_path, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1")
    quiet = _run(["-q", "compare", *PAIR, "-o", str(tmp_path / "c")], tmp_path, TTY_COMPATIBLE="1",
                 TTY_INTERACTIVE="1")
    assert piped.returncode == tty.returncode == quiet.returncode == 0
    assert piped.stdout == tty.stdout.replace(f"{tmp_path}/b", f"{tmp_path}/a")  # stdout untouched by the bar
    assert "\x1b" not in piped.stderr and "detecting change" not in piped.stderr  # not a terminal: no bar
    assert "detecting change" in tty.stderr or "reading BEFORE" in tty.stderr  # the bar, drawn on stderr
    assert "\x1b" not in tty.stdout
    assert quiet.stderr == ""  # -q: no bar, no warnings
