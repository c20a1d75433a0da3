"""The indices OpenSearch's Trace Analytics reads, set up as Data Prepper sets them up.

The two mapping files beside this module are Data Prepper's own index templates, unchanged
(opensearch-project/data-prepper, ``data-prepper-plugins/opensearch/src/main/resources/
otel-v1-apm-span-index-template.json`` and ``otel-v1-apm-service-map-index-template.json``,
Apache-2.0, as of commit 2d4c7ea54152ff504170b85df92b6e1ea09b731c). As Data Prepper does:
a legacy index template per index (``otel-v1-apm-span-*``; the service map's exact name),
the first span index ``otel-v1-apm-span-000001`` behind the write alias
``otel-v1-apm-span``, and the ``otel-v1-apm-service-map`` index. A run's span and
service-map files go there; its log documents go to the run's own index (they are mapped
there already).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import RequestError, TransportError

from sim.outputs.opensearch import OpenSearchSetupError, OpenSearchSink
from sim.telemetry.logs import LOGS_FILE
from sim.telemetry.spans import SERVICE_MAP_FILE, SERVICE_MAP_INDEX, SPAN_INDEX, SPANS_FILE

HERE = Path(__file__).resolve().parent
SPAN_TEMPLATE = HERE / "otel-v1-apm-span-index-template.json"
SERVICE_MAP_TEMPLATE = HERE / "otel-v1-apm-service-map-index-template.json"
FIRST_SPAN_INDEX = f"{SPAN_INDEX}-000001"


def _template(client: OpenSearch, name: str, patterns: list[str], path: Path) -> None:
    body: dict[str, Any] = json.loads(path.read_text())
    client.indices.put_template(name=name, body={"index_patterns": patterns, **body})


def _create(client: OpenSearch, index: str, body: dict[str, Any] | None = None) -> None:
    try:
        client.indices.create(index=index, body=body or {})
    except RequestError as exc:
        if exc.error not in ("resource_already_exists_exception", "index_already_exists_exception"):
            raise OpenSearchSetupError(f"creating index {index!r} failed: {exc.error}") from None


def ensure_trace_indices(client: OpenSearch) -> None:
    """The span alias and its first index, and the service-map index, with Data Prepper's
    templates (an existing alias or index is used as it is). One line on a refusal."""
    try:
        _template(client, f"{SPAN_INDEX}-index-template", [f"{SPAN_INDEX}-*"], SPAN_TEMPLATE)
        _template(client, f"{SERVICE_MAP_INDEX}-index-template", [SERVICE_MAP_INDEX],
                  SERVICE_MAP_TEMPLATE)
        if not client.indices.exists_alias(name=SPAN_INDEX):
            _create(client, FIRST_SPAN_INDEX, {"aliases": {SPAN_INDEX: {"is_write_index": True}}})
        _create(client, SERVICE_MAP_INDEX)
    except TransportError as exc:
        raise OpenSearchSetupError(f"setting up the trace indices failed: HTTP {exc.status_code} "
                                   f"{exc.error}") from None


def trace_sinks(client: OpenSearch, index: str, run_dir: Path, give_up_after: float | None
                ) -> dict[str, OpenSearchSink]:
    """A sink per trace file of the run: spans to the alias, edges to the service map, logs
    to the run's index (``create`` with the files' ids: a resent document is answered 409)."""
    targets = {SPANS_FILE: SPAN_INDEX, SERVICE_MAP_FILE: SERVICE_MAP_INDEX, LOGS_FILE: index}
    return {name: OpenSearchSink(client, target, name=f"opensearch:{target}",
                                 dead_letter_path=run_dir / f"dead_letter_{name}",
                                 give_up_after=give_up_after)
            for name, target in targets.items()}
