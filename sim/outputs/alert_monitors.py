"""The alert rules as OpenSearch Alerting monitors (``POST _plugins/_alerting/monitors``).

Every rule is a bucket-level monitor: one bucket per host or service (``group_by``; a rule
without one has a single bucket, of its filter's value), so a monitor raises one alert per
host or service, as the simulation does. The monitor runs every ``interval_minutes`` over
the last ``for + resolve_after - 1`` intervals, ending at ``{{period_end}}``:

- ``per_interval``: a date histogram of those intervals (aligned to the epoch, as the
  simulation's evaluations are), each with the rule's aggregate and ``breach``, 1 when the
  interval crosses the threshold (a ``bucket_script``, so the node computes it);
- ``held``: a moving sum of ``breach`` over ``for`` intervals, equal to ``for`` where the
  condition held; ``held_max`` its largest value in the window;
- the trigger: ``held_max >= for``, i.e. the condition held in one of the last
  ``resolve_after`` evaluations: exactly when the simulated alert is active
  (``sim.telemetry.alerts``). The Alerting plugin completes an alert when its trigger stops
  matching, so no state beyond the window is needed.

``storefront-sim monitors write`` prints the bodies; ``storefront-sim monitors install``
posts them (URL from ``--url`` or ``OPENSEARCH_URL``; credentials only from
``OPENSEARCH_USER`` / ``OPENSEARCH_PASSWORD``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import urllib3

from sim.config import AlertRule, Scenario, ScenarioError, alert_rules, load_scenario, parse_scenario
from sim.console import OneLineParser, bad_input, program_name
from sim.telemetry.alerts import SEVERITY_CODES, allowed_share

EVENT_TYPES = {"transactions": "transaction", "metrics": "infrastructure_metric"}
GROUPS = "by_group"  # the composite aggregation the trigger's buckets come from
MAX_GROUPS = 100


def window_intervals(rule: AlertRule) -> int:
    """How many intervals a monitor looks back: ``for`` of them, ``resolve_after`` times."""
    return rule.for_minutes // rule.interval_minutes + rule.resolve_after - 1


def group_field(rule: AlertRule) -> str:
    """What the buckets are: ``group_by``, else the rule's first filter (one bucket)."""
    if rule.group_by is not None:
        return rule.group_by
    if rule.where:
        return sorted(rule.where)[0]
    return "event_type"


def breach_script(rule: AlertRule) -> tuple[dict[str, str], str]:
    """The ``bucket_script`` of one interval: its paths and its Painless source (1 or 0)."""
    paths = {"n": "_count"}
    floor = f"params.n > 0 && params.n >= {rule.min_requests}"
    op = ">" if rule.comparison == "above" else "<"
    agg = rule.aggregation
    if agg in ("p95", "p99", "error_rate"):
        paths["over"] = "over>_count"
        limit = allowed_share(rule) if agg != "error_rate" else rule.threshold
        test = f"{floor} && params.over * 100.0 / params.n {op} {limit!r}"
    elif agg == "count":
        test = f"params.n {op} {rule.threshold!r}"
    elif rule.relative_to is not None:
        paths.update(v="value", limit="limit")
        test = f"{floor} && params.limit > 0 && params.v * 100.0 / params.limit {op} {rule.threshold!r}"
    else:
        paths["v"] = "value"
        test = f"{floor} && params.v {op} {rule.threshold!r}"
    return paths, f"({test}) ? 1 : 0"


def interval_aggs(rule: AlertRule) -> dict[str, Any]:
    """What each interval of the histogram computes."""
    aggs: dict[str, Any] = {}
    if rule.aggregation in ("p95", "p99"):
        aggs["over"] = {"filter": {"range": {"response_time_ms": {"gt": rule.threshold}}}}
    elif rule.aggregation == "error_rate":
        aggs["over"] = {"filter": {"range": {"http.response.status_code": {"gte": 500}}}}
    elif rule.aggregation != "count":
        aggs["value"] = {rule.aggregation: {"field": rule.field}}
        if rule.relative_to is not None:
            aggs["limit"] = {"max": {"field": rule.relative_to}}
    paths, script = breach_script(rule)
    aggs["breach"] = {"bucket_script": {"buckets_path": paths, "gap_policy": "insert_zeros",
                                        "script": {"source": script, "lang": "painless"}}}
    runs = rule.for_minutes // rule.interval_minutes
    aggs["held"] = {"moving_fn": {"buckets_path": "breach", "window": runs, "shift": 1,
                                  "script": "MovingFunctions.sum(values)"}}
    return aggs


def search_query(rule: AlertRule) -> dict[str, Any]:
    """The monitor's search input (``{{period_end}}`` left for the plugin to fill in)."""
    minutes = window_intervals(rule) * rule.interval_minutes
    filters: list[dict[str, Any]] = [
        {"range": {"@timestamp": {"from": f"{{{{period_end}}}}||-{minutes}m", "to": "{{period_end}}",
                                  "include_lower": True, "include_upper": False,
                                  "format": "epoch_millis"}}},
        {"term": {"event_type": EVENT_TYPES[rule.source]}},
        *({"term": {k: v}} for k, v in sorted(rule.where.items())),
    ]
    per_interval = {"date_histogram": {"field": "@timestamp",
                                       "fixed_interval": f"{rule.interval_minutes}m",
                                       "min_doc_count": 0},
                    "aggs": interval_aggs(rule)}
    return {"size": 0, "query": {"bool": {"filter": filters}},
            "aggregations": {GROUPS: {
                "composite": {"size": MAX_GROUPS,
                              "sources": [{"group": {"terms": {"field": group_field(rule)}}}]},
                "aggregations": {"per_interval": per_interval,
                                 "held_max": {"max_bucket": {"buckets_path": "per_interval>held"}}}}}}


def trigger_condition(rule: AlertRule) -> dict[str, Any]:
    """The bucket-level trigger's condition: the condition held within the window."""
    return {"buckets_path": {"held": "held_max"}, "parent_bucket_path": GROUPS,
            "script": {"source": f"params.held >= {rule.for_minutes // rule.interval_minutes}",
                       "lang": "painless"}}


def monitor_body(rule: AlertRule, index: str) -> dict[str, Any]:
    """One rule's ``POST _plugins/_alerting/monitors`` body."""
    return {
        "type": "monitor", "monitor_type": "bucket_level_monitor",
        "name": f"storefront-sim {rule.id}", "enabled": True,
        "schedule": {"period": {"interval": rule.interval_minutes, "unit": "MINUTES"}},
        "inputs": [{"search": {"indices": [index], "query": search_query(rule)}}],
        "triggers": [{"bucket_level_trigger": {
            "name": rule.name, "severity": str(SEVERITY_CODES[rule.severity]),
            "condition": trigger_condition(rule), "actions": []}}],
    }


def monitor_bodies(scenario: Scenario, index: str | None = None) -> list[dict[str, Any]]:
    return [monitor_body(r, index or scenario.output.index) for r in alert_rules(scenario)]


def filled(body: dict[str, Any], period_end_ms: int) -> dict[str, Any]:
    """A monitor's search input with ``{{period_end}}`` filled in, as the plugin runs it."""
    text = json.dumps(body["inputs"][0]["search"]["query"])
    return json.loads(text.replace("{{period_end}}", str(period_end_ms)))


def with_trigger(body: dict[str, Any], period_end_ms: int) -> dict[str, Any]:
    """The filled search with the trigger condition as a ``bucket_selector`` in the
    composite aggregation (what a bucket-level trigger runs): the buckets left are the
    monitor's active alerts."""
    query = filled(body, period_end_ms)
    cond = body["triggers"][0]["bucket_level_trigger"]["condition"]
    query["aggregations"][GROUPS]["aggregations"]["trigger"] = {"bucket_selector": {
        "buckets_path": cond["buckets_path"], "script": cond["script"]}}
    return query


# ---------------------------------------------------------------------- the command
def _scenario(path: str | None) -> Scenario:
    return parse_scenario({}, "defaults") if path is None else load_scenario(path)


def install(url: str, bodies: list[dict[str, Any]]) -> int:
    """POST every monitor; 0, or 1 with one line when the cluster refuses, 2 unreachable."""
    headers = {"Content-Type": "application/json"}
    user, password = os.environ.get("OPENSEARCH_USER"), os.environ.get("OPENSEARCH_PASSWORD")
    if user:
        headers.update(urllib3.make_headers(basic_auth=f"{user}:{password or ''}"))
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=60), retries=False)
    target = url.rstrip("/") + "/_plugins/_alerting/monitors"
    for body in bodies:
        try:
            resp = http.request("POST", target, body=json.dumps(body).encode(), headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            print(f"cannot reach OpenSearch at {url}: {type(exc).__name__}", file=sys.stderr)
            return 2
        if not 200 <= resp.status < 300:
            text = resp.data[:300].decode(errors="replace").strip().replace("\n", " ")
            hint = " (is the Alerting plugin installed?)" if resp.status in (400, 404) \
                and "no handler" in text else ""
            print(f"monitor {body['name']!r} refused: HTTP {resp.status}: {text}{hint}",
                  file=sys.stderr)
            return 1
    print(f"installed {len(bodies)} monitors into {url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``storefront-sim monitors write|install [--scenario FILE] [--index NAME]``."""
    p = OneLineParser(prog=f"{program_name()} monitors",
                      description="The scenario's alert rules as OpenSearch Alerting monitors.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, help_text in (("write", "print the monitor bodies (a JSON array)"),
                            ("install", "POST them to _plugins/_alerting/monitors")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--scenario", help="its alerts: rules (default: the shipped rules)")
        cmd.add_argument("--index", help="the index they search (default: the scenario's)")
        if name == "write":
            cmd.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
        else:
            cmd.add_argument("--url", default=os.environ.get("OPENSEARCH_URL", "http://127.0.0.1:9200"))
    args = p.parse_args(argv)
    try:
        bodies = monitor_bodies(_scenario(args.scenario), args.index)
    except ScenarioError as exc:
        return bad_input(str(exc))
    if args.command == "install":
        return install(args.url, bodies)
    text = json.dumps(bodies, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        return bad_input(f"{args.output}: cannot write: {exc.strerror}")
    return 0


__all__ = ["filled", "main", "monitor_bodies", "monitor_body", "with_trigger"]
