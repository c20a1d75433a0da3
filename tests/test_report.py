"""The run report (sim/report): its data against the NDJSON, its page in a real browser, bad input."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.report import aggregate as aggregate_module
from sim.report.aggregate import aggregate

TODAY = "2026-11-28"


def _run(out: Path, scenario: str, start: str, end: str, *extra: str) -> None:
    assert main([f"scenarios/{scenario}.yaml", "--start", start, "--end", end,
                 "--output-dir", str(out), "--quiet", "--today", TODAY, *extra]) == 0


@pytest.fixture(scope="module")
def incident_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """payment_timeout around its incident (14:25-14:35), with its report."""
    out = tmp_path_factory.mktemp("report") / "payment_timeout"
    _run(out, "payment_timeout", "today 14:15", "today 14:50", "--report")
    return out


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run without faults (no report yet)."""
    out = tmp_path_factory.mktemp("report") / "baseline"
    _run(out, "baseline", "today 10:00", "today 10:20")
    return out


def _pairs(path: Path):
    with open(path, encoding="utf-8") as fh:
        for action in fh:
            assert json.loads(action).keys() <= {"index", "create"}
            yield json.loads(next(fh))


def _records(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[1::2]]


def _report(out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["report", str(out), *extra])
    return code, capsys.readouterr().err


def test_data_behind_the_figures_equals_the_ndjson(incident_run: Path) -> None:
    """Per-minute transactions, failed ones, the seed's slow-error hits and errors by type,
    counted here with plain json, equal report/data.json."""
    tx: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    slow: Counter[str] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    for doc in _pairs(incident_run / "all_data.ndjson"):
        minute = doc["@timestamp"][:16] + "Z"
        if doc["event_type"] == "transaction":
            tx[minute] += 1
            if doc["status"] == "error":
                failed[minute] += 1
                slow[minute] += doc["response_time_ms"] >= 5000
        elif doc["event_type"] == "error":
            errors[(minute, doc["error"]["type"])] += 1
    data = json.loads((incident_run / "report" / "data.json").read_text())
    minutes = data["minutes"]
    assert set(tx) <= set(minutes)

    def nonzero(series: list[int]) -> dict[str, int]:
        return {m: n for m, n in zip(minutes, series, strict=True) if n}

    assert nonzero(data["transactions"]) == dict(tx)
    assert nonzero(data["failed_transactions"]) == {m: n for m, n in failed.items() if n}
    assert nonzero(data["performance_incident_hits"]) == {m: n for m, n in slow.items() if n}
    assert sum(slow.values()) > 0  # the incident made some, or the check above says little
    got = {(m, t): n for t, series in data["errors_by_type"].items()
           for m, n in nonzero(series).items()}
    assert got == dict(errors)
    assert len({t for _, t in errors}) >= 4


def test_latency_quantiles_agree_with_the_ground_truth(incident_run: Path) -> None:
    """The report's p95 (same histogram bins as the run's ground truth) peaks where and as
    high as incidents.ndjson says."""
    (rec,) = _records(incident_run / "incidents.ndjson")
    data = json.loads((incident_run / "report" / "data.json").read_text())
    p95 = [v or 0.0 for v in data["latency_ms"]["p95"]]
    assert round(max(p95)) == rec["peak_p95_ms"]
    peak = data["minutes"][int(np.argmax(p95))]
    assert rec["symptom_start"][:16] <= peak[:16] < rec["symptom_end"][:16]


def test_incident_section_shows_cause_chain_and_impact(incident_run: Path) -> None:
    (rec,) = _records(incident_run / "incidents.ndjson")
    html = (incident_run / "report" / "index.html").read_text()
    assert html.count("<section") == 1
    first = rec["saturation_order"][0]
    for text in (rec["incident_id"], rec["incident_type"], rec["cause"]["fault_type"],
                 first["at"][11:19], f"{first['event']} (first to saturate)",
                 f"{rec['impact']['errors']:,}", f"{rec['impact']['failed_orders']:,}",
                 f"{rec['impact']['lost_revenue']:,.2f}", 'src="incident-1.png"'):
        assert text in html, text
    assert "No faults" not in html


def test_page_renders_offline_in_headless_chromium(incident_run: Path, tmp_path: Path) -> None:
    """Debian's chromium (installed by scripts/test) opens the page from the file system:
    every image loads and nothing but file:// URLs is requested."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium or playwright missing: scripts/test installs them")
        pytest.skip("chromium or playwright missing (scripts/test installs them)")
    index = incident_run / "report" / "index.html"
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            page.goto(index.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])")
            heading = page.inner_text("h1")
            sections = page.eval_on_selector_all("section h2", "els => els.map(e => e.innerText)")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert heading == "Run report: payment_timeout"
    assert [src for src, _, _ in images] == ["overview.png", "incident-1.png"]
    assert all(complete and width > 0 for _, complete, width in images), images
    assert len(sections) == 1 and "payment_gateway_timeout" in sections[0]
    assert requested and all(url.startswith("file://") for url in requested), requested
    assert index.as_uri() in requested
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_run_without_faults_has_no_incident_section(quiet_run: Path, capsys) -> None:
    code, err = _report(quiet_run, capsys)
    assert code == 0, err
    html = (quiet_run / "report" / "index.html").read_text()
    assert "No faults were injected in this run" in html
    assert "<section" not in html
    assert sorted(p.name for p in (quiet_run / "report").iterdir()) == [
        "data.json", "index.html", "overview.png"]


def test_same_run_same_report_bytes(quiet_run: Path, tmp_path: Path, capsys) -> None:
    """No wall clock, no versions, no worker count in the report: the same run gives the
    same bytes, whether one process or two wrote it."""
    copies = []
    for workers in ("1", "2"):
        out = _copy_run(quiet_run, tmp_path / f"w{workers}")
        os.symlink(quiet_run / "all_data.ndjson", out / "all_data.ndjson")
        code, err = _report(out, capsys, "--workers", workers)
        assert code == 0, err
        copies.append({p.name: p.read_bytes() for p in (out / "report").iterdir()})
    assert copies[0] == copies[1]


def test_parallel_ranges_cut_anywhere_give_the_same_aggregates(quiet_run: Path, monkeypatch) -> None:
    """Byte ranges of ~40 KB scanned by two worker processes add up to one in-process scan."""
    path = quiet_run / "all_data.ndjson"
    whole = aggregate(path, workers=1)
    monkeypatch.setattr(aggregate_module, "RANGE_BYTES", 40_000)
    assert len(aggregate_module.plan_ranges(path, path.stat().st_size)) > 100
    split = aggregate(path, workers=2)
    assert split.docs == whole.docs and split.lines == whole.lines
    assert split.first_minute == whole.first_minute
    for name in ("requests", "failed", "slow_failed", "hist", "errors"):
        assert np.array_equal(getattr(split, name), getattr(whole, name)), name
    assert split.error_types == whole.error_types
    assert split.metrics.keys() == whole.metrics.keys()
    for key, a in whole.metrics.items():
        assert np.allclose(split.metrics[key], a, equal_nan=True), key


def _copy_run(src: Path, dst: Path, files=("run_summary.json", "incidents.ndjson")) -> Path:
    dst.mkdir()
    for name in files:
        shutil.copy(src / name, dst / name)
    return dst


def test_not_a_run_output_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    code, err = _report(tmp_path / "missing", capsys)
    assert (code, err) == (2, f"error: {tmp_path / 'missing'}: not a directory\n")
    code, err = _report(tmp_path, capsys)
    assert code == 2
    assert err == f"error: {tmp_path}: not a run's output directory (no all_data.ndjson)\n"
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("cut", ["inside_a_document", "after_an_action", "after_a_pair"])
def test_truncated_all_data_names_the_line(quiet_run: Path, tmp_path: Path, capsys, cut) -> None:
    data = (quiet_run / "all_data.ndjson").read_bytes()
    out = _copy_run(quiet_run, tmp_path / "run")
    middle = len(data) // 2
    pair = data.index(b'\n{"index"', middle) + 1  # the start of an action line
    end = {"inside_a_document": data.index(b'"status"', pair),
           "after_an_action": data.index(b"\n", pair) + 1,
           "after_a_pair": pair}[cut]
    (out / "all_data.ndjson").write_bytes(data[:end])
    lines = data[:end].count(b"\n") + (cut == "inside_a_document")
    code, err = _report(out, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"all_data.ndjson: line {lines}: " in err or f"truncated after line {lines}:" in err, err
    assert "truncated" in err
    assert not (out / "report").exists() and not (out / "report.partial").exists()


@pytest.mark.parametrize("damage", ["cut", "bad_date"])
def test_a_broken_line_in_the_middle_is_named(quiet_run: Path, tmp_path: Path, capsys,
                                               damage: str) -> None:
    lines = (quiet_run / "all_data.ndjson").read_bytes().split(b"\n")
    n = next(i for i in range(1001, len(lines), 2) if b'"event_type":"transaction"' in lines[i])
    if damage == "cut":
        lines[n] = lines[n][:120]
        expected = "not valid JSON"
    else:
        lines[n] = lines[n][:15] + b"2026-13-45T99" + lines[n][28:]
        expected = "@timestamp: not a date"
    out = _copy_run(quiet_run, tmp_path / "run")
    (out / "all_data.ndjson").write_bytes(b"\n".join(lines))
    code, err = _report(out, capsys)
    assert code == 2
    assert err.startswith(f"error: {out / 'all_data.ndjson'}: line {n + 1}: {expected}"), err
    assert err.count("\n") == 1


def test_missing_incidents_warns_and_goes_on(incident_run: Path, tmp_path: Path, capsys) -> None:
    out = _copy_run(incident_run, tmp_path / "run", files=("run_summary.json",))
    os.symlink(incident_run / "all_data.ndjson", out / "all_data.ndjson")
    code, err = _report(out, capsys)
    assert code == 0
    assert err == f"warning: {out / 'incidents.ndjson'}: missing; the report shows no incidents\n"
    html = (out / "report" / "index.html").read_text()
    assert "incidents.ndjson is missing" in html and "<section" not in html


def test_markup_in_the_data_is_escaped(incident_run: Path, tmp_path: Path, capsys) -> None:
    out = _copy_run(incident_run, tmp_path / "run", files=("run_summary.json",))
    os.symlink(incident_run / "all_data.ndjson", out / "all_data.ndjson")
    text = (incident_run / "incidents.ndjson").read_text()
    (out / "incidents.ndjson").write_text(
        text.replace('"incident_type":"payment_gateway_timeout"',
                     '"incident_type":"<script>alert(1)</script>"'))
    code, err = _report(out, capsys)
    assert code == 0, err
    html = (out / "report" / "index.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.fixture(scope="module")
def change_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bad_config_push around its push (11:00: db_pool.max_size 10 -> 3 on every host)."""
    out = tmp_path_factory.mktemp("report") / "bad_config_push"
    _run(out, "bad_config_push", "today 10:50", "today 11:20", "--base-tps", "5", "--report")
    return out


def test_changes_are_listed_readably_from_their_documents(change_run: Path) -> None:
    docs = [d for d in _pairs(change_run / "all_data.ndjson") if d["event_type"] == "change"]
    assert len(docs) == 4  # one per host the push reached
    data = json.loads((change_run / "report" / "data.json").read_text())
    (change,) = data["changes"]
    assert (change["id"], change["kind"], change["at"], change["hosts"], change["settings"]) == (
        "cfg-2291", "config_push", "2026-11-28T11:00:00Z", ["app-01", "app-02", "app-03", "app-04"],
        ["db_pool.max_size 10 -> 3"])
    html = (change_run / "report" / "index.html").read_text()
    section = html[html.index('<h2 id="changes">'):html.index('<h2 id="incidents">')]
    assert "cfg-2291" in section and "db_pool.max_size 10 -&gt; 3" in section
    assert "app-01, app-02, app-03, app-04" in section and "{" not in section


def test_changes_are_drawn_as_markers(change_run: Path, tmp_path: Path) -> None:
    from sim.report.figures import draw
    from sim.report.series import build_series

    agg = aggregate(change_run / "all_data.ndjson", workers=1)
    s = build_series(agg)
    draw(tmp_path / "with.png", s, 0, len(s.epochs), [], {})
    s.changes = []
    draw(tmp_path / "without.png", s, 0, len(s.epochs), [], {})
    assert (tmp_path / "with.png").read_bytes() != (tmp_path / "without.png").read_bytes()


def test_a_change_cause_shows_its_settings_not_a_raw_dict(change_run: Path, tmp_path: Path,
                                                          capsys) -> None:
    out = _copy_run(change_run, tmp_path / "run", files=("run_summary.json",))
    os.symlink(change_run / "all_data.ndjson", out / "all_data.ndjson")
    record = {
        "incident_id": "cfg-2291", "incident_type": "db_pool_exhaustion", "origin": "pinned",
        "cause": {"kind": "change", "id": "cfg-2291", "change_kind": "config_push",
                  "settings": [{"name": "db_pool.max_size", "old": "10", "new": "3"}],
                  "hosts": ["app-01", "app-02"], "at": "2026-11-28T11:00:00.000Z"},
        "fault_start": "2026-11-28T11:00:00.000Z", "fault_end": "2026-11-28T11:00:00.000Z",
        "observed": True, "symptom_start": "2026-11-28T11:05:00.000Z",
        "incident_end": "2026-11-28T11:08:00.000Z", "symptom_end": "2026-11-28T11:10:00.000Z",
    }
    (out / "incidents.ndjson").write_text(json.dumps({"index": {"_id": "cfg-2291"}}) + "\n"
                                          + json.dumps(record) + "\n")
    code, err = _report(out, capsys)
    assert code == 0, err
    html = (out / "report" / "index.html").read_text()
    cause = html[html.index("<h3>Cause</h3>"):html.index("<h3>Windows</h3>")]
    assert "<th>settings</th><td>db_pool.max_size 10 -&gt; 3</td>" in cause
    assert "<th>hosts</th><td>app-01, app-02</td>" in cause
    assert "{" not in cause and "[" not in cause
