"""Shared fixtures: a tiny storefront builder and a CLI runner."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def unmapped_record_fields(records: list[dict]) -> set[str]:
    """Leaves of incident records that sim/outputs/incidents_mapping.json does not map (it is
    strict: such a record would be refused by the incidents index)."""
    import json as _json
    from pathlib import Path as _Path

    mapping = _json.loads((_Path(__file__).resolve().parent.parent / "sim" / "outputs"
                           / "incidents_mapping.json").read_text())

    def paths(props: dict, prefix: str = "") -> set[str]:
        out = set()
        for key, spec in props.items():
            out.add(prefix + key)
            if "properties" in spec:
                out |= paths(spec["properties"], prefix + key + ".")
        return out

    mapped = paths(mapping["mappings"]["properties"])

    def leaves(value, prefix: str = "") -> set[str]:
        if isinstance(value, dict):
            return set().union(*(leaves(v, prefix + k + ".") for k, v in value.items())) if value else set()
        if isinstance(value, list):
            return set().union(*(leaves(v, prefix) for v in value)) if value else set()
        return {prefix[:-1]}

    found = set().union(*(leaves(r) for r in records)) if records else set()
    return {f for f in found if f not in mapped and not f.startswith(("impact.errors_by_kind.",))}
