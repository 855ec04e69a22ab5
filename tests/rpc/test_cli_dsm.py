"""Tests for ``commitdb dsm check`` / ``commitdb dsm print``, run as real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from commitdb.dsm import load_definitions, load_text

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "dsm-samples"
TUTO = [SAMPLES / "Tuto" / "model.dsm"]
GE = sorted((SAMPLES / "Ge").glob("*.dsm"))
RE = sorted((SAMPLES / "Re").glob("*.dsm"))
SCRIPT = Path(sys.executable).parent / "commitdb"

NS_A = "namespace A {11111111-1111-1111-1111-111111111111} {\n"


def _run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpc", *map(str, args)],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        check=False,
    )


def _summary(files: int, counts: str) -> str:
    return f"{files} file{'' if files == 1 else 's'} OK: {counts}\n"


@pytest.mark.parametrize(
    ("files", "counts"),
    [
        pytest.param(
            TUTO,
            "namespaces=1 concepts=1 clubs=0 enumerations=1 structures=5 attachments=5 "
            "function_pools=0 functions=0",
            id="Tuto",
        ),
        pytest.param(
            GE,
            "namespaces=1 concepts=3 clubs=0 enumerations=0 structures=9 attachments=8 "
            "function_pools=4 functions=52",
            id="Ge",
        ),
        pytest.param(
            RE,
            "namespaces=1 concepts=91 clubs=4 enumerations=37 structures=136 attachments=86 "
            "function_pools=2 functions=6",
            id="Re",
        ),
    ],
)
def test_check_samples(files: list[Path], counts: str) -> None:
    result = _run("dsm", "check", *files)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == _summary(len(files), counts)


def test_console_script_is_installed_and_checks_a_directory() -> None:
    result = subprocess.run(
        [str(SCRIPT), "dsm", "check", str(SAMPLES / "Ge")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("5 files OK: namespaces=1 concepts=3 ")


def test_check_reports_a_semantic_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dsm"
    bad.write_text(NS_A + "struct S {\n    Vectr v;\n};\nstruct Vector { float x; };\n};\n")
    result = _run("dsm", "check", bad)
    assert result.returncode == 1
    assert result.stdout == ""
    assert (
        result.stderr == f"{bad}:3:5: unknown type 'Vectr' (did you mean 'Vector' or 'vector'?)\n"
    )


def test_check_reports_a_syntax_error(tmp_path: Path) -> None:
    bad = tmp_path / "syntax.dsm"
    bad.write_text(NS_A + "concept C\n};\n")
    result = _run("dsm", "check", bad)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{bad}:3:1: expected ';' after concept 'C'")


def test_check_reports_an_error_across_files(tmp_path: Path) -> None:
    one = tmp_path / "one.dsm"
    two = tmp_path / "two.dsm"
    one.write_text(NS_A + "enum E { a, b };\n};\n")
    two.write_text(NS_A + "enum E { a };\n};\n")
    result = _run("dsm", "check", one, two)
    assert result.returncode == 1
    assert result.stderr == (
        f"{two}:2:6: conflicting redefinition of enum 'A::E': its cases are (a) here but "
        f"(a, b) at {one}:2:6\n"
    )


def test_check_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.dsm"
    result = _run("dsm", "check", TUTO[0], missing)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"{missing}: cannot read file: No such file or directory\n"


def test_check_empty_directory(tmp_path: Path) -> None:
    result = _run("dsm", "check", tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"{tmp_path}: no .dsm files in this directory\n"


def test_check_standard_input() -> None:
    result = _run("dsm", "check", "-", stdin=NS_A + "concept C;\n};\n")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("1 file OK: namespaces=1 concepts=1 clubs=0 ")
    bad = _run("dsm", "check", "-", stdin=NS_A + "concept C is a D;\n};\n")
    assert bad.returncode == 1
    assert bad.stderr == "<stdin>:2:16: unknown concept 'D'\n"


@pytest.mark.parametrize("files", [TUTO, GE, RE], ids=["Tuto", "Ge", "Re"])
def test_print_samples(files: list[Path], tmp_path: Path) -> None:
    result = _run("dsm", "print", *files)
    assert (result.returncode, result.stderr) == (0, "")
    assert load_text(result.stdout) == load_definitions(files)
    printed = tmp_path / "printed.dsm"
    printed.write_text(result.stdout)
    again = _run("dsm", "print", printed)
    assert again.returncode == 0
    assert again.stdout == result.stdout


def test_print_reports_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dsm"
    bad.write_text(NS_A + "struct S { };\n};\n")
    result = _run("dsm", "print", bad)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"{bad}:2:8: struct 'S' must have at least one field\n"


def test_help_lists_the_dsm_commands() -> None:
    result = _run("--help")
    assert result.returncode == 0
    assert "dsm" in result.stdout
    sub = _run("dsm", "--help")
    assert sub.returncode == 0
    assert "check" in sub.stdout and "print" in sub.stdout
    usage = _run("dsm", "check")
    assert usage.returncode == 2
    assert "Missing argument 'FILES...'" in usage.stderr
