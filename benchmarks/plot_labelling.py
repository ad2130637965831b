"""The labelling loop's curves as one SVG: accuracy after each action, one panel per report.

    python -m benchmarks.plot_labelling OUT.svg REPORT.json [REPORT.json ...] [--title T ...]

Each report is the JSON of ``bulk-panel evaluate FOLDER --labelling --json``. A panel draws
accuracy (0..1) against the simulated person's actions, one line per approach, with the kNN
ceiling dashed and 0.9 × the ceiling dotted; its title is the matching ``--title``, else the
report's folder. Standard library only: the SVG is built as text (docs/labelling-curves.svg).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence
from xml.sax.saxutils import escape, quoteattr

COLOURS = ("#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
WIDTH, HEIGHT = 440, 330                # one panel
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 34, 46  # the axes' margins inside a panel
LEGEND = 30                              # the legend's row under the panels


def _text(x: float, y: float, text: str, anchor: str = "middle", **attrs: str) -> str:
    extra = "".join(f" {k.replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def panel(report: dict, title: str, colours: dict[str, str], dx: float) -> list[str]:
    """One panel's SVG elements, its left edge at ``dx``."""
    lab = report["labelling"]
    x0, x1, y0, y1 = dx + LEFT, dx + WIDTH - RIGHT, HEIGHT - BOTTOM, TOP

    def sx(action: float) -> float:
        return x0 + (x1 - x0) * action / lab["actions"]

    def sy(accuracy: float) -> float:
        return y0 - (y0 - y1) * accuracy

    out = [_text(dx + WIDTH / 2, 20, title, font_weight="bold", font_size="14")]
    for tick in (i / 10 for i in range(11)):
        y = sy(tick)
        out.append(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        if round(tick * 10) % 2 == 0:
            out.append(_text(x0 - 6, y + 4, f"{tick:.1f}", anchor="end"))
    step = 5 if lab["actions"] > 10 else 1
    for action in range(0, lab["actions"] + 1, step):
        out.append(f'<line x1="{sx(action):.1f}" y1="{y0}" x2="{sx(action):.1f}" y2="{y0 + 4}" stroke="#333"/>')
        out.append(_text(sx(action), y0 + 17, str(action)))
    out.append(f'<path d="M{x0},{y1} V{y0} H{x1}" fill="none" stroke="#333"/>')
    out.append(_text((x0 + x1) / 2, HEIGHT - 10, f"actions (name a cluster, or a page of {lab['page']})"))
    out.append(_text(dx + 16, (y0 + y1) / 2, "accuracy (all images)",
                     transform=f"rotate(-90 {dx + 16} {(y0 + y1) / 2:.1f})"))
    ceiling = lab["ceiling"]
    for share, dash, name in ((1.0, "6 4", "kNN ceiling"), (0.9, "2 3", "0.9 × ceiling")):
        y = sy(share * ceiling)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#555" stroke-dasharray="{dash}"/>')
        out.append(_text(x0 + 4, y - 4, f"{name} {share * ceiling:.3f}", anchor="start", font_size="10", fill="#555"))
    for name, run in lab["approaches"].items():
        points = " ".join(f"{sx(r['action']):.1f},{sy(r['accuracy']):.1f}" for r in run["curve"])
        out.append(f'<polyline points="{points}" fill="none" stroke="{colours[name]}" stroke-width="2"/>')
    return out


def plot(reports: Sequence[dict], titles: Sequence[str]) -> str:
    """The whole SVG: the panels side by side, one legend for all under them."""
    names = list(dict.fromkeys(n for r in reports for n in r["labelling"]["approaches"]))
    colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}
    width, height = WIDTH * len(reports), HEIGHT + LEGEND
    body = [f'<rect width="{width}" height="{height}" fill="white"/>']
    for i, (report, title) in enumerate(zip(reports, titles)):
        body += panel(report, title, colours, i * WIDTH)
    x = LEFT
    for name in names:
        body.append(f'<line x1="{x}" y1="{HEIGHT + 12}" x2="{x + 24}" y2="{HEIGHT + 12}" '
                    f'stroke="{colours[name]}" stroke-width="2"/>')
        body.append(_text(x + 30, HEIGHT + 16, name, anchor="start"))
        x += 48 + 6 * len(name)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">\n'
            + "\n".join(body) + "\n</svg>\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plot_labelling", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the SVG to write")
    parser.add_argument("reports", type=Path, nargs="+", help="JSON of bulk-panel evaluate --labelling --json")
    parser.add_argument("--title", nargs="+", action="extend", default=[],
                        help="one panel title per report, in order (default: its folder)")
    args = parser.parse_args(argv)
    reports = [json.loads(path.read_text()) for path in args.reports]
    if not all(r.get("labelling") for r in reports):
        parser.error("a report has no labelling: run bulk-panel evaluate with --labelling --json")
    titles = [args.title[i] if i < len(args.title) else r.get("folder", "") for i, r in enumerate(reports)]
    args.out.write_text(plot(reports, titles), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
