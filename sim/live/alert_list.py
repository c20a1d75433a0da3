"""``storefront-sim alerts OUTPUT_DIR``: the alerts active now and the most recent resolved.

Reads the run's ``alerts.ndjson``, which a live run appends to the moment an alert fires or
resolves (and a batch run writes at its end): an alert is active while its firing document
has no resolving one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson

from sim.console import OneLineParser, bad_input, program_name
from sim.outputs.ndjson import read_lines


def read_alerts(path: Path) -> list[dict[str, Any]]:
    """The alert documents of an ``alerts.ndjson`` (plain or ``.gz``), in file order; a last
    line still being written is left out."""
    lines = list(read_lines(path))
    docs = []
    for action, doc in zip(lines[::2], lines[1::2], strict=False):
        if action.strip() and doc.endswith(b"\n"):
            docs.append(orjson.loads(doc))
    return docs


def split_alerts(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(active: firing documents without a resolution, resolved: resolving documents)."""
    resolved = [d for d in docs if d["alert"]["state"] == "resolved"]
    done = {d["alert"]["id"] for d in resolved}
    active = [d for d in docs if d["alert"]["state"] == "active" and d["alert"]["id"] not in done]
    return active, resolved


def _hm(ts: str) -> str:
    return ts[11:19]


def _where(doc: dict[str, Any]) -> str:
    on = (doc.get("host") or doc.get("service") or {}).get("name")
    return f" on {on}" if on else ""


def alert_lines(docs: list[dict[str, Any]], recent: int) -> list[str]:
    """What the command prints: the active alerts, worst first, then the last resolved."""
    active, resolved = split_alerts(docs)
    active.sort(key=lambda d: (d["event"]["severity"], d["@timestamp"]))
    day = docs[-1]["@timestamp"][:10] if docs else dt.date.today().isoformat()
    lines = [f"active ({len(active)}):" if active else "active: none"]
    for d in active:
        lines.append(f"  {d['alert']['severity'].upper():<9}since {_hm(d['@timestamp'])}  "
                     f"{d['rule']['id']}{_where(d)}: {d['message']}")
    shown = resolved[-recent:] if recent else []
    if shown:
        lines.append(f"recently resolved ({len(shown)} of {len(resolved)}, last on {day}):")
    for d in reversed(shown):
        start, end = d["event"]["start"], d["@timestamp"]
        minutes = round(d["event"]["duration"] / 60e9)
        lines.append(f"  {d['alert']['severity'].upper():<9}{_hm(start)} .. {_hm(end)} "
                     f"({minutes} min)  {d['rule']['id']}{_where(d)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=f"{program_name()} alerts",
                      description="List a run's active alerts and the most recent resolved ones "
                                  "(a live run's as they fire and resolve).")
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="the run's output directory")
    p.add_argument("--recent", type=int, default=10, metavar="N",
                   help="resolved alerts to list (default 10)")
    args = p.parse_args(argv)
    out = Path(args.output_dir)
    path = next((out / n for n in ("alerts.ndjson", "alerts.ndjson.gz") if (out / n).exists()), None)
    if path is None:
        return bad_input(f"{out}: no alerts.ndjson (not a run's output directory, or a run "
                         "from before alerts)")
    if args.recent < 0:
        return bad_input(f"--recent: {args.recent} is negative")
    try:
        docs = read_alerts(path)
    except (OSError, ValueError) as exc:
        return bad_input(f"{path}: cannot read: {exc}")
    for line in alert_lines(docs, args.recent):
        print(line)
    return 0
