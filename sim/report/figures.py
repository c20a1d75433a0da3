"""The report's figures: matplotlib on its Agg backend (PNG files, no display, no pyplot state).

One stack of panels sharing a UTC time axis, drawn for the whole window (the overview) and
zoomed on each incident, where a lane with the causal chain and one with the seed's "Find
Performance Incidents" hits come on top. Every incident in view is shaded: its incident
phase red, its recovery amber, the injected cause as a hatched band at the top. Every change
in view (a deploy, a config push, a flag) is a dashed purple line with its label on top.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator  # noqa: E402

from sim.report.aggregate import SLOW_MS  # noqa: E402
from sim.report.output_dir import epoch_s  # noqa: E402
from sim.report.series import Series  # noqa: E402

WIDTH_IN = 12.0
DPI = 80
TOP_ERROR_TYPES = 7
HOST_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22"]
INCIDENT_COLOR = "#d62728"
CHANGE_COLOR = "#6a3d9a"
RECOVERY_COLOR = "#ff9f1c"
BREAKER_COLORS = ListedColormap(["#b7e4a7", "#fde28a", "#d73027", "#222222"])
BREAKER_LABELS = ("closed", "half-open", "open", "JVM down")
LABEL_ROWS = 3


class View:
    """A time range of the series: the slice plotted and its x values (UTC datetimes)."""

    def __init__(self, s: Series, lo: int, hi: int) -> None:
        self.s, self.sl = s, slice(lo, hi)
        self.x = (s.epochs[lo:hi] + 30).astype("datetime64[s]")  # mid-minute
        self.edges = (np.append(s.epochs[lo:hi], s.epochs[lo:hi][-1:] + 60)
                      ).astype("datetime64[s]") if hi > lo else self.x

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return a[self.sl]


def _short(error_type: str) -> str:
    name = error_type.rsplit(".", 1)[-1]
    return name if len(name) <= 30 else name[:29] + "…"


def _type_colors(s: Series) -> dict[str, Any]:
    """One color per error type for every figure of a report: by rank over the whole run."""
    palette = matplotlib.colormaps["tab20"].colors
    ranked = sorted(s.errors_by_type, key=lambda t: (-int(s.errors_by_type[t].sum()), t))
    return {t: palette[2 * (i % 10) + (i // 10) % 2] for i, t in enumerate(ranked)}


def _log_y(ax: Axes) -> None:
    """A log axis with decade ticks only (minor ticks cost most of a figure's drawing time)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(numticks=5))
    ax.yaxis.set_minor_locator(NullLocator())


def _legend(ax: Axes, **kw: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False, **kw)


def _requests(ax: Axes, v: View) -> None:
    ax.plot(v.x, v(v.s.requests) / 60.0, color="#1f77b4", lw=1)
    ax.set_ylabel("requests/s")
    ax.set_ylim(bottom=0)


def _latency(ax: Axes, v: View) -> None:
    for (name, a), color in zip(v.s.latency.items(), ("#2ca02c", "#ff7f0e", "#d62728"),
                                strict=True):
        ax.plot(v.x, v(a), color=color, lw=1, label=name)
    ax.axhline(SLOW_MS, color="#777777", lw=0.6, ls=":", label="5 s")
    _log_y(ax)
    ax.set_ylabel("latency ms")
    _legend(ax)


def _errors(ax: Axes, v: View) -> None:
    req = v(v.s.requests).astype(float)
    totals = sorted(((int(v(a).sum()), t) for t, a in v.s.errors_by_type.items()), reverse=True)
    shown = [t for n, t in totals[:TOP_ERROR_TYPES] if n > 0]
    rest = [t for n, t in totals[TOP_ERROR_TYPES:] if n > 0]
    layers = [v(v.s.errors_by_type[t]).astype(float) for t in shown]
    labels = [_short(t) for t in shown]
    type_colors = _type_colors(v.s)
    colors = [type_colors[t] for t in shown]
    if rest:
        layers.append(np.sum([v(v.s.errors_by_type[t]) for t in rest], axis=0).astype(float))
        labels.append("other")
        colors.append("#bbbbbb")
    if layers:
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = [np.where(req > 0, 100.0 * a / np.maximum(req, 1), 0.0) for a in layers]
        ax.stackplot(v.x, pct, labels=labels, colors=colors, lw=0)
    ax.set_ylabel("errors %")
    ax.set_ylim(bottom=0)
    _legend(ax)


def _per_host(ax: Axes, v: View, solid: str, dashed: str | None, ylabel: str,
              scale: float = 1.0, dashed_style: str = "--") -> None:
    for (host, s), color in zip(v.s.app_hosts.items(), HOST_COLORS * 4, strict=False):
        ax.plot(v.x, v(s[solid]) * scale, color=color, lw=1, label=host)
        if dashed:
            ax.plot(v.x, v(s[dashed]) * scale, color=color, lw=0.8, ls=dashed_style)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0, top=max(1.0, ax.get_ylim()[1]) * 1.15)


def _threads(ax: Axes, v: View) -> None:
    _per_host(ax, v, "threads_busy", "threads_queued", "threads")
    ax.text(0.005, 0.95, "busy ─   queued ┄", transform=ax.transAxes, fontsize=7, va="top")
    _legend(ax)


def _db_pool(ax: Axes, v: View) -> None:
    _per_host(ax, v, "db_pool_active", "db_pool_pending", "DB pool")
    ax.text(0.005, 0.95, "active ─   pending ┄", transform=ax.transAxes, fontsize=7, va="top")


def _heap(ax: Axes, v: View) -> None:
    _per_host(ax, v, "heap_used_bytes", "heap_max_bytes", "heap GiB", 1 / 2**30, ":")
    gc = np.nansum([v(s["gc_pause_s"]) for s in v.s.app_hosts.values()], axis=0) \
        if v.s.app_hosts else np.zeros(len(v.x))
    twin = ax.twinx()
    twin.fill_between(v.x, gc, step="mid", color="#999999", alpha=0.35, lw=0)
    twin.set_ylabel("GC s/min", fontsize=7)
    twin.tick_params(labelsize=7)
    twin.set_ylim(bottom=0, top=max(1.0, float(np.nanmax(gc, initial=0.0)) * 1.1))
    ax.text(0.005, 0.95, "used ─   max ┈   GC pauses (all hosts) ▒", transform=ax.transAxes,
            fontsize=7, va="top")


def _breaker(ax: Axes, v: View) -> None:
    hosts = list(v.s.app_hosts)
    if not hosts or len(v.x) == 0:
        return
    rows = []
    for h in hosts:
        s = v.s.app_hosts[h]
        state = v(s["breaker_state"]).copy()
        state[v(s["stopped"]) > 0] = 3
        rows.append(state)
    grid = np.ma.masked_invalid(np.array(rows, dtype=float))
    ax.pcolormesh(v.edges, np.arange(len(hosts) + 1), grid, cmap=BREAKER_COLORS, vmin=-0.5,
                  vmax=3.5, shading="flat")
    ax.set_yticks(np.arange(len(hosts)) + 0.5, hosts, fontsize=7)
    ax.set_ylim(len(hosts), 0)
    ax.set_ylabel("breaker")
    handles = [matplotlib.patches.Patch(color=BREAKER_COLORS(i), label=label)
               for i, label in enumerate(BREAKER_LABELS)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7,
              frameon=False)


def _cpu(ax: Axes, v: View) -> None:
    _per_host(ax, v, "cpu", None, "CPU %", 100.0)
    ax.set_ylim(0, 105)
    ax.set_yticks([0, 50, 100])


def _database(ax: Axes, v: View) -> None:
    for host, s in v.s.database.items():
        ax.plot(v.x, v(s["cache_hit_ratio"]), color="#8c564b", lw=1, label=f"{host} cache hit")
    ax.set_ylabel("DB cache")
    ax.set_ylim(-0.02, 1.02)
    ax.set_yticks([0, 0.5, 1])
    _legend(ax)


def _gateway(ax: Axes, v: View) -> None:
    twin = ax.twinx()
    for host, s in v.s.gateway.items():
        ax.plot(v.x, v(s["latency_p95_ms"]), color="#9467bd", lw=1, label=f"{host} p95")
        twin.fill_between(v.x, v(s["timeouts"]), step="mid", color="#d62728", alpha=0.5,
                          lw=0, label="timeouts/min")
    _log_y(ax)
    ax.set_ylabel("gateway ms")
    twin.set_ylabel("timeouts/min", fontsize=7)
    twin.tick_params(labelsize=7)
    twin.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.04, 1.0), fontsize=7,
                  frameon=False)


def _perf_hits(ax: Axes, v: View) -> None:
    ax.fill_between(v.x, v(v.s.perf_hits), step="mid", color="#d62728", lw=0)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("≥5 s errors")
    ax.text(0.005, 0.95, 'the seed\'s "Find Performance Incidents" hits per minute',
            transform=ax.transAxes, fontsize=7, va="top")


Panel = tuple[Callable[[Axes, View], None], float]
PANELS: list[Panel] = [
    (_requests, 1.0), (_latency, 1.3), (_errors, 1.4), (_threads, 1.1), (_db_pool, 1.0),
    (_heap, 1.1), (_breaker, 0.8), (_cpu, 0.9), (_database, 0.8), (_gateway, 1.0),
]


def _mark_changes(axes: list[Axes], changes: list[dict[str, Any]], lo: np.datetime64,
                  hi: np.datetime64) -> list[tuple[Any, str, str]]:
    """Each change in view as a dashed line through every panel (a deploy's rollout also as a
    band along the bottom); returns their labels for above the top panel."""
    labels: list[tuple[Any, str, str]] = []
    for c in changes:
        x: Any = np.datetime64(int(c["epoch"]), "s")
        if not lo <= x < hi:
            continue
        end: Any = np.datetime64(int(epoch_s(c["end"])), "s")
        for ax in axes:
            ax.axvline(x, color=CHANGE_COLOR, lw=0.8, ls="--", alpha=0.8)
            if end > x:
                ax.axvspan(x, end, ymin=0.0, ymax=0.03, color=CHANGE_COLOR, alpha=0.5, lw=0)
        labels.append((x, f"{c['kind'].replace('_', ' ')} {c['id']}", CHANGE_COLOR))
    return labels


def _shade(axes: list[Axes], incidents: list[dict[str, Any]], numbers: dict[str, int],
           label_ax: Axes, lo: np.datetime64, hi: np.datetime64,
           labels: list[tuple[Any, str, str]]) -> None:
    """Incident phase red, recovery amber, the cause hatched; a label above the top panel,
    among ``labels`` (the changes')."""
    for rec in incidents:
        fs, fe = (np.datetime64(int(epoch_s(rec[k])), "s") for k in ("fault_start", "fault_end"))
        spans = []
        if rec.get("symptom_start"):
            ss, ie, se = (np.datetime64(int(epoch_s(rec[k])), "s")
                          for k in ("symptom_start", "incident_end", "symptom_end"))
            spans = [(ss, ie, INCIDENT_COLOR), (ie, se, RECOVERY_COLOR)]
        for ax in axes:
            for a, b, color in spans:
                if b > a:
                    ax.axvspan(a, b, color=color, alpha=0.13, lw=0)
            ax.axvspan(fs, fe, ymin=0.97, ymax=1.0, facecolor="none", edgecolor="#555555",
                       hatch="////", lw=0)
        if lo <= fs < hi:
            labels.append((fs, f"#{numbers[rec['incident_id']]} {rec['incident_type']}",
                           INCIDENT_COLOR))
    # labels in up to LABEL_ROWS rows, each placed in the lowest row where it does not
    # overlap the one before it (widths estimated from the text length)
    width_pt = label_ax.get_position().width * label_ax.figure.get_figwidth() * 72.0
    span = float((hi - lo).astype(float))
    row_ends = [-1.0] * LABEL_ROWS
    for x, text, color in sorted(labels):
        start = float((x - lo).astype(float)) / span
        row = next((r for r, end in enumerate(row_ends) if start > end), None)
        if row is None:
            row = int(np.argmin(row_ends))
        row_ends[row] = start + (len(text) * 4.3 + 6) / width_pt
        label_ax.annotate(text, xy=(x, 1.0), xycoords=("data", "axes fraction"),
                          xytext=(2, 2 + 9 * row), textcoords="offset points", fontsize=7,
                          ha="left", va="bottom", color=color, annotation_clip=False)


def _chain_lane(ax: Axes, rec: dict[str, Any], lo: np.datetime64, hi: np.datetime64) -> None:
    """The cause, the first resource to give way and each step after it, on the time axis."""
    steps: list[tuple[float, str, str]] = [
        (epoch_s(rec["fault_start"]), "cause",
         f"{rec['cause'].get('fault_type') or rec['cause'].get('id')} starts"
         if isinstance(rec.get("cause"), dict) else "cause starts"),
    ]
    for i, e in enumerate(rec.get("saturation_order") or []):
        label = f"{e['component']} {e['event']}" + (" (first)" if i == 0 else "")
        steps.append((epoch_s(e["at"]), "step", label))
    steps.append((epoch_s(rec["fault_end"]), "cause", "cause ends"))
    first_of_rule: dict[str, dict[str, Any]] = {}
    for alert in rec.get("alerts") or []:
        first_of_rule.setdefault(alert["rule_id"], alert)
    for alert in first_of_rule.values():  # each rule's first page
        on = f" on {alert['on']}" if alert.get("on") else ""
        steps.append((epoch_s(alert["fired"]), "alert", f"ALERT {alert['rule_id']}{on}"))
    if rec.get("symptom_end"):
        steps.append((epoch_s(rec["symptom_end"]), "end", "recovered"))
    steps.sort(key=lambda s: s[0])
    n = len(steps)
    span = (hi - lo).astype(float)
    for e in rec.get("chain") or []:
        ax.plot(np.datetime64(int(epoch_s(e["at"])), "s"), 0.02, "|", color="#888888", ms=6)
    for k, (t, kind, label) in enumerate(steps):
        x = np.datetime64(int(t), "s")
        y = 1.0 - (k + 0.7) / (n + 0.4)
        color = {"cause": "#555555", "step": INCIDENT_COLOR, "end": "#2ca02c",
                 "alert": ALERT_COLORS["critical"]}[kind]
        ax.plot([x, x], [0.0, y], color=color, lw=0.6)
        ax.plot(x, y, "o", color=color, ms=4)
        left = (x - lo).astype(float) < 0.6 * span
        when = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M:%S")
        ax.annotate(f"{when} {label}", (x, y), xytext=(4 if left else -4, 0),
                    textcoords="offset points", fontsize=7, va="center",
                    ha="left" if left else "right")
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel("chain")


ALERT_COLORS = {"critical": "#7b2d8e", "warning": "#c9a400"}


def _alert_marks(ax: Axes, incidents: list[dict[str, Any]], false_alarms: list[dict[str, Any]],
                 lo: np.datetime64, hi: np.datetime64) -> None:
    """A triangle at the top of ``ax`` where an alert fired (critical purple, warning
    yellow); hollow for a false alarm (no incident's)."""
    fired = [(a, True) for rec in incidents for a in rec.get("alerts") or []]
    fired += [(a, False) for a in false_alarms]
    for alert, ours in fired:
        x = np.datetime64(int(epoch_s(alert["fired"])), "s")
        if lo <= x < hi:
            color = ALERT_COLORS.get(alert.get("severity", ""), "#555555")
            ax.plot(x, 0.93, "v", transform=ax.get_xaxis_transform(), ms=5, clip_on=False,
                    color=color, markerfacecolor=color if ours else "none")


def _format_time(ax: Axes, lo: np.datetime64, hi: np.datetime64) -> None:
    locator = mdates.AutoDateLocator(tz=dt.UTC, minticks=6, maxticks=14)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=dt.UTC))
    ax.set_xlim(lo, hi)


def draw(path: Path, s: Series, lo: int, hi: int, incidents: list[dict[str, Any]],
         numbers: dict[str, int], focus: dict[str, Any] | None = None,
         false_alarms: list[dict[str, Any]] | None = None) -> None:
    """One PNG: the panels over minutes [lo, hi), with a chain lane when ``focus`` is given."""
    v = View(s, lo, hi)
    panels = list(PANELS)
    if focus is not None:
        panels = [(lambda ax, v: None, 1.9), (_perf_hits, 0.8), *panels]
    ratios = [r for _, r in panels]
    fig = Figure(figsize=(WIDTH_IN, sum(ratios) * 1.15 + 0.75), dpi=DPI)
    # not sharex: shared axes would all build the time ticks; only the bottom one shows them
    axes = fig.subplots(len(panels), 1, gridspec_kw={"height_ratios": ratios})
    fig.subplots_adjust(left=0.075, right=0.8, top=1 - 0.5 / fig.get_figheight(),
                        bottom=0.45 / fig.get_figheight(), hspace=0.12)
    x_lo = np.datetime64(int(s.epochs[lo]), "s")
    x_hi = np.datetime64(int(s.epochs[hi - 1]) + 60, "s")
    for ax, (panel, _) in zip(axes, panels, strict=True):
        if ax.get_yscale() == "linear":
            ax.yaxis.set_major_locator(MaxNLocator(4))
        panel(ax, v)
        ax.tick_params(labelsize=7)
        ax.yaxis.label.set_fontsize(8)
        ax.set_xlim(x_lo, x_hi)
        if ax is not axes[-1]:
            ax.xaxis.set_major_locator(NullLocator())
            ax.xaxis.set_minor_locator(NullLocator())
    if focus is not None:
        _chain_lane(axes[0], focus, x_lo, x_hi)
    changes = _mark_changes(list(axes), s.changes, x_lo, x_hi)
    _shade(list(axes), incidents, numbers, axes[0], x_lo, x_hi, changes)
    _alert_marks(axes[1] if focus is not None else axes[0], incidents, false_alarms or [],
                 x_lo, x_hi)
    _format_time(axes[-1], x_lo, x_hi)
    fig.savefig(path, format="png", metadata={"Software": None})
