"""Reliability against the real node: every row of docs/reliability.md is a test here.

Why: the faults a user's cluster and network produce (a write block, a closed or deleted
index, a partition, a stalled answer, a request too large, a bad certificate) must each end
in one clear line, a non-zero exit and exact accounting, with nothing lost or duplicated
once the fault is gone and the run is repeated. A TCP proxy (tests/tcp_proxy.py) sits in
front of the real node to cut, stall or encrypt; the fake server is only used in addition,
for a 403 the node (without security plugin) cannot produce.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fake_bulk_server import BulkScript, fake_opensearch
from opensearch_fixtures import NODE_SCRIPT, _no_node, opensearch_node, opensearch_url  # noqa: F401
from opensearchpy import OpenSearch
from tcp_proxy import tcp_proxy

import sim.outputs.opensearch as sink_module
from sim.cli import main
from sim.outputs.index_setup import ensure_index, load_mapping
from sim.outputs.mapping import INCIDENTS_MAPPING_PATH, MAPPING_PATH
from sim.outputs.opensearch import OpenSearchSink, connect
from sim.outputs.sink import SinkStopped

EVENT_TYPES = ("http_request", "order", "app_log")
MAPPING: dict[str, Any] = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0},
    "mappings": {"dynamic": "strict", "properties": {
        "event_type": {"type": "keyword"}, "seq": {"type": "long"},
        "message": {"type": "text"}}},
}
SECRET = "s3cret-Pa55word"
URL_SECRET = "url-Pa55"


def make_docs(n: int, pad: int = 0) -> list[tuple[str, dict[str, Any]]]:
    return [(f"rel-{i:07d}", {"event_type": EVENT_TYPES[i % 3], "seq": i,
                              "message": f"GET /products/{i % 97}" + "x" * pad}) for i in range(n)]


def stream(client: OpenSearch, index: str, docs: list[tuple[str, dict[str, Any]]], dead: Path,
           **kw: Any) -> Any:
    sink = OpenSearchSink(client, index, dead_letter_path=dead, **kw)
    for doc_id, doc in docs:
        sink.emit(doc_id, doc)
    return sink.close()


def count(client: OpenSearch, index: str) -> int:
    client.indices.refresh(index=index)
    return int(client.count(index=index)["count"])


def accounted(s: Any) -> None:
    """Every generated document is in exactly one outcome."""
    d = s.details
    assert s.generated == (s.indexed + s.already_present + s.dead_lettered + d["not_sent"]
                           + d["unconfirmed"])
    for row in d["by_event_type"].values():
        assert row["unaccounted"] == row["not_sent"] + row["unconfirmed"]


def figures(row: str, *, generated: int, indexed: int, in_index: int, expected: int,
            **extra: int) -> None:
    """The row's figures for docs/reliability.md (``pytest -s`` shows them); nothing lost or
    duplicated: the index ends up holding exactly the ``expected`` documents."""
    duplicated, lost = max(0, in_index - expected), max(0, expected - in_index)
    more = " ".join(f"{k}={v}" for k, v in extra.items())
    print(f"\nRELIABILITY {row}: generated={generated} indexed={indexed} {more} "
          f"duplicated={duplicated} lost={lost}")
    assert duplicated == lost == 0


@pytest.fixture()
def client(opensearch_url: str) -> OpenSearch:  # noqa: F811
    return connect(opensearch_url)


@pytest.fixture()
def index(client: OpenSearch) -> Iterator[str]:
    name = f"rel-{uuid.uuid4().hex[:10]}"
    assert ensure_index(client, name, MAPPING) == "created"
    yield name
    _heal(client, name, "all")
    client.indices.delete(index=name, ignore=[404])


# ---------------------------------------------------------------------- refusals (part 2)
BLOCKS = {"write": "index write", "read_only": "index read-only",
          "read_only_allow_delete": "flood-stage"}


def _refuse(client: OpenSearch, index: str, how: str) -> None:
    if how == "closed":
        client.indices.close(index=index)
    elif how == "deleted":
        client.cluster.put_settings(body={"persistent": {"action.auto_create_index": False}})
        client.indices.delete(index=index)
    else:
        client.indices.put_settings(index=index, body={f"index.blocks.{how}": True})


def _heal(client: OpenSearch, index: str, how: str) -> None:
    if how in ("deleted", "all"):
        client.cluster.put_settings(body={"persistent": {"action.auto_create_index": None}})
        if not client.indices.exists(index=index):
            ensure_index(client, index, MAPPING)
    if how in (*BLOCKS, "all"):
        for block in reversed(BLOCKS):  # one at a time: a read-only block allows only itself
            client.indices.put_settings(index=index, body={f"index.blocks.{block}": None},
                                        ignore=[403, 404, 429])
    if how in ("closed", "all"):
        client.indices.open(index=index, ignore=[404])


@pytest.mark.parametrize("how", [*BLOCKS, "closed", "deleted"])
def test_index_refusal_mid_run_stops_with_one_reason_and_exact_accounting(
        client: OpenSearch, index: str, tmp_path: Path, how: str) -> None:
    docs = make_docs(10_000)
    refuse_at = 1500
    sink = OpenSearchSink(client, index, dead_letter_path=tmp_path / "dead.ndjson",
                          chunk_size=250, senders=2, queue_docs=1000, give_up_after=30)
    reason = ""
    try:
        for i, (doc_id, doc) in enumerate(docs):
            if i == refuse_at:
                _refuse(client, index, how)
            sink.emit(doc_id, doc)
    except SinkStopped as exc:
        reason = str(exc)
    first = sink.close()
    # the producer was stopped long before the end: not 8,500 more documents made for nothing
    assert reason, "emit never raised SinkStopped"
    assert first.generated < refuse_at + 6000
    assert "\n" not in reason and repr(index) in reason
    # closing under load first blocks writes ("preparing to close"), then refuses them
    expect = {"closed": r"is closed|preparing to close", "deleted": "does not exist"}
    assert re.search(expect.get(how, BLOCKS.get(how, "")), reason), reason
    assert first.details["stopped"] == reason
    # nothing was dead-lettered: the documents were fine, the index was not
    assert first.dead_lettered == 0 and not (tmp_path / "dead.ndjson").exists()
    assert first.details["unconfirmed"] == 0 and first.details["not_sent"] > 0
    accounted(first)
    assert not any(t.is_alive() for t in sink._threads)
    _heal(client, index, how)
    present = count(client, index)
    assert present == (0 if how == "deleted" else first.indexed)
    # the fault is gone: the same documents again complete the index, no duplicates
    second = stream(client, index, docs, tmp_path / "dead.ndjson", chunk_size=1000)
    assert second.indexed + second.already_present == len(docs)
    assert second.already_present == present
    figures(f"refusal {how}", generated=first.generated, indexed=first.indexed,
            not_sent=first.details["not_sent"], rerun_indexed=second.indexed,
            in_index=count(client, index), expected=len(docs))


@pytest.mark.parametrize("script", [
    BulkScript(item_error=(403, "security_exception",
                           "no permissions for [indices:data/write/bulk[s]] and User [name=bob]")),
    BulkScript(always_status=403, whole_error_type="security_exception"),
    BulkScript(always_status=401, whole_error_type="security_exception"),
], ids=["item-403", "request-403", "request-401"])
def test_missing_privileges_stop_instead_of_dead_lettering(tmp_path: Path, script: BulkScript) -> None:
    with fake_opensearch(script) as fake:
        sink = OpenSearchSink(connect(fake.url), "fake-index", chunk_size=50, senders=2,
                              dead_letter_path=tmp_path / "dead.ndjson", queue_docs=100)
        with pytest.raises(SinkStopped) as stopped:
            for doc_id, doc in make_docs(5000):
                sink.emit(doc_id, doc)
        summary = sink.close()
    assert "'fake-index'" in str(stopped.value) and "HTTP 40" in str(stopped.value)
    assert len(fake.requests) <= 4  # one refused request per sender, not one per chunk
    assert summary.dead_lettered == 0 and not (tmp_path / "dead.ndjson").exists()
    assert summary.indexed == 0 and summary.details["not_sent"] == summary.generated < 5000
    accounted(summary)
    figures(f"fake {script.item_error[0] if script.item_error else script.always_status}",
            generated=summary.generated, indexed=0, not_sent=summary.details["not_sent"],
            in_index=len(fake.created), expected=0)


# ---------------------------------------------------------------------- CLI runs
def _scenario(tmp_path: Path, index: str, incidents: str) -> Path:
    path = tmp_path / "rel.yaml"
    path.write_text("name: rel\nfaults:\n  - type: payment_gateway_slowdown\n    start: today 14:25\n"
                    f"output:\n  index: {index}\n  incidents_index: {incidents}\n"
                    f"  alerts_index: {incidents.replace('incidents', 'alerts')}\n")
    return path


def _cli(scenario: Path, out: Path, url: str, start: str = "14:20", end: str = "14:45",
         *extra: str) -> list[str]:
    return [str(scenario), "--today", "2026-11-27", "--start", f"today {start}", "--end",
            f"today {end}", "--base-tps", "5", "--output-dir", str(out), "--quiet",
            "--opensearch", url, *extra]


def _sink_line(err: str, name: str = "opensearch") -> dict[str, int]:
    m = re.search(rf"sink {re.escape(name)}: generated ([\d,]+) indexed ([\d,]+) already present "
                  r"([\d,]+) dead-lettered ([\d,]+) unaccounted ([\d,]+)", err)
    assert m, err
    keys = ("generated", "indexed", "already_present", "dead_lettered", "unaccounted")
    return {k: int(v.replace(",", "")) for k, v in zip(keys, m.groups(), strict=True)}


def _errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error:")]


@pytest.fixture()
def names(client: OpenSearch) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    index, incidents = f"rel-cli-{suffix}", f"rel-cli-incidents-{suffix}"
    yield index, incidents
    alerts = f"rel-cli-alerts-{suffix}"  # what _scenario names the alerts index
    for name in (index, incidents, alerts):
        if client.indices.exists(index=name):
            _heal(client, name, "all")
    client.indices.delete(index=f"{index},{incidents},{alerts}", ignore_unavailable=True)


@pytest.mark.parametrize("how,workers,code,expect", [
    ("write", None, 1, "index write"),  # refused mid-stream: the worker processes are stopped
    ("read_only_allow_delete", "1", 2, "flood-stage"),  # refused already at setup
    ("closed", "1", 2, "is closed"),
])
def test_cli_refused_index_one_line_non_zero_no_files(
        tmp_path: Path, client: OpenSearch, opensearch_url: str, names: tuple[str, str],  # noqa: F811
        capsys: pytest.CaptureFixture[str], how: str, workers: str | None, code: int,
        expect: str) -> None:
    index, incidents = names
    ensure_index(client, index, load_mapping(MAPPING_PATH))
    _refuse(client, index, how)
    out = tmp_path / "out"
    args = _cli(_scenario(tmp_path, index, incidents), out, opensearch_url, "08:00", "20:00")
    assert main(args + (["--workers", workers] if workers else [])) == code
    err = capsys.readouterr().err
    assert len(_errors(err)) == 1, err
    (line,) = _errors(err)
    assert repr(index) in line and expect in line
    assert "Traceback" not in err
    if how == "write":  # the simulation stopped early: 12 hours would be ~10x these
        s = _sink_line(err)
        assert 0 < s["generated"] < 60_000 and s["indexed"] == s["dead_lettered"] == 0
        assert s["unaccounted"] == s["generated"]
        figures(f"cli {how}", generated=s["generated"], indexed=0, not_sent=s["unaccounted"],
                in_index=count(client, index), expected=0)
    # the failed-run rule: nothing that looks complete, nothing half-written, no dead letters
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [n for n in left if n.endswith((".ndjson", ".json", ".partial"))
                or n.startswith(".segments")], left
    _heal(client, index, how)
    assert count(client, index) == 0


def test_cli_dead_letters_go_to_output_dir_with_no_files(
        tmp_path: Path, client: OpenSearch, opensearch_url: str, names: tuple[str, str],  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    """An incidents index whose date format rejects the records' ISO dates: content errors."""
    index, incidents = names
    body = load_mapping(INCIDENTS_MAPPING_PATH)
    body["mappings"]["properties"]["fault_start"]["format"] = "epoch_millis"
    ensure_index(client, incidents, body)
    out = tmp_path / "not-yet"
    code = main(_cli(_scenario(tmp_path, index, incidents), out, opensearch_url)
                + ["--no-files", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1
    dead = out / "dead_letter_incidents.ndjson"
    lines = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert len(lines) == 1 and lines[0]["status"] == 400
    assert "mapper_parsing_exception" in lines[0]["reason"]
    assert len(_errors(err)) == 1, err
    (line,) = _errors(err)
    assert str(dead) in line and " 1 documents rejected for their content" in line
    # beside the run's lock (sim.run.workspace), the only file
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == [
        "dead_letter_incidents.ndjson"]
    # the telemetry itself went in whole
    s = _sink_line(err)
    assert s["indexed"] == s["generated"] == count(client, index) > 0
    figures("dead letters", generated=s["generated"] + 1, indexed=s["indexed"], dead_lettered=1,
            in_index=count(client, index) + count(client, incidents), expected=s["generated"])


# ---------------------------------------------------------------------- network (part 6)
def _wait(cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_partition_longer_than_retry_budget_blocks_bounded_then_fails_exactly(
        client: OpenSearch, index: str, opensearch_url: str, tmp_path: Path) -> None:  # noqa: F811
    docs = make_docs(30_000)
    with tcp_proxy(opensearch_url) as proxy:
        sink = OpenSearchSink(connect(proxy.url), index, dead_letter_path=tmp_path / "dead.ndjson",
                              chunk_size=200, senders=2, queue_docs=1000, request_timeout=1.0,
                              give_up_after=3.0, backoff_base=0.05, backoff_cap=0.5)
        outcome: list[BaseException] = []

        def produce() -> None:
            try:
                for doc_id, doc in docs:
                    sink.emit(doc_id, doc)
            except SinkStopped as exc:
                outcome.append(exc)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        _wait(lambda: proxy.bytes_up > 500_000)
        proxy.set_mode("blackhole")
        at_cut = sum(sink._generated.values())
        bound = sink._queue.maxsize * sink._batch_size + 4 * sink._batch_size + 2 * sink.chunk_size
        peak_queue = peak_generated = 0
        while producer.is_alive():  # bounded: the sink gives up after 3 s of retries
            peak_queue = max(peak_queue, sink._queue.qsize())
            peak_generated = max(peak_generated, sum(sink._generated.values()))
            producer.join(timeout=0.05)
        summary = sink.close()
    assert outcome and "after 3s of retries" in str(outcome[0])
    # while the node was out of reach the simulation waited: memory held by the queue bound
    assert peak_queue <= sink._queue.maxsize
    assert peak_generated - at_cut <= bound
    assert summary.generated < len(docs) // 2
    accounted(summary)
    assert summary.dead_lettered == 0
    landed = count(client, index)
    # unconfirmed documents may or may not have reached the node; all others are exact
    assert summary.indexed <= landed <= summary.indexed + summary.details["unconfirmed"]
    rerun = stream(client, index, docs, tmp_path / "dead.ndjson", chunk_size=2000)
    assert rerun.already_present == landed
    assert rerun.indexed + rerun.already_present == len(docs)
    figures("partition (sink)", generated=summary.generated, indexed=summary.indexed,
            not_sent=summary.details["not_sent"], unconfirmed=summary.details["unconfirmed"],
            peak_queue_docs=peak_queue * sink._batch_size, in_index=count(client, index),
            expected=len(docs))


def test_cli_partition_exits_non_zero_and_rerun_completes_without_duplicates(
        tmp_path: Path, client: OpenSearch, opensearch_url: str, names: tuple[str, str],  # noqa: F811
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    index, incidents = names
    monkeypatch.setattr(sink_module, "GIVE_UP_AFTER_S", 2.0)
    scenario = _scenario(tmp_path, index, incidents)
    with tcp_proxy(opensearch_url) as proxy:
        # an hour is ~35 MB of _bulk: setup passes, a few requests too, then the link goes down
        proxy.cut_after_bytes = 12_000_000
        code = main(_cli(scenario, tmp_path / "a", proxy.url, "14:00", "15:00", "--workers", "1"))
    err = capsys.readouterr().err
    assert code == 1
    # one line per sink cut off: the telemetry's, and the incidents' and the alerts' when the
    # simulation had finished (all documents handed over) before the telemetry sink's retries
    # ran out
    lines = _errors(err)
    alerts = incidents.replace("incidents", "alerts")
    assert 1 <= len(lines) <= 3, err
    assert all("after 2s of retries" in line and "127.0.0.1" in line for line in lines), err
    assert repr(index) in lines[0] and all(repr(incidents) in line or repr(alerts) in line
                                           for line in lines[1:]), err
    first = _sink_line(err)
    assert first["indexed"] > 0 and first["unaccounted"] > 0 and first["dead_lettered"] == 0
    assert first["generated"] == first["indexed"] + first["unaccounted"]
    assert not (tmp_path / "a" / "run_summary.json").exists()
    landed = count(client, index)
    assert first["indexed"] <= landed <= first["generated"]
    assert main(_cli(scenario, tmp_path / "b", opensearch_url, "14:00", "15:00", "--no-files")) == 0
    second = _sink_line(capsys.readouterr().err)
    assert second["generated"] >= first["generated"]  # the whole hour this time
    assert second["already_present"] == landed
    assert second["indexed"] + second["already_present"] == second["generated"]
    figures("partition (cli)", generated=first["generated"], indexed=first["indexed"],
            unaccounted=first["unaccounted"], rerun_generated=second["generated"],
            in_index=count(client, index), expected=second["generated"])


def test_client_timeout_while_node_completes_duplicates_nothing(
        client: OpenSearch, index: str, opensearch_url: str, tmp_path: Path) -> None:  # noqa: F811
    docs = make_docs(1000)
    with tcp_proxy(opensearch_url) as proxy:
        proxied = connect(proxy.url)
        proxy.stall_next_response()  # the first _bulk answer never arrives; the node did it
        summary = stream(proxied, index, docs, tmp_path / "dead.ndjson", chunk_size=250,
                         senders=1, request_timeout=1.0, backoff_base=0.01, give_up_after=30)
        sent = bytes(proxy.captured)
    assert proxy.stalled == 1
    # the retry found the first request's documents already there: reported, not duplicated
    assert summary.already_present == summary.details["ambiguous_409"] == 250
    assert summary.indexed == 750 and summary.details["unconfirmed"] == 0
    figures("client timeout", generated=summary.generated, indexed=summary.indexed,
            already_present=summary.already_present, in_index=count(client, index), expected=1000)
    # every action was a create with the deterministic id (an index op would overwrite and
    # hide a duplicate write; create answers 409)
    assert sent.count(b'{"create":') == 1250 and b'{"index":' not in sent


@pytest.fixture(scope="module")
def small_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second node that refuses requests over 64 kB (http.max_content_length is static)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OPENSEARCH_PORT": str(port),
           "OPENSEARCH_DIR": str(tmp_path_factory.mktemp("small-node")),
           "OPENSEARCH_EXTRA_SETTINGS": "http.max_content_length: 64kb",
           "OPENSEARCH_HEAP": "256m"}
    proc = subprocess.run([str(NODE_SCRIPT), "start", "--fresh"], env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=900, check=False)
    if proc.returncode != 0:
        _no_node(f"second node for 413 did not start: {proc.stderr[-500:]}")
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(NODE_SCRIPT), "stop"], env=env, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=120, check=False)


def test_413_splits_requests_and_dead_letters_a_document_too_large(
        small_node: str, tmp_path: Path) -> None:
    client = connect(small_node)
    ensure_index(client, "rel-413", MAPPING)
    docs = make_docs(1000, pad=300)
    huge = ("rel-huge", {"event_type": "order", "seq": -1, "message": "h" * 100_000})
    dead = tmp_path / "dead.ndjson"
    summary = stream(client, "rel-413", [*docs[:500], huge, *docs[500:]], dead, chunk_size=500)
    assert summary.details["split_413"] >= 1
    assert summary.indexed == 1000 and summary.dead_lettered == 1
    accounted(summary)
    (line,) = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert line["_id"] == "rel-huge" and line["status"] == 413
    again = stream(client, "rel-413", docs, dead, chunk_size=500)
    assert again.already_present == 1000
    figures("413", generated=summary.generated, indexed=summary.indexed, dead_lettered=1,
            splits=summary.details["split_413"], in_index=count(client, "rel-413"), expected=1000)


# ---------------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, another CA, and server certificates: good, expired, for another host."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn: str) -> tuple[Any, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    def write(label: str, key: Any, cert: x509.Certificate) -> None:
        (d / f"{label}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{label}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

    ca_key, ca_cert = ca("storefront test CA")
    other_key, other_cert = ca("some other CA")
    write("ca", ca_key, ca_cert)
    write("other-ca", other_key, other_cert)
    import ipaddress

    for label, hosts, start, end in (
        ("good", ["127.0.0.1", "localhost"], now - dt.timedelta(days=1), now + dt.timedelta(days=30)),
        ("expired", ["127.0.0.1", "localhost"], now - dt.timedelta(days=60), now - dt.timedelta(days=30)),
        ("wrong-host", ["other.example"], now - dt.timedelta(days=1), now + dt.timedelta(days=30)),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h)
                for h in hosts]
        cert = (x509.CertificateBuilder().subject_name(name(hosts[0])).issuer_name(ca_cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .sign(ca_key, hashes.SHA256()))
        write(label, key, cert)
    return {p.stem: p for p in d.glob("*.pem")} | {f"{p.stem}.key": p for p in d.glob("*.key")}


def _tls(pki: dict[str, Path], label: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki[label], pki[f"{label}.key"])
    return ctx


@pytest.mark.parametrize("cert,ca,expect", [
    ("good", "other-ca", "unable to get local issuer certificate"),
    ("expired", "ca", "certificate has expired"),
    ("wrong-host", "ca", "mismatch"),
])
def test_tls_refusals_are_one_line_without_secrets(
        pki: dict[str, Path], opensearch_url: str, tmp_path: Path, names: tuple[str, str],  # noqa: F811
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        cert: str, ca: str, expect: str) -> None:
    monkeypatch.setenv("OPENSEARCH_USER", "alice")
    monkeypatch.setenv("OPENSEARCH_PASSWORD", SECRET)
    with tcp_proxy(opensearch_url, tls=_tls(pki, cert)) as proxy:
        url = proxy.url.replace("https://", f"https://bob:{URL_SECRET}@")
        code = main(_cli(_scenario(tmp_path, *names), tmp_path / "out", url, "14:20", "14:30",
                         "--ca-certs", str(pki[ca])))
    captured = capsys.readouterr()
    assert code == 2
    (line,) = captured.err.strip().splitlines()
    assert expect in line and proxy.url in line, line
    print(f"\nTLS line: {line}")
    for secret in (SECRET, URL_SECRET, "bob"):
        assert secret not in captured.err + captured.out
    assert not (tmp_path / "out").exists()


def test_tls_with_the_right_ca_streams_everything(
        pki: dict[str, Path], client: OpenSearch, opensearch_url: str, tmp_path: Path,  # noqa: F811
        names: tuple[str, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENSEARCH_PASSWORD", SECRET)
    index, _ = names
    with tcp_proxy(opensearch_url, tls=_tls(pki, "good")) as proxy:
        url = proxy.url.replace("https://", f"https://bob:{URL_SECRET}@")
        code = main(_cli(_scenario(tmp_path, *names), tmp_path / "out", url, "14:20", "14:30",
                         "--ca-certs", str(pki["ca"]), "--workers", "1", "--no-files"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    s = _sink_line(captured.err)
    assert s["indexed"] == s["generated"] > 0
    figures("tls right CA", generated=s["generated"], indexed=s["indexed"],
            in_index=count(client, index), expected=s["generated"])
    for secret in (SECRET, URL_SECRET):
        assert secret not in captured.err + captured.out
