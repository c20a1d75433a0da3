"""What every command says on the console when it refuses: one line, and an exit code.

Shared by ``sim.cli`` and the commands it dispatches to (``sim.live.commands``,
``sim.truth.split``, ...), which sit below it and must not import it.
"""

from __future__ import annotations

import argparse
import os
import sys

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def program_name() -> str:
    """What the user ran, for usage lines: ``storefront-sim`` (the console script) or
    ``run_sim.py``, so that the help names a command that works as typed."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name and name not in ("-c", "-m") else "storefront-sim"


def one_line(text: str) -> str:
    """The message as one printable line: a newline or control character in a file name,
    a YAML key or a flag value is shown escaped (``\\n``), never as a line break."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def bad_input(message: str) -> int:
    """Say what is wrong with the input in one line; the exit code for it."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    return EXIT_BAD_INPUT


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2 (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SystemExit(bad_input(message))
