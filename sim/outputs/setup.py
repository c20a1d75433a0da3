"""The OpenSearch side of a run, set up before its first document is simulated.

Why before: a wrong URL, wrong credentials, an incompatible mapping or a read-only index
must fail in a second with one line, not after an hour of simulation. In order: connect,
create or check the document index (or data stream, with its ISM policy) and the incidents
index, switch the document index to bulk-load settings for a batch run, then the sinks.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from sim.outputs.index_setup import (
    apply_ism_policy,
    bulk_load_settings,
    ensure_data_stream,
    ensure_index,
    load_mapping,
)
from sim.outputs.mapping import ALERTS_MAPPING_PATH, INCIDENTS_MAPPING_PATH, MAPPING_PATH
from sim.outputs.opensearch import OpenSearchSink, connect, refusal, scrub_url

__all__ = ["alert_sinks", "enter_bulk_load", "prepare_opensearch", "run_sinks"]


def prepare_opensearch(url: str, index: str, incidents_index: str, *, data_stream: bool,
                       ca_certs: str | None, insecure: bool) -> OpenSearch:
    """A client for ``url`` with the run's targets ready: ``index`` (a data stream when
    ``data_stream``) and ``incidents_index``. Raises OpenSearchSetupError (one line)."""
    client = connect(url, ca_certs=ca_certs, insecure=insecure)
    if data_stream:
        ensure_data_stream(client, index, load_mapping(MAPPING_PATH))
        if not apply_ism_policy(client, index):
            print(f"note: {scrub_url(url)} has no index-management plugin; the ISM "
                  "policy (sim/outputs/ism_policy.json) was not applied", file=sys.stderr)
    else:
        ensure_index(client, index, load_mapping(MAPPING_PATH))
    ensure_index(client, incidents_index, load_mapping(INCIDENTS_MAPPING_PATH))
    return client


def enter_bulk_load(stack: contextlib.ExitStack, client: OpenSearch, index: str) -> str | None:
    """Switch ``index`` to bulk-load settings until ``stack`` closes (which restores them).
    None when done, else the one line saying why the index refused (e.g. a read-only block)."""
    try:
        stack.enter_context(bulk_load_settings(client, index))
    except TransportError as exc:
        err = exc.info.get("error") if isinstance(exc.info, dict) else None
        kind, reason = (err.get("type", ""), err.get("reason", "")) if isinstance(err, dict) \
            else (str(exc.error), "")
        return (refusal(index, exc.status_code, kind, reason, whole_request=True)
                or f"index {index!r} refused its bulk-load settings (HTTP {exc.status_code} {kind})")
    return None


def run_sinks(client: OpenSearch, index: str, incidents_index: str, run_dir: Path, *,
              documents: bool, give_up_after: float | None) -> tuple[list[OpenSearchSink],
                                                                     list[OpenSearchSink]]:
    """The run's sinks: its documents into ``index`` (unless ``documents`` is False: Dask
    workers stream them themselves) and its incident records into ``incidents_index``.
    Dead letters belong to the run's output dir ``run_dir``, also when it writes no NDJSON."""
    document_sinks = [OpenSearchSink(client, index, dead_letter_path=run_dir / "dead_letter.ndjson",
                                     give_up_after=give_up_after)] if documents else []
    incident_sinks = [OpenSearchSink(
        client, incidents_index, dead_letter_path=run_dir / "dead_letter_incidents.ndjson",
        senders=1, name=f"opensearch:{incidents_index}", give_up_after=give_up_after)]
    return document_sinks, incident_sinks


def alert_sinks(client: OpenSearch, alerts_index: str, run_dir: Path, *,
                give_up_after: float | None) -> list[OpenSearchSink]:
    """The run's alert documents into ``alerts_index``, created now if it is not there
    (raises OpenSearchSetupError: one line)."""
    ensure_index(client, alerts_index, load_mapping(ALERTS_MAPPING_PATH))
    return [OpenSearchSink(client, alerts_index, senders=1, name=f"opensearch:{alerts_index}",
                           dead_letter_path=run_dir / "dead_letter_alerts.ndjson",
                           give_up_after=give_up_after)]
