"""mapping.json maps every field the simulator emits, with a compatible type."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import orjson
import pytest

from sim.config import parse_scenario
from sim.run.batch import simulate

ROOT = Path(__file__).resolve().parent.parent

COMPATIBLE = {
    "keyword": (str,),
    "text": (str,),
    "ip": (str,),
    "date": (str,),
    "integer": (int,),
    "long": (int,),
    "float": (float, int),
    "double": (float, int),
    "scaled_float": (float, int),
    "boolean": (bool,),
}


def flat_mapping() -> dict[str, str]:
    body = json.loads((ROOT / "mapping.json").read_text())
    assert body["mappings"]["dynamic"] == "strict"
    out: dict[str, str] = {}

    def walk(props, prefix):
        for name, spec in props.items():
            if "properties" in spec:
                out[prefix + name] = "object"
                walk(spec["properties"], prefix + name + ".")
            else:
                out[prefix + name] = spec["type"]

    walk(body["mappings"]["properties"], "")
    return out


def leaves(doc, prefix=""):
    """Every field of a document; a list's items each under the list's own name (as
    OpenSearch maps an array: by its items' type)."""
    for key, value in doc.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                yield prefix + key, "object", item
                yield from leaves(item, prefix + key + ".")
            else:
                yield prefix + key, None, item


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    """A short run that exercises every document kind, failures and OOM restarts included."""
    out = tmp_path_factory.mktemp("mapping")
    scenario = parse_scenario({
        "name": "mapping-coverage",
        "window": {"start": "today 14:00", "end": "today 14:40", "warmup_minutes": 2},
        "storefront": {"heap": {"max_mb": 1200}},
        "faults": [
            {"type": "payment_gateway_slowdown", "start": "today 14:05", "duration_minutes": 8},
            {"type": "memory_leak", "start": "today 14:00", "duration_minutes": 40,
             "magnitude": 3},
        ],
        "changes": [{"kind": "config_push", "at": "today 14:20", "hosts": ["app-02"],
                     "settings": {"db_pool.max_size": 12}},
                    {"kind": "deploy", "at": "today 14:25", "version": "2.13.5",
                     "hosts": ["app-03"], "warmup_requests": 400},
                    {"kind": "feature_flag", "at": "today 14:30", "flag": "checkout_fraud_check"}],
    }, "test")
    simulate(scenario, dt.date(2026, 11, 27), out)
    with open(out / "all_data.ndjson", "rb") as fh:
        return [orjson.loads(line) for i, line in enumerate(fh) if i % 2]


def test_every_emitted_field_is_mapped_with_compatible_type(docs):
    mapping = flat_mapping()
    seen = set()
    for doc in docs:
        for path, kind, value in leaves(doc):
            assert path in mapping, f"unmapped field {path!r} in {doc['event_type']}"
            seen.add(path)
            if kind == "object":
                assert mapping[path] == "object", path
                continue
            wanted = COMPATIBLE[mapping[path]]
            ok = isinstance(value, wanted) and not (
                mapping[path] != "boolean" and isinstance(value, bool))
            assert ok, f"{path}: {value!r} does not fit {mapping[path]}"
            if mapping[path] == "date":
                dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    kinds = {d["event_type"] for d in docs}
    assert kinds == {"transaction", "error", "infrastructure_metric", "change"}
    # the run covered the optional parts too, so the check above saw them
    assert {"order.amount", "error.stack_trace", "jvm.gc.full_count", "gateway.timeouts",
            "change.settings.old", "change.rollout.end", "service.version"} <= seen


def test_every_mapped_field_is_emitted(docs):
    """No stale fields: what the mapping promises, documents deliver."""
    seen = {path for doc in docs for path, _k, _v in leaves(doc)}
    assert set(flat_mapping()) - seen == set()


def fields_table() -> dict[str, str]:
    """docs/fields.md's table: field -> type."""
    rows = {}
    for line in (ROOT / "docs" / "fields.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_fields_doc_equals_mapping_and_what_is_emitted(docs):
    table = fields_table()
    leaves_only = {k: v for k, v in flat_mapping().items() if v != "object"}
    assert table == leaves_only
    emitted = {path for doc in docs for path, kind, _ in leaves(doc) if kind is None}
    assert emitted == set(table)
    # the seed's query fields keep their names
    assert {"@timestamp", "status", "response_time_ms", "event_type"} <= emitted
