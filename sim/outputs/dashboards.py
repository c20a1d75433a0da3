"""Import the OpenSearch Dashboards saved objects in dashboards/storefront.ndjson.

    storefront-sim dashboards import [--url URL] [--file FILE] [--overwrite]
                                     [--index-pattern TITLE] [--incidents-pattern TITLE]

The URL comes from --url or OPENSEARCH_DASHBOARDS_URL (default http://127.0.0.1:5601); credentials
only from OPENSEARCH_USER / OPENSEARCH_PASSWORD. Exit 0 on success, 1 when Dashboards refuses the
import, 2 when it cannot be reached.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import urllib3

from sim.console import program_name

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "dashboards" / "storefront.ndjson"
PATTERN_IDS = {"index_pattern": "storefront-main", "incidents_pattern": "storefront-incidents"}


def retitle(data: bytes, titles: dict) -> bytes:
    """Give the index patterns other titles (e.g. a data stream name like logs-storefront-*).
    A TSVB visualization names its index by title rather than by reference: it follows."""
    if not titles:
        return data
    renamed: dict[str, str] = {}  # old title -> new (the index patterns come first)
    lines = []
    for line in data.decode().splitlines():
        if line.strip():
            o = json.loads(line)
            if o.get("type") == "index-pattern" and o.get("id") in titles:
                renamed[o["attributes"]["title"]] = titles[o["id"]]
                o["attributes"]["title"] = titles[o["id"]]
            elif o.get("type") == "visualization":
                _retitle_tsvb(o["attributes"], renamed)
            line = json.dumps(o, sort_keys=True, separators=(",", ":"))
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def _retitle_tsvb(attributes: dict, renamed: dict[str, str]) -> None:
    state = json.loads(attributes["visState"])
    if state.get("type") != "metrics":
        return
    params = state["params"]
    for part in [params, *params.get("annotations", [])]:
        if part.get("index_pattern") in renamed:
            part["index_pattern"] = renamed[part["index_pattern"]]
    attributes["visState"] = json.dumps(state, sort_keys=True, separators=(",", ":"))


def first_error(body: dict) -> str:
    errors = body.get("errors") or []
    if errors:
        e = errors[0]
        err = e.get("error", {})
        return f"{e.get('type')}/{e.get('id')}: {err.get('type', '')} {err.get('message', '')}".strip()
    return str(body.get("message") or body.get("error") or body)


def import_objects(url: str, data: bytes, overwrite: bool) -> int:
    headers = {"osd-xsrf": "true"}
    user, password = os.environ.get("OPENSEARCH_USER"), os.environ.get("OPENSEARCH_PASSWORD")
    if user:
        headers.update(urllib3.make_headers(basic_auth=f"{user}:{password or ''}"))
    target = url.rstrip("/") + "/api/saved_objects/_import" + ("?overwrite=true" if overwrite else "")
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=120), retries=False)
    try:
        resp = http.request("POST", target, headers=headers,
                            fields={"file": ("storefront.ndjson", data, "application/ndjson")})
    except urllib3.exceptions.HTTPError as exc:
        print(f"cannot reach OpenSearch Dashboards at {url}: {type(exc).__name__}", file=sys.stderr)
        return 2
    try:
        body = json.loads(resp.data or b"{}")
    except ValueError:
        body = {"message": resp.data[:200].decode(errors="replace").strip()}
    if not isinstance(body, dict):
        body = {"message": str(body)}
    if not 200 <= resp.status < 300 or body.get("success") is False or body.get("errors"):
        print(f"import refused: HTTP {resp.status}: {first_error(body)}", file=sys.stderr)
        return 1
    print(f"imported {body.get('successCount', 0)} saved objects into {url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``storefront-sim dashboards import ...``: the exit code."""
    p = argparse.ArgumentParser(prog=f"{program_name()} dashboards")
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="POST the saved objects to /api/saved_objects/_import")
    imp.add_argument("--url", default=os.environ.get("OPENSEARCH_DASHBOARDS_URL", "http://127.0.0.1:5601"))
    imp.add_argument("--file", type=Path, default=DEFAULT_FILE)
    imp.add_argument("--overwrite", action="store_true", help="replace objects with the same ids")
    imp.add_argument("--index-pattern", help="main index pattern title")
    imp.add_argument("--incidents-pattern", help="title of the incidents index pattern")
    args = p.parse_args(argv)
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    titles = {PATTERN_IDS[k]: getattr(args, k) for k in PATTERN_IDS if getattr(args, k)}
    return import_objects(args.url, retitle(data, titles), args.overwrite)
