"""Report files of a scenario run: the `.hgrm` percentile distribution and an HTML latency plot.

The plot is a self-contained HTML page with inline SVG (no plotting package is installed on
the benchmark machines): per change, P50/P99/max as lines, and the pooled percentile curve on
the usual HdrHistogram log axis (1 - 1/(1-p)). The value axis fits the data (a 30 ms run fills
the plot instead of lying flat under a 500 ms objective); the objective is drawn as a dashed
line when it is on the axis and named above the plot when it is not. Scenario figures that
are records (the storm, the overload) become aligned key-value tables (:func:`table_lines`).
Pure functions turn figures into text; `write_*` do the IO.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

W, H, PAD = 640, 300, 48


def hgrm_text(hist: HdrHistogram) -> str:
    """HdrHistogram's standard percentile distribution, values in milliseconds."""
    buf = io.BytesIO()
    hist.output_percentile_distribution(buf, 1000.0)  # recorded in µs
    return buf.getvalue().decode()


def _polyline(points: list[tuple[float, float]], colour: str) -> str:
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>'


def _frame(title: str, body: list[str], x_label: str, y_label: str) -> str:
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}">',
        f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="14">{html.escape(title)}</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="black"/>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{PAD}" y2="24" stroke="black"/>',
        f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle" font-size="12">{x_label}</text>',
        f'<text x="12" y="{H / 2}" font-size="12" transform="rotate(-90 12 {H / 2})" '
        f'text-anchor="middle">{y_label}</text>',
        *body, "</svg>",
    ])  # fmt: skip


def axis_top(values: Iterable[float]) -> float:
    """The top of a value axis from 0 that holds ``values`` with a tenth to spare, rounded up
    to 1, 2, 2.5 or 5 times a power of ten (1 when there is nothing finite above 0)."""
    high = max((v for v in values if math.isfinite(v)), default=0.0) * 1.1
    if high <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(high))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if high <= step * power * (1 + 1e-9):
            return step * power
    return 10.0 * power


def _tick(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.2g}"


def _target(slo_ms: float, top: float, y: Callable[[float], float]) -> list[str]:
    """The objective: a dashed line when it is on the axis, else a note under the title."""
    if slo_ms <= top:
        return [f'<line x1="{PAD}" y1="{y(slo_ms):.1f}" x2="{W - 10}" y2="{y(slo_ms):.1f}" '
                f'stroke="red" stroke-dasharray="6,4"/>',
                f'<text x="{W - 12}" y="{y(slo_ms) - 4:.1f}" text-anchor="end" font-size="11" '
                f'fill="red">target {slo_ms:.0f} ms</text>']  # fmt: skip
    return [f'<text x="{W - 12}" y="34" text-anchor="end" font-size="11" fill="red">target '
            f'{slo_ms:.0f} ms: above this axis (top {_tick(top)} ms)</text>']


def _y_ticks(top: float, y: Callable[[float], float]) -> list[str]:
    return [f'<text x="{PAD - 4}" y="{y(top * frac) + 4:.1f}" text-anchor="end" '
            f'font-size="10">{_tick(top * frac)}</text>' for frac in (0.25, 0.5, 0.75, 1.0)]


def rounds_svg(rows: list[dict[str, Any]], *, slo_ms: float, title: str) -> str:
    """P50/P99/max per change (ms) on an axis that fits them, and the objective."""
    if not rows:
        return ""
    top = axis_top(r[k] for r in rows for k in ("p50_ms", "p99_ms", "max_ms"))
    n = len(rows)

    def x(i: int) -> float:
        return float(PAD + (W - PAD - 20) * (i / max(1, n - 1)))

    def y(v: float) -> float:
        return float((H - PAD) - (H - PAD - 30) * (v / top))

    body = _target(slo_ms, top, y) + _y_ticks(top, y)
    for key, colour in (("p50_ms", "#4a90d9"), ("p99_ms", "#e08a00"), ("max_ms", "#888")):
        body.append(_polyline([(x(i), y(r[key])) for i, r in enumerate(rows)], colour))
        body.append(f'<text x="{x(n - 1) + 2:.1f}" y="{y(rows[-1][key]):.1f}" font-size="10" '
                    f'fill="{colour}">{key[:-3]}</text>')  # fmt: skip
    for i, r in enumerate(rows):
        body.append(f'<text x="{x(i):.1f}" y="{H - PAD + 14}" text-anchor="middle" '
                    f'font-size="10">{r["seq"]}</text>')  # fmt: skip
    return _frame(title, body, "change (seq)", "propagation ms")


def percentile_svg(hist: HdrHistogram, *, slo_ms: float, title: str) -> str:
    """Latency (ms) against percentile on a log axis of 1/(1-p), up to 99.99 %."""
    if hist.get_total_count() == 0:
        return ""
    pcts = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99]
    vals = [hist.get_value_at_percentile(p) / 1000 for p in pcts]
    top = axis_top(vals)

    def x(p: float) -> float:
        return PAD + (W - PAD - 20) * math.log10(1 / (1 - p / 100)) / 4

    def y(v: float) -> float:
        return float((H - PAD) - (H - PAD - 30) * (v / top))

    body = [_polyline([(x(p), y(v)) for p, v in zip(pcts, vals, strict=True)], "#e08a00"),
            *_target(slo_ms, top, y), *_y_ticks(top, y)]
    for p in (0, 90, 99, 99.9, 99.99):
        body.append(f'<text x="{x(p):.1f}" y="{H - PAD + 14}" text-anchor="middle" '
                    f'font-size="10">{p}%</text>')  # fmt: skip
    return _frame(title, body, "percentile", "propagation ms")


MAX_TABLE_ITEMS = 20  # a list longer than this shows its first items and how many more


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _flat(prefix: str, value: Any) -> list[tuple[str, str]]:
    """(key, text) rows of ``value``: records and lists of records unfold into dotted keys,
    a list of plain values stays one row."""
    if isinstance(value, Mapping):
        if not value:
            return [(prefix, "none")]
        return [row for k, v in value.items() for row in _flat(f"{prefix}.{k}" if prefix
                                                                 else str(k), v)]
    if isinstance(value, list | tuple):
        shown = list(value[:MAX_TABLE_ITEMS])
        more = [(f"{prefix}[...]", f"{len(value) - len(shown)} more")][:len(value) - len(shown)]
        if all(not isinstance(v, Mapping | list | tuple) for v in shown):
            return [(prefix, ", ".join(_cell(v) for v in shown) or "none"), *more]
        return [*(row for i, v in enumerate(shown) for row in _flat(f"{prefix}[{i}]", v)),
                *more]
    return [(prefix, _cell(value))]


def table_lines(title: str, record: Mapping[str, Any]) -> list[str]:
    """``record`` as a titled two-column text table, keys aligned, one figure a line."""
    rows = _flat("", record)
    width = max((len(k) for k, _ in rows), default=0)
    return [f"== {title}", *(f"{k:<{width}}  {v}" for k, v in rows), ""]


def html_page(title: str, sections: list[tuple[str, str]], text: str) -> str:
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<h1>{html.escape(title)}</h1>"]  # fmt: skip
    for heading, svg in sections:
        if svg:
            parts += [f"<h2>{html.escape(heading)}</h2>", svg]
    parts.append(f"<h2>Report</h2><pre>{html.escape(text)}</pre>")
    return "\n".join(parts)


def write_report(out_dir: Path, name: str, *, text: str, hist: HdrHistogram | None,
                 sections: list[tuple[str, str]]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{name}.txt"]
    written[0].write_text(text + "\n")
    if hist is not None and hist.get_total_count():
        path = out_dir / f"{name}.hgrm"
        path.write_text(hgrm_text(hist))
        written.append(path)
    page = out_dir / f"{name}.html"
    page.write_text(html_page(name, sections, text))
    written.append(page)
    return written
