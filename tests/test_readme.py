"""The README's tour runs as written: every ``kvplan`` line of its bash block exits 0, and
every ``--compare`` line shows a difference between its variants (a comparison whose columns
are all equal says nothing).

Commands run through typer's runner in a scratch folder that sees the checkout's ``traces/``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kvplan.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def _tour_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    tour = text.split("## A tour", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", tour, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines()
            if line.startswith("kvplan ")]


def test_tour_is_not_empty():
    assert len(_tour_commands()) >= 8


@pytest.mark.slow
def test_readme_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "traces").symlink_to(ROOT / "traces")
    runner = CliRunner()
    for command in _tour_commands():
        result = runner.invoke(app, shlex.split(command)[1:], env={"COLUMNS": "160"})
        assert result.exit_code == 0, f"{command}\n{result.output}"
        if "--compare" in command:
            assert _variants_differ(result.output), f"{command}\n{result.output}"


def _variants_differ(output: str) -> bool:
    """Some metric row of a --compare table has two different variant cells."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines()
            if line.count("│") >= 4]
    return any(len(set(r[1:])) > 1 for r in rows if r and r[0] not in ("metric", ""))
