"""The demo runs end to end in its own process (it starts and stops its own server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_runs_and_prints_the_state_and_the_log() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="120")
    done = subprocess.run(
        [sys.executable, "-m", "rpc.demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "discovered pools: " in out
    for pool in ("Tools", "ModelGraph", "ModelSelection", "ModelIntegrity"):
        assert pool in out
    assert "Tools.add(32, 10) on the server = 42" in out
    # the state: a table of vertices, the edges, tags and comments
    assert "vertex" in out and "position" in out and "selected" in out
    assert out.count("  edge ") >= 4  # two edges, shown before and after the undo
    assert "'owner': 'demo'" in out
    assert "['first comment', 'second comment']" in out
    # the log, with the undone commit
    assert "commit log (linearized, oldest first)" in out
    for label in ("add three vertices", "connect them", "tags and comments", "select all"):
        assert label in out
    assert "no (undone)" in out and "Undo [move the first vertex]" in out
    assert "service stopped (exit code 0)" in out
