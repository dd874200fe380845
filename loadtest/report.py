"""Report files of a scenario run: the `.hgrm` percentile distribution and an HTML latency plot.

The plot is a self-contained HTML page with inline SVG (no plotting package is installed on
the benchmark machines): per change, P50/P99/max as lines against the 500 ms objective, and the
pooled percentile curve on the usual HdrHistogram log axis (1 - 1/(1-p)). Pure functions turn
figures into text; `write_*` do the IO.
"""

from __future__ import annotations

import html
import io
import math
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


def rounds_svg(rows: list[dict[str, Any]], *, slo_ms: float, title: str) -> str:
    """P50/P99/max per change (ms), and the objective as a dashed line."""
    if not rows:
        return ""
    top = max(slo_ms * 1.1, *(r["max_ms"] for r in rows if not math.isnan(r["max_ms"])))
    n = len(rows)

    def x(i: int) -> float:
        return float(PAD + (W - PAD - 20) * (i / max(1, n - 1)))

    def y(v: float) -> float:
        return float((H - PAD) - (H - PAD - 30) * (v / top))

    body = [f'<line x1="{PAD}" y1="{y(slo_ms):.1f}" x2="{W - 10}" y2="{y(slo_ms):.1f}" '
            f'stroke="red" stroke-dasharray="6,4"/>',
            f'<text x="{W - 12}" y="{y(slo_ms) - 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="red">{slo_ms:.0f} ms</text>']  # fmt: skip
    for key, colour in (("p50_ms", "#4a90d9"), ("p99_ms", "#e08a00"), ("max_ms", "#888")):
        body.append(_polyline([(x(i), y(r[key])) for i, r in enumerate(rows)], colour))
        body.append(f'<text x="{x(n - 1) + 2:.1f}" y="{y(rows[-1][key]):.1f}" font-size="10" '
                    f'fill="{colour}">{key[:-3]}</text>')  # fmt: skip
    for frac in (0.25, 0.5, 0.75, 1.0):
        v = top * frac
        body.append(f'<text x="{PAD - 4}" y="{y(v) + 4:.1f}" text-anchor="end" '
                    f'font-size="10">{v:.0f}</text>')  # fmt: skip
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
    top = max(slo_ms * 1.1, max(vals))

    def x(p: float) -> float:
        return PAD + (W - PAD - 20) * math.log10(1 / (1 - p / 100)) / 4

    def y(v: float) -> float:
        return float((H - PAD) - (H - PAD - 30) * (v / top))

    body = [_polyline([(x(p), y(v)) for p, v in zip(pcts, vals, strict=True)], "#e08a00"),
            f'<line x1="{PAD}" y1="{y(slo_ms):.1f}" x2="{W - 10}" y2="{y(slo_ms):.1f}" '
            f'stroke="red" stroke-dasharray="6,4"/>']  # fmt: skip
    for p in (0, 90, 99, 99.9, 99.99):
        body.append(f'<text x="{x(p):.1f}" y="{H - PAD + 14}" text-anchor="middle" '
                    f'font-size="10">{p}%</text>')  # fmt: skip
    for frac in (0.5, 1.0):
        body.append(f'<text x="{PAD - 4}" y="{y(top * frac) + 4:.1f}" text-anchor="end" '
                    f'font-size="10">{top * frac:.0f}</text>')  # fmt: skip
    return _frame(title, body, "percentile", "propagation ms")


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
