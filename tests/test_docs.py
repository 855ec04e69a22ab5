"""The user guide's code blocks run, in order, and print what the guide says they print."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _blocks(name: str) -> list[str]:
    text = (DOCS / name).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_user_guide_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    out = io.StringIO()
    blocks = _blocks("user-guide.md")
    assert len(blocks) >= 8
    with contextlib.redirect_stdout(out):
        for i, block in enumerate(blocks):
            try:
                exec(compile(block, f"user-guide.md block {i}", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the failure message is the point
                raise AssertionError(f"block {i} failed: {exc!r}\n{block}") from exc
    printed = out.getvalue().splitlines()
    assert any("expected int64, got str 'high'" in line for line in printed)
    assert "5 ['admin', 'dev'] {'chess': 1200} ['logged in']" in printed
    assert "ada.l 9" in printed
    assert printed.count("10") == 2 and "9" in printed
    assert "2000 b'\\x00\\x01\\x00\\x01'" in printed
    assert os.path.isdir(tmp_path)


def test_services_guide_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_services"}
    out = io.StringIO()
    blocks = _blocks("services.md")
    assert len(blocks) == 3
    with contextlib.redirect_stdout(out):
        for i, block in enumerate(blocks):
            try:
                exec(compile(block, f"services.md block {i}", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the failure message is the point
                raise AssertionError(f"block {i} failed: {exc!r}\n{block}") from exc
    printed = out.getvalue().splitlines()
    assert printed == ["1", "42", "42", "3", "1", "['write docs']", "42", "blocking"]
