"""One command-line surface: every command is ``storefront-sim COMMAND`` (or ``run_sim.py
COMMAND``), ``--help`` lists them one line each, and every usage line names the program the
way it was run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent


def _help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv0: str,
          argv: list[str]) -> str:
    monkeypatch.setattr(sys, "argv", [argv0, *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    assert exc.value.code == 0 and captured.err == ""
    return captured.out


def test_help_lists_every_command_with_its_line(monkeypatch, capsys):
    out = _help(monkeypatch, capsys, "storefront-sim", ["--help"])
    listed = dict(re.findall(r"^  ([a-z]+) +(\S.*)$", out.split("commands:\n", 1)[1].split("\n\n")[0],
                             re.M))
    assert listed == {name: summary for name, (_, summary) in COMMANDS.items()}
    assert "dashboards" in listed and "--opensearch URL" in out


@pytest.mark.parametrize(("argv0", "prog"), [
    ("/usr/local/bin/storefront-sim", "storefront-sim"),
    ("run_sim.py", "run_sim.py"),
    (str(ROOT / "run_sim.py"), "run_sim.py"),
    ("", "storefront-sim"),
])
@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS), ["dashboards", "import"]])
def test_usage_names_the_program_as_run(monkeypatch, capsys, argv0, prog, command):
    out = _help(monkeypatch, capsys, argv0, [*command, "--help"])
    assert out.startswith(f"usage: {' '.join([prog, *command])} "), out.splitlines()[0]


@pytest.mark.parametrize(("script", "prog"), [("storefront-sim", "storefront-sim"),
                                              ("run_sim.py", "run_sim.py")])
def test_real_process_help_names_the_script(tmp_path, script, prog):
    """As the console script (a file named storefront-sim) and as ``python run_sim.py``."""
    path = tmp_path / script
    path.write_text("import sys\nfrom sim.cli import main\nsys.exit(main())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for argv in (["--help"], ["inject", "--help"]):
        proc = subprocess.run([sys.executable, str(path), *argv], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert proc.stdout.startswith(f"usage: {' '.join([prog, *argv[:-1]])} "), proc.stdout


def test_dashboards_import_through_the_command(monkeypatch, capsys, tmp_path):
    """Dispatched like the others: a missing --file is the import's own error, exit 2."""
    missing = tmp_path / "none.ndjson"
    assert main(["dashboards", "import", "--file", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"cannot read {missing}: No such file or directory"


def test_unknown_command_word_is_a_scenario_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["dashboard", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "error: dashboard: file not found"
    assert list(tmp_path.iterdir()) == []


def test_readme_shows_the_help_as_it_is(monkeypatch, capsys):
    """The README's ``storefront-sim --help`` is the real one, up to the flags."""
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"\$ storefront-sim --help\n(.*?)```", readme, re.S).group(1)
    out = _help(monkeypatch, capsys, "storefront-sim", ["--help"])
    head = shown.split("  ...")[0]
    assert out.startswith(head) and len(head.splitlines()) > len(COMMANDS) + 8
