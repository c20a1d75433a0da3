"""The OpenSearch Dashboards saved objects (dashboards/storefront.ndjson) and their import command.

Validated against the saved-object attribute mappings of OpenSearch Dashboards 2.19's source and a fake
HTTP server; no running Dashboards is involved.
"""

import email
import email.policy
import json
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sim.outputs import dashboards

ROOT = Path(__file__).resolve().parent.parent
NDJSON = ROOT / "dashboards" / "storefront.ndjson"

# Attribute names each saved-object type allows, from OpenSearch-Dashboards (2.x) source:
#   visualization: src/plugins/visualizations/server/saved_objects/visualization.ts (mappings.properties)
#   dashboard:     src/plugins/dashboard/server/saved_objects/dashboard.ts (mappings.properties)
#   search:        src/plugins/discover/server/saved_objects/search.ts (mappings.properties)
#   index-pattern: src/plugins/data/server/saved_objects/index_patterns.ts maps only title/type/dataSource
#                  with dynamic: false; the attributes the index-pattern service reads and writes are
#                  IndexPatternAttributes in src/plugins/data/common/index_patterns/types.ts.
ALLOWED_ATTRIBUTES = {
    "visualization": {"description", "kibanaSavedObjectMeta", "savedSearchRefName", "title", "uiStateJSON",
                      "version", "visState"},
    "dashboard": {"description", "hits", "kibanaSavedObjectMeta", "optionsJSON", "panelsJSON",
                  "refreshInterval", "timeFrom", "timeRestore", "timeTo", "title", "version"},
    "search": {"columns", "description", "hits", "kibanaSavedObjectMeta", "sort", "columnWidths", "title",
               "version"},
    "index-pattern": {"title", "type", "dataSource", "fields", "typeMeta", "timeFieldName", "intervalName",
                      "sourceFilters", "fieldFormatMap", "fieldAttrs", "allowNoIndex"},
}
REFRESH_INTERVAL_KEYS = {"display", "pause", "section", "value"}  # dashboard.ts refreshInterval.properties
KIBANA_META_KEYS = {"searchSourceJSON"}  # kibanaSavedObjectMeta.properties in all three files above
# top-level keys of one line of an export / _import file (SavedObject in src/core/types/saved_objects.ts)
TOP_LEVEL = {"id", "type", "attributes", "references", "migrationVersion"}
SS_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def load_objects():
    return [json.loads(line) for line in NDJSON.read_text().splitlines() if line.strip()]


def flat_fields(mapping_file: Path) -> dict:
    out = {}

    def walk(props, prefix=""):
        for name, spec in props.items():
            if "properties" in spec:
                walk(spec["properties"], prefix + name + ".")
            else:
                out[prefix + name] = spec["type"]

    walk(json.loads(mapping_file.read_text())["mappings"]["properties"])
    return out


FIELDS_BY_PATTERN = {
    "storefront-main": flat_fields(ROOT / "mapping.json"),
    "storefront-incidents": flat_fields(ROOT / "sim" / "outputs" / "incidents_mapping.json"),
}
OBJECTS = load_objects()
BY_KEY = {(o["type"], o["id"]): o for o in OBJECTS}


def is_tsvb(o) -> bool:
    """A TSVB visualization (type ``metrics``): it names its index by title, in its params."""
    return o["type"] == "visualization" and json.loads(o["attributes"]["visState"])["type"] == "metrics"


def pattern_of(o) -> str:
    (ref,) = [r for r in o["references"] if r["name"] == SS_REF]
    assert ref["type"] == "index-pattern"
    return ref["id"]


def kql_fields(query: str) -> set:
    return set(re.findall(r"([A-Za-z_@][\w.@]*)\s*(?::|>=|<=|>|<)", query))


def test_committed_file_equals_fresh_build():
    fresh = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-dashboards"), "--stdout"],
                           capture_output=True, check=True, timeout=60).stdout
    assert NDJSON.read_bytes() == fresh


def test_object_shapes_and_attribute_names():
    assert len(BY_KEY) == len(OBJECTS)  # no duplicate (type, id)
    types = [o["type"] for o in OBJECTS]
    assert types.count("index-pattern") == 2 and types.count("dashboard") == 2
    assert types.count("search") >= 2 and types.count("visualization") >= 9
    for o in OBJECTS:
        assert set(o) <= TOP_LEVEL, o["id"]
        assert o["type"] in ALLOWED_ATTRIBUTES
        attrs = o["attributes"]
        extra = set(attrs) - ALLOWED_ATTRIBUTES[o["type"]]
        assert not extra, (o["id"], extra)
        assert attrs["title"]
        if "kibanaSavedObjectMeta" in attrs:
            assert set(attrs["kibanaSavedObjectMeta"]) <= KIBANA_META_KEYS
            ss = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert isinstance(ss, dict)
            if is_tsvb(o):
                assert "indexRefName" not in ss and o["references"] == []
            elif o["type"] in ("visualization", "search"):
                assert ss["indexRefName"] == SS_REF and "index" not in ss
                pattern_of(o)
        if "refreshInterval" in attrs:
            assert set(attrs["refreshInterval"]) <= REFRESH_INTERVAL_KEYS
        for key in ("visState", "panelsJSON", "uiStateJSON", "optionsJSON"):
            if key in attrs:
                assert isinstance(attrs[key], str)
                json.loads(attrs[key])
    assert BY_KEY[("index-pattern", "storefront-main")]["attributes"]["timeFieldName"] == "@timestamp"
    incidents = BY_KEY[("index-pattern", "storefront-incidents")]["attributes"]
    assert FIELDS_BY_PATTERN["storefront-incidents"][incidents["timeFieldName"]] == "date"


def test_references_resolve():
    for o in OBJECTS:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in BY_KEY, (o["id"], ref)
        if o["type"] == "dashboard":
            panels = json.loads(o["attributes"]["panelsJSON"])
            refs = {r["name"]: r for r in o["references"]}
            assert panels
            for p in panels:
                assert set(p["gridData"]) == {"x", "y", "w", "h", "i"}
                assert p["gridData"]["x"] + p["gridData"]["w"] <= 48
                assert refs[p["panelRefName"]]["type"] in ("visualization", "search")
            assert {p["panelRefName"] for p in panels} == set(refs)


def test_fields_exist_and_are_aggregatable():
    for o in OBJECTS:
        if o["type"] not in ("visualization", "search") or is_tsvb(o):
            continue
        fields = FIELDS_BY_PATTERN[pattern_of(o)]
        attrs = o["attributes"]
        query = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
        for f in kql_fields(query):
            assert f in fields, (o["id"], f)
        if o["type"] == "visualization":
            state = json.loads(attrs["visState"])
            assert {"title", "type", "params", "aggs"} <= set(state)
            assert state["title"] == attrs["title"]
            for agg in state["aggs"]:
                field = agg["params"].get("field")
                if agg["type"] == "count":
                    assert field is None
                    continue
                assert field in fields, (o["id"], field)
                assert fields[field] not in ("text", "flat_object"), (o["id"], field)
                if agg["type"] in ("avg", "sum", "max", "min", "percentiles"):
                    assert fields[field] in ("float", "long", "integer", "scaled_float", "double"), field
                if agg["type"] == "date_histogram":
                    assert fields[field] == "date"
        else:
            for col in attrs["columns"]:
                assert col in fields, (o["id"], col)
            for field, direction in attrs["sort"]:
                assert direction == "desc"
                assert fields[field] in ("date", "float", "long", "integer", "keyword")


def test_tsvb_fields_exist_and_its_index_is_the_main_pattern():
    """TSVB (OpenSearch Dashboards 2.x, the 7.10 shape: filters as {query, language}) reads its
    index by title: every series, filter and annotation names fields of the main index."""
    tsvbs = [o for o in OBJECTS if is_tsvb(o)]
    assert tsvbs
    title = BY_KEY[("index-pattern", "storefront-main")]["attributes"]["title"]
    fields = FIELDS_BY_PATTERN["storefront-main"]
    for o in tsvbs:
        state = json.loads(o["attributes"]["visState"])
        params = state["params"]
        assert state["aggs"] == [] and state["title"] == o["attributes"]["title"]
        assert params["type"] == "timeseries" and params["index_pattern"] == title
        assert fields[params["time_field"]] == "date"
        for series in params["series"]:
            assert set(series["filter"]) == {"query", "language"}
            assert kql_fields(series["filter"]["query"]) <= set(fields), series
            for m in series["metrics"]:
                assert m["type"] == "count" or fields[m["field"]] not in ("text", "flat_object")
        for note in params["annotations"]:
            assert note["index_pattern"] == title and fields[note["time_field"]] == "date"
            assert set(note["query_string"]) == {"query", "language"}
            assert kql_fields(note["query_string"]["query"]) <= set(fields)
            for f in note["fields"].split(","):
                assert f in fields, f
            for f in re.findall(r"{{\s*([\w.@]+)\s*}}", note["template"]):
                assert f in note["fields"].split(","), f


def test_changes_search_and_markers_on_the_overview():
    searches = {o["attributes"]["title"]: o for o in OBJECTS if o["type"] == "search"}
    (changes,) = [o for o in searches.values()
                  if json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]
                  == {"query": "event_type:change", "language": "kuery"}]
    assert changes["attributes"]["columns"] == ["host.name", "change.kind", "service.version", "message"]
    overview = BY_KEY[("dashboard", "storefront-overview")]
    on_it = {r["id"] for r in overview["references"]}
    assert changes["id"] in on_it
    marked = [o for o in OBJECTS if is_tsvb(o) and o["id"] in on_it]
    assert marked, "no time series with change markers on the overview"
    notes = json.loads(marked[0]["attributes"]["visState"])["params"]["annotations"]
    assert [n["query_string"]["query"] for n in notes] == ["event_type:change"]


def test_retitling_the_main_pattern_moves_the_tsvb_index_too():
    sent = dashboards.retitle(NDJSON.read_bytes(), {"storefront-main": "logs-storefront-*"})
    objs = [json.loads(line) for line in sent.decode().splitlines()]
    for o in objs:
        if is_tsvb(o):
            params = json.loads(o["attributes"]["visState"])["params"]
            assert params["index_pattern"] == "logs-storefront-*"
            assert {n["index_pattern"] for n in params["annotations"]} == {"logs-storefront-*"}
    unchanged = [o for o in objs if o["type"] != "index-pattern" and not is_tsvb(o)]
    assert unchanged == [o for o in OBJECTS if o["type"] != "index-pattern" and not is_tsvb(o)]
    assert dashboards.retitle(NDJSON.read_bytes(), {"storefront-incidents": "x"}).decode().count(
        "ecommerce_performance_demo") == NDJSON.read_text().count("ecommerce_performance_demo")


def test_seed_searches():
    searches = {o["attributes"]["title"]: o for o in OBJECTS if o["type"] == "search"}
    slow = searches["Find Performance Incidents"]["attributes"]
    assert json.loads(slow["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"] == {
        "query": "response_time_ms >= 5000 and status:error", "language": "kuery"}
    assert slow["sort"] == [["@timestamp", "desc"]]
    queries = {json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
               for o in searches.values()}
    assert "event_type:error" in queries


# ---- the import command against a fake Dashboards -------------------------------------------------
class FakeDashboards:
    def __init__(self, status=200, body=None):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.requests.append((self.path, self.headers, self.rfile.read(length)))
                payload = json.dumps(body if body is not None else {"success": True, "successCount": 19})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def file_part(headers, body):
    ctype = headers["Content-Type"]
    assert ctype.startswith("multipart/form-data") and "boundary=" in ctype
    msg = email.message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body,
                                   policy=email.policy.default)
    parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
    part = parts["file"]
    assert part.get_filename() == "storefront.ndjson"
    return part.get_payload(decode=True)


def test_import_posts_file_with_xsrf_and_basic_auth(monkeypatch, capsys):
    monkeypatch.setenv("OPENSEARCH_USER", "admin")
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "s3cret-Pa55")
    with FakeDashboards() as fake:
        rc = dashboards.main(["import", "--url", fake.url, "--overwrite"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.strip().splitlines() == [f"imported 19 saved objects into {fake.url}"]
    assert "s3cret-Pa55" not in out + err
    (path, headers, body), = fake.requests
    assert path == "/api/saved_objects/_import?overwrite=true"
    assert headers["osd-xsrf"] == "true"
    assert headers["Authorization"] == "Basic YWRtaW46czNjcmV0LVBhNTU="  # admin:s3cret-Pa55
    assert file_part(headers, body) == NDJSON.read_bytes()


def test_import_without_credentials_or_overwrite_and_retitled(monkeypatch, capsys):
    monkeypatch.delenv("OPENSEARCH_USER", raising=False)
    monkeypatch.delenv("OPENSEARCH_PASSWORD", raising=False)
    with FakeDashboards() as fake:
        monkeypatch.setenv("OPENSEARCH_DASHBOARDS_URL", fake.url)
        rc = dashboards.main(["import", "--index-pattern", "logs-storefront-*"])
    assert rc == 0
    (path, headers, body), = fake.requests
    assert path == "/api/saved_objects/_import" and "Authorization" not in headers
    sent = [json.loads(line) for line in file_part(headers, body).decode().splitlines()]
    titles = {o["id"]: o["attributes"]["title"] for o in sent if o["type"] == "index-pattern"}
    assert titles == {"storefront-main": "logs-storefront-*",
                      "storefront-incidents": "ecommerce_performance_incidents"}
    assert len(sent) == len(OBJECTS)
    capsys.readouterr()


def test_import_refused_is_one_stderr_line(monkeypatch, capsys):
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "hunter2-xyz")
    monkeypatch.setenv("OPENSEARCH_USER", "admin")
    body = {"statusCode": 400, "error": "Bad Request", "message": "bad file"}
    with FakeDashboards(status=400, body=body) as fake:
        rc = dashboards.main(["import", "--url", fake.url, "--overwrite"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "400" in err and "bad file" in err
    assert "hunter2-xyz" not in err


def test_import_partial_failure_is_refusal(capsys):
    body = {"success": False, "successCount": 18, "errors": [
        {"id": "storefront-errors", "type": "search", "error": {"type": "conflict"}}]}
    with FakeDashboards(status=200, body=body) as fake:
        rc = dashboards.main(["import", "--url", fake.url])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "200" in err and "conflict" in err


def test_import_unreachable_exits_2(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = dashboards.main(["import", "--url", f"http://127.0.0.1:{port}"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["import", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        dashboards.main(argv)
    assert exc.value.code == 0 and "--overwrite" in capsys.readouterr().out
