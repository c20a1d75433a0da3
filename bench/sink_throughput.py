"""Throughput of the streaming OpenSearch sink vs. a plain sequential ``_bulk`` loader, and
the sink's own CPU per document.

Why: the sink adds per-document work (a queue, per-item accounting, retries); this measures
what that costs against the simplest possible loader (pre-serialized NDJSON POSTed in ~8 MB
chunks, one request at a time) on the same node. Target: sink/plain >= 0.8. It times the
raw path (``emit_raw``: the encoded line pairs of a worker's part file, in 4 MB pieces as
``sim.run.parallel`` reads them) and the dict path (``emit``), and reports each one's CPU per
document in this process (all threads: the sink's and the HTTP client's work; the node is
another process). Target for the raw path: <= 5 us per document (issue #15).

    scripts/opensearch-node start
    python3 bench/sink_throughput.py [--url http://127.0.0.1:9200] [--docs 200000]

Both runs index into fresh indices with the same mapping and ``refresh_interval: -1``, and
both include the final refresh. A warm-up load runs first (a freshly started JVM is several
times slower until the JIT has compiled the indexing path), and the rounds alternate order.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.outputs.index_setup import bulk_load_settings, ensure_index  # noqa: E402
from sim.outputs.opensearch import OpenSearchSink, connect, scrub_url  # noqa: E402
from sim.telemetry.encoding import bulk_lines

MAPPING: dict[str, Any] = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "@timestamp": {"type": "date"},
            "event_type": {"type": "keyword"},
            "trace_id": {"type": "keyword"},
            "span_id": {"type": "keyword"},
            "service": {"properties": {"name": {"type": "keyword"}, "instance": {"type": "keyword"}}},
            "http": {
                "properties": {
                    "method": {"type": "keyword"},
                    "path": {"type": "keyword"},
                    "status": {"type": "short"},
                    "user_agent": {"type": "text"},
                }
            },
            "client": {"properties": {"ip": {"type": "ip"}, "country": {"type": "keyword"}}},
            "duration_ms": {"type": "double"},
            "upstream_ms": {"type": "double"},
            "db": {"properties": {"pool_active": {"type": "integer"}, "wait_ms": {"type": "double"}}},
            "order": {"properties": {"id": {"type": "keyword"}, "amount": {"type": "double"}}},
            "log": {"properties": {"level": {"type": "keyword"}, "logger": {"type": "keyword"}}},
            "message": {"type": "text"},
            "tags": {"type": "keyword"},
        },
    },
}

PATHS = ["/", "/products", "/products/{id}", "/cart", "/cart/items", "/checkout", "/search"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
]


def make_docs(n: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """Deterministic storefront-like documents of ~700 bytes (three event types)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        et = ("http_request", "http_request", "app_log", "order")[i % 4]
        path = rng.choice(PATHS).replace("{id}", str(rng.randint(1, 5000)))
        status = rng.choice((200, 200, 200, 200, 201, 302, 404, 500, 503))
        doc: dict[str, Any] = {
            "@timestamp": f"2026-03-02T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}."
            f"{i % 1000:03d}Z",
            "event_type": et,
            "trace_id": f"{rng.getrandbits(128):032x}",
            "span_id": f"{rng.getrandbits(64):016x}",
            "service": {"name": "storefront", "instance": f"app-{rng.randint(1, 6):02d}"},
            "http": {
                "method": rng.choice(("GET", "GET", "GET", "POST")),
                "path": path,
                "status": status,
                "user_agent": rng.choice(AGENTS),
            },
            "client": {
                "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                "country": rng.choice(("DE", "FR", "US", "GB", "NL", "PL")),
            },
            "duration_ms": round(rng.lognormvariate(3.5, 0.6), 3),
            "upstream_ms": round(rng.lognormvariate(2.5, 0.8), 3),
            "db": {"pool_active": rng.randint(0, 20), "wait_ms": round(rng.expovariate(0.5), 3)},
            "log": {"level": rng.choice(("INFO", "INFO", "WARN", "ERROR")), "logger": "c.s.web"},
            "message": f"{path} handled with status {status} after {rng.randint(5, 900)} ms; "
            f"cart items {rng.randint(0, 9)}, session {rng.getrandbits(48):012x}",
            "tags": ["prod", "eu-central-1", rng.choice(("canary", "stable"))],
        }
        if et == "order":
            doc["order"] = {"id": f"ord-{i:09d}", "amount": round(rng.uniform(5, 400), 2)}
        docs.append((f"{et}-{i:09d}", doc))
    return docs


def ndjson_chunks(docs: list[tuple[str, dict[str, Any]]], chunk_bytes: int) -> list[bytes]:
    """The same documents as pre-serialized ``_bulk`` bodies of about ``chunk_bytes``."""
    chunks: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for doc_id, doc in docs:
        line = b'{"create":{"_id":"' + doc_id.encode() + b'"}}\n' + orjson.dumps(doc) + b"\n"
        parts.append(line)
        size += len(line)
        if size >= chunk_bytes:
            chunks.append(b"".join(parts))
            parts, size = [], 0
    if parts:
        chunks.append(b"".join(parts))
    return chunks


def raw_pieces(docs: list[tuple[str, dict[str, Any]]], piece_bytes: int = 4 << 20
               ) -> list[tuple[bytes, int]]:
    """The documents as a worker's part file holds them, cut as ``sim.run.parallel`` reads it."""
    pieces: list[tuple[bytes, int]] = []
    parts: list[bytes] = []
    size = 0
    for doc_id, doc in docs:
        line = bulk_lines(doc_id, doc)
        parts.append(line)
        size += len(line)
        if size >= piece_bytes:
            pieces.append((b"".join(parts), len(parts)))
            parts, size = [], 0
    if parts:
        pieces.append((b"".join(parts), len(parts)))
    return pieces


def plain_load(http: urllib3.PoolManager, url: str, index: str, chunks: list[bytes]
               ) -> tuple[float, float]:
    """Sequential POSTs of the NDJSON chunks + refresh; returns (wall, CPU) seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    for body in chunks:
        resp = http.request(
            "POST",
            f"{url}/{index}/_bulk?filter_path=errors",
            body=body,
            headers={"Content-Type": "application/x-ndjson"},
        )
        if resp.status != 200 or orjson.loads(resp.data).get("errors"):
            raise SystemExit(f"plain loader: HTTP {resp.status} {resp.data[:300]!r}")
    http.request("POST", f"{url}/{index}/_refresh")
    return time.perf_counter() - started, time.process_time() - cpu


def sink_load(client: Any, index: str, docs: list[tuple[str, dict[str, Any]]] | None,
              pieces: list[tuple[bytes, int]] | None = None, **kw: Any) -> tuple[float, float]:
    """Every document through OpenSearchSink (``emit`` for ``docs``, else ``emit_raw`` of
    ``pieces``) and close it (includes refresh); returns (wall, CPU) seconds."""
    n = len(docs) if docs is not None else sum(c for _, c in pieces or [])
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu = time.perf_counter(), time.process_time()
        with bulk_load_settings(client, index):
            sink = OpenSearchSink(client, index, dead_letter_path=Path(tmp) / "dead.ndjson", **kw)
            if docs is not None:
                for doc_id, doc in docs:
                    sink.emit(doc_id, doc)
            else:
                for lines, count in pieces or []:
                    sink.emit_raw(lines, count)
            summary = sink.close()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if summary.indexed != n or summary.unaccounted:
        raise SystemExit(f"sink accounting off: {summary}")
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=os.environ.get("OPENSEARCH_URL", "http://127.0.0.1:9200"))
    p.add_argument("--docs", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup-docs", type=int, default=60_000)
    p.add_argument("--plain-chunk-mb", type=float, default=8.0)
    p.add_argument("--chunk-size", type=int, default=5000)
    p.add_argument("--max-chunk-mb", type=float, default=8.0)
    p.add_argument("--senders", type=int, default=2)
    args = p.parse_args(argv)

    client = connect(args.url)
    url = scrub_url(args.url).rstrip("/")
    headers: dict[str, str] = {}
    if os.environ.get("OPENSEARCH_USER"):
        auth = f"{os.environ['OPENSEARCH_USER']}:{os.environ.get('OPENSEARCH_PASSWORD', '')}"
        headers = urllib3.make_headers(basic_auth=auth)
    http = urllib3.PoolManager(headers=headers)
    sink_kw = {
        "chunk_size": args.chunk_size,
        "max_chunk_bytes": int(args.max_chunk_mb * 1024 * 1024),
        "senders": args.senders,
    }
    docs = make_docs(args.docs)
    chunks = ndjson_chunks(docs, int(args.plain_chunk_mb * 1024 * 1024))
    avg = sum(len(c) for c in chunks) / len(docs)
    print(f"{len(docs)} docs, {avg:.0f} bytes/doc as NDJSON (action + source), node {url}")

    run_id = f"{os.getpid()}-{int(time.time())}"
    created: list[str] = []

    def fresh(kind: str) -> str:
        name = f"bench-{kind}-{run_id}-{len(created)}"
        ensure_index(client, name, MAPPING)
        created.append(name)
        return name

    pieces = raw_pieces(docs)
    kinds = ("plain", "raw", "dict")
    try:
        warm = docs[: args.warmup_docs]
        plain_load(http, url, fresh("warm"), ndjson_chunks(warm, len(chunks[0])))
        sink_load(client, fresh("warm"), None, raw_pieces(warm), **sink_kw)
        wall: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, list[float]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            for kind in kinds if r % 2 == 0 else kinds[::-1]:
                index = fresh(kind)
                if kind == "plain":
                    t, c = plain_load(http, url, index, chunks)
                else:
                    t, c = sink_load(client, index, docs if kind == "dict" else None,
                                     pieces if kind == "raw" else None, **sink_kw)
                wall[kind].append(t)
                cpu[kind].append(c)
                print(f"round {r + 1} {kind:5s}: {t:6.2f} s  {len(docs) / t:9.0f} docs/s  "
                      f"{c / len(docs) * 1e6:5.1f} us CPU/doc here")
                client.indices.delete(index=index)
        plain_rate = len(docs) / statistics.median(wall["plain"])
        print("| path | docs/s | vs plain | CPU per doc in this process |")
        print("|---|---:|---:|---:|")
        names = {"plain": "plain `_bulk` loader (urllib3, 8 MB bodies)",
                 "raw": "sink, `emit_raw` (worker part-file bytes)",
                 "dict": "sink, `emit` (dicts, serialized here)"}
        for kind in kinds:
            rate = len(docs) / statistics.median(wall[kind])
            us = statistics.median(cpu[kind]) / len(docs) * 1e6
            print(f"| {names[kind]} | {rate:,.0f} | {rate / plain_rate:.2f} | {us:.1f} us |")
        print(f"(medians of {args.rounds} rounds; {sink_kw}; targets: raw/plain >= 0.8, "
              "raw CPU <= 5 us per document)")
    finally:
        for name in created:
            client.indices.delete(index=name, ignore=[404])
    return 0


if __name__ == "__main__":
    sys.exit(main())
