"""Create the target index from mapping.json, or prove an existing one is compatible.

Why: the simulation streams for a long time; discovering a wrong mapping (a field that is
``text`` instead of ``keyword``, a missing field under ``dynamic: strict``) after an hour
of dead-lettered documents is too late. This module checks before the first document and
names the first incompatible field. It also switches an index into bulk-load mode
(``refresh_interval: -1``) for the duration of a stream and always restores it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, RequestError, TransportError

from sim.outputs.opensearch import OpenSearchSetupError, refusal

__all__ = [
    "IndexMappingError",
    "bulk_load_settings",
    "ensure_index",
    "flatten_mapping",
    "load_mapping",
    "mapping_incompatibility",
    "setup_index",
]


class IndexMappingError(OpenSearchSetupError):
    """The existing index's mapping cannot hold our documents (names the field)."""


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a create-index body (``{"settings":..., "mappings":...}``) from a JSON file."""
    body = orjson.loads(Path(path).read_bytes())
    if not isinstance(body, dict) or "mappings" not in body:
        raise OpenSearchSetupError(f"{path}: expected a create-index body with 'mappings'")
    return body


def flatten_mapping(mappings: dict[str, Any]) -> dict[str, str]:
    """``{"a.b": "keyword", "msg.raw": "keyword", ...}`` for every field and multi-field.

    Objects without an explicit type count as ``object``.
    """
    out: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            out[path] = str(spec.get("type", "object"))
            if isinstance(spec.get("properties"), dict):
                walk(spec["properties"], path + ".")
            if isinstance(spec.get("fields"), dict):
                walk(spec["fields"], path + ".")

    walk(mappings.get("properties", {}) or {}, "")
    return out


def mapping_incompatibility(existing: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """Why documents made for ``wanted`` would not fit ``existing`` (None if they fit).

    Extra fields in the existing index are fine; a missing field or another type is not
    (with ``dynamic: strict`` a missing field rejects every document; with dynamic mapping
    it would be guessed, usually wrongly: ``keyword`` becomes ``text``).
    """
    have = flatten_mapping(existing)
    for path, wanted_type in flatten_mapping(wanted).items():
        if path not in have:
            return f"field '{path}' is missing in the existing index (wanted type {wanted_type})"
        if have[path] != wanted_type:
            return f"field '{path}' has type {have[path]} in the existing index, wanted {wanted_type}"
    return None


def type_conflict(existing: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """Like ``mapping_incompatibility``, but only a field mapped with another type: a field
    that is only missing can be added (``add_missing_fields``)."""
    have = flatten_mapping(existing)
    for path, wanted_type in flatten_mapping(wanted).items():
        if path in have and have[path] != wanted_type:
            return f"field '{path}' has type {have[path]} in the existing index, wanted {wanted_type}"
    return None


def add_missing_fields(client: OpenSearch, target: str, existing: dict[str, Any],
                       body: dict[str, Any], kind: str) -> None:
    """An index (or data stream) made by an older version lacks fields added since: adding
    fields is what a mapping update may always do, so they are added (types never change)."""
    problem = type_conflict(existing, body.get("mappings", {}))
    if problem:
        raise IndexMappingError(f"{kind} {target!r} exists with an incompatible mapping: {problem}")
    if mapping_incompatibility(existing, body.get("mappings", {})) is None:
        return
    try:
        client.indices.put_mapping(index=target, body={"properties": body["mappings"]["properties"]})
    except TransportError as exc:
        raise IndexMappingError(f"{kind} {target!r} exists without fields this version writes, "
                                f"and adding them failed: {_reason(exc)}") from None


def template_name(target: str) -> str:
    return f"storefront-sim-{target}"


def ensure_template(client: OpenSearch, target: str, body: dict[str, Any],
                    data_stream: bool = False) -> str:
    """A composable index template from ``body`` (mapping.json) for exactly ``target``;
    ``"created"`` or ``"exists"``. One that exists must map compatibly and be of the same
    kind, else :class:`IndexMappingError`."""
    name = template_name(target)
    try:
        found = client.indices.get_index_template(name=name)["index_templates"]
    except NotFoundError:
        found = []
    except TransportError as exc:
        raise OpenSearchSetupError(f"reading index template {name!r} failed: {_reason(exc)}") from None
    if found:
        template = found[0]["index_template"]
        existing = template.get("template", {}).get("mappings", {})
        problem = type_conflict(existing, body.get("mappings", {}))
        if problem:
            raise IndexMappingError(
                f"index template {name!r} exists with an incompatible mapping: {problem}")
        if ("data_stream" in template) != data_stream:
            kind = "a data stream" if data_stream else "an index"
            raise IndexMappingError(f"index template {name!r} exists but is not for {kind}")
        if mapping_incompatibility(existing, body.get("mappings", {})) is None:
            return "exists"
        # made by an older version: it gains the fields added since (below, as when created)
    spec: dict[str, Any] = {
        "index_patterns": [target],
        "priority": 200,  # above any catch-all template of the cluster
        "template": {"settings": body.get("settings", {}), "mappings": body.get("mappings", {})},
        "_meta": {"source": "storefront-sim mapping.json"},
    }
    if data_stream:
        spec["data_stream"] = {}
    try:
        client.indices.put_index_template(name=name, body=spec)
    except TransportError as exc:
        raise OpenSearchSetupError(f"creating index template {name!r} failed: {_reason(exc)}") from None
    return "created"


def ensure_data_stream(client: OpenSearch, name: str, body: dict[str, Any]) -> str:
    """The data stream ``name`` with its template; ``"created"`` or ``"exists"``."""
    try:
        ensure_template(client, name, body, data_stream=True)
    except IndexMappingError:
        raise
    except OpenSearchSetupError as exc:
        raise OpenSearchSetupError(f"data stream {name!r} refused: {exc}") from None
    try:
        client.indices.create_data_stream(name=name)
        return "created"
    except RequestError as exc:
        if exc.error != "resource_already_exists_exception":
            raise OpenSearchSetupError(f"data stream {name!r} refused: {_reason(exc)}") from None
    except TransportError as exc:
        raise OpenSearchSetupError(f"data stream {name!r} refused: {_reason(exc)}") from None
    _check_compatible(client, name, body, "data stream")
    return "exists"


def _check_compatible(client: OpenSearch, target: str, body: dict[str, Any], kind: str) -> None:
    current = client.indices.get_mapping(index=target)
    # an alias or a data stream answers with its backing indices, each under its own name
    for backing in current.values():
        add_missing_fields(client, target, backing.get("mappings", {}), body, kind)


def ensure_index(client: OpenSearch, index: str, body: dict[str, Any]) -> str:
    """Create ``index`` through its composable template (from ``body``) unless it exists;
    return ``"created"`` or ``"exists"``.

    An existing index must have a compatible mapping, else :class:`IndexMappingError`.
    """
    ensure_template(client, index, body)
    try:
        client.indices.create(index=index)
        return "created"
    except RequestError as exc:
        if exc.error not in ("resource_already_exists_exception", "index_already_exists_exception"):
            raise OpenSearchSetupError(f"creating index {index!r} failed: {_reason(exc)}") from None
    except TransportError as exc:
        err = exc.info.get("error") if isinstance(exc.info, dict) else None
        why = refusal(index, exc.status_code, str(err.get("type", "")), str(err.get("reason", ""))) \
            if isinstance(err, dict) else None  # e.g. an existing index with a write block
        raise OpenSearchSetupError(why or f"creating index {index!r} failed: {_reason(exc)}") from None
    # a closed index shows no mapping: say that it is closed, not that fields are missing
    state = client.cluster.state(metric="metadata", index=index, filter_path="metadata.indices.*.state")
    if any(v.get("state") == "close" for v in state.get("metadata", {}).get("indices", {}).values()):
        raise OpenSearchSetupError(f"index {index!r} is closed; open it (POST /{index}/_open) and run again")
    _check_compatible(client, index, body, "index")
    return "exists"


def _reason(exc: TransportError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    err = info.get("error", {})
    if isinstance(err, dict):
        return f"HTTP {exc.status_code} {err.get('type', '')}: {err.get('reason', '')}"
    return f"HTTP {exc.status_code} {exc.error}"


#: Settings changed during a bulk load; each is restored to its previous value afterwards.
BULK_LOAD_SETTINGS: dict[str, str] = {"index.refresh_interval": "-1"}


@contextmanager
def bulk_load_settings(
    client: OpenSearch, index: str, settings: dict[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Switch ``index`` to bulk-load settings while the block runs, then restore them.

    Why only ``refresh_interval``: it is where most of the ingest speed comes from, and it
    is safe. ``index.translog.durability: async`` would be faster still, but documents
    acknowledged in the last sync interval could vanish on a crash, and the sink's exactly
    -once accounting relies on an acknowledged document being durable.
    Yields the previous values (``None`` = was not set explicitly; restoring resets it).
    """
    wanted = dict(BULK_LOAD_SETTINGS if settings is None else settings)
    current = client.indices.get_settings(index=index, flat_settings=True)
    flat = next(iter(current.values()), {}).get("settings", {})
    previous: dict[str, Any] = {key: flat.get(key) for key in wanted}
    client.indices.put_settings(index=index, body={"index": _unprefixed(wanted)})
    try:
        yield previous
    finally:
        try:
            client.indices.put_settings(index=index, body={"index": _unprefixed(previous)})
        except TransportError as exc:
            print(
                f"WARNING: could not restore settings of index {index!r} "
                f"({_reason(exc)}); previous values: {previous}",
                file=sys.stderr,
            )


def _unprefixed(settings: dict[str, Any]) -> dict[str, Any]:
    return {k.removeprefix("index."): v for k, v in settings.items()}


def setup_index(
    client: OpenSearch, index: str, mapping_path: str | Path, *, out: IO[str] | None = None
) -> int:
    """What ``setup_index.sh`` did: create the index from mapping.json and say what happened.

    Returns a process exit code (0 = index ready; errors raise OpenSearchSetupError).
    """
    stream = out if out is not None else sys.stdout
    body = load_mapping(mapping_path)
    result = ensure_index(client, index, body)
    fields = len(flatten_mapping(body.get("mappings", {})))
    if result == "created":
        print(f"created index {index!r} ({fields} mapped fields) from {mapping_path}", file=stream)
    else:
        print(f"index {index!r} already exists with a compatible mapping", file=stream)
    return 0


ISM_POLICY_PATH = Path(__file__).resolve().parent / "ism_policy.json"


def ism_policy(name: str, delete_after_days: int = 7) -> dict[str, Any]:
    """The shipped ISM policy, for the data stream ``name``: roll over daily or at 5 GB,
    delete a backing index ``delete_after_days`` after its rollover."""
    body = orjson.loads(ISM_POLICY_PATH.read_bytes())
    policy = body["policy"]
    for state in policy["states"]:
        for transition in state["transitions"]:
            if "min_rollover_age" in transition.get("conditions", {}):
                transition["conditions"]["min_rollover_age"] = f"{delete_after_days}d"
    policy["ism_template"] = [{"index_patterns": [f"{name}*", f".ds-{name}-*"], "priority": 100}]
    return body


def apply_ism_policy(client: OpenSearch, name: str) -> bool:
    """Put the ISM policy for the data stream ``name`` and attach it to its backing indices.
    False when the node has no index-management plugin (nothing is changed then)."""
    policy_id = template_name(name)
    try:
        client.transport.perform_request("PUT", f"/_plugins/_ism/policies/{policy_id}",
                                         body=ism_policy(name))
    except TransportError as exc:
        if exc.status_code in (400, 404, 405) and "version_conflict" not in str(exc.error):
            return False  # no handler for _plugins/_ism: the plugin is not installed
        if "version_conflict" not in str(exc.error):
            raise OpenSearchSetupError(f"ISM policy {policy_id!r}: {_reason(exc)}") from None
    try:
        client.transport.perform_request("POST", f"/_plugins/_ism/add/{name}",
                                         body={"policy_id": policy_id})
    except TransportError as exc:
        raise OpenSearchSetupError(f"ISM policy {policy_id!r} on {name!r}: {_reason(exc)}") from None
    return True
