"""Pytest fixtures that give tests a real OpenSearch node.

Why a separate module: tests/conftest.py imports these fixtures so that every test module
shares one session-scoped node. If ``OPENSEARCH_URL`` is set, that cluster is used as is;
otherwise the project's own node is started with ``scripts/opensearch-node start`` (and
stopped at the end of the session only if this session started it). Tests that kill and
restart the node need the project's own node (``OpenSearchNode.own_node``). Without a node the
tests are skipped locally but fail under ``CI=true``: CI must not go green by skipping.
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
NODE_SCRIPT = REPO_DIR / "scripts" / "opensearch-node"
#: First start on a fresh machine builds the node with Maven (downloads ~100 MB of jars).
START_TIMEOUT_S = 900


@dataclass
class OpenSearchNode:
    """Where the test cluster is, and whether this session controls it (start/stop/kill)."""

    url: str
    own_node: bool
    started_here: bool

    def script(self, *args: str, timeout: float = START_TIMEOUT_S) -> str:
        """Run scripts/opensearch-node; return its stdout. Only valid for the project's node."""
        if not self.own_node:
            raise RuntimeError("OPENSEARCH_URL points at a cluster this session does not control")
        proc = subprocess.run(
            [str(NODE_SCRIPT), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0 and args[0] != "status":
            raise RuntimeError(f"opensearch-node {' '.join(args)} failed: {proc.stderr[-2000:]}")
        return proc.stdout

    def pid(self) -> int | None:
        """PID of the project's node JVM (for the kill -9 test)."""
        pid_file = Path(os.environ.get("OPENSEARCH_DIR", REPO_DIR / ".opensearch")) / "node.pid"
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None


def _no_node(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"no OpenSearch node for the tests (CI=true): {reason}", pytrace=False)
    pytest.skip(f"no OpenSearch node: {reason}")


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # it answered (e.g. 401): reachable; credential problems surface later
    except OSError:
        return False


def _script_status() -> str | None:
    """URL of the project's node if ``scripts/opensearch-node status`` says it runs."""
    if not NODE_SCRIPT.exists():
        return None
    proc = subprocess.run(
        [str(NODE_SCRIPT), "status"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=30,
    )
    parts = proc.stdout.split()
    return parts[1] if proc.returncode == 0 and len(parts) == 2 else None


def _same_url(a: str, b: str) -> bool:
    def norm(u: str) -> tuple[str | None, int | None]:
        parts = urlsplit(u)
        host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
        return host, parts.port

    return norm(a) == norm(b)


_SESSION: dict[str, OpenSearchNode] = {}


@pytest.fixture(scope="session")
def opensearch_node() -> Iterator[OpenSearchNode]:
    """The test cluster as an :class:`OpenSearchNode` (URL plus control over the own node)."""
    if "node" in _SESSION:  # imported into several modules: still one node per session
        yield _SESSION["node"]
        return
    env_url = os.environ.get("OPENSEARCH_URL")
    status = _script_status()
    if env_url:
        if not _reachable(env_url):
            _no_node("OPENSEARCH_URL is set but does not answer")
        # OPENSEARCH_URL may name the project's own node (e.g. CI started it first).
        own = status is not None and _same_url(status, env_url)
        node = OpenSearchNode(url=env_url.rstrip("/"), own_node=own, started_here=False)
    else:
        if not NODE_SCRIPT.exists():
            _no_node(f"{NODE_SCRIPT} missing")
        probe = OpenSearchNode(url="", own_node=True, started_here=False)
        try:
            out = probe.script("start")
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            _no_node(str(exc))
            raise AssertionError("unreachable") from exc
        url = out.strip().splitlines()[-1]
        node = OpenSearchNode(url=url, own_node=True, started_here=status is None)
    _SESSION["node"] = node
    try:
        yield node
    finally:
        if node.started_here:
            node.script("stop", timeout=120)
        _SESSION.pop("node", None)


@pytest.fixture(scope="session")
def opensearch_url(opensearch_node: OpenSearchNode) -> str:
    """Base URL of the test cluster, e.g. ``http://127.0.0.1:9200``."""
    return opensearch_node.url
