"""Inline SVG charts drawn in Python, for the self-contained HTML pages (`rulesctl report … --format
html` and `rulesctl simulate --format html`): no script, no network. Input: labels and numbers.
Output: an `<svg>` string, with a `<title>` tooltip on every bar, cell and line. Every text is
escaped here; callers pass plain strings.

Two families share the `<svg>` frame and the text element: the reports' charts (`percent_bars`,
`stacked_columns`, `heatmap`) carry their own fonts and colours and a `<title>` naming the chart;
the simulation's (`line_chart`, `bar_chart`) are sized for two side by side and take their font
from the page's stylesheet (`svg text`), which the `chart` class marks them for."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from html import escape

FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
GOOD, FAIR, POOR, NEUTRAL = "#2e7d32", "#f9a825", "#c62828", "#9e9e9e"
CHAR_WIDTH = 7.4          # px per character at 12px (generous), to size label columns without a browser
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")
WIDTH, HEIGHT, PAD = 460, 220, 40       # the simulation's charts: two fit side by side


def svg(body: Sequence[str], width: float, height: float, *, title: str | None = None,
        css_class: str | None = None, style: str | None = None) -> str:
    """The frame every chart is drawn in; `title` (the chart's name) becomes its first child."""
    attributes = f' class="{css_class}"' if css_class else ""
    attributes += (f' xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
                   f'width="{width:.0f}" height="{height:.0f}" role="img"')
    attributes += f' style="{style}"' if style else ""
    named = f"<title>{escape(title)}</title>" if title is not None else ""
    return f"<svg{attributes}>{named}{''.join(body)}</svg>"


def text(x: float, y: float, content: str, anchor: str = "start", **presentation: str | int) -> str:
    """A `<text>` at (x, y); presentation attributes by keyword, `_` for `-` (font_size=11).
    Without them the page's stylesheet decides the font."""
    extra = "".join(f' {name.replace("_", "-")}="{value}"' for name, value in presentation.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(content)}</text>'


# --------------------------------------------------------------------------- the reports' charts

def attainment_colour(percent: float | None) -> str:
    if percent is None:
        return NEUTRAL
    return GOOD if percent >= 95 else FAIR if percent >= 80 else POOR


def _report_svg(title: str, width: float, height: float, body: list[str]) -> str:
    return svg(body, width, height, title=title, style=f"{FONT};max-width:100%;height:auto")


def _label(x: float, y: float, content: str, anchor: str = "start", size: int = 12, fill: str = "#333",
           weight: str = "normal") -> str:
    return text(x, y, content, anchor, font_size=size, fill=fill, font_weight=weight, dominant_baseline="middle")


def percent_bars(title: str, items: Sequence[tuple[str, float | None, str]], width: int = 960) -> str:
    """Horizontal bars on a 0-100% scale, coloured good/fair/poor: (label, percent, note)."""
    bar_h, gap, top, axis = 24, 10, 10, 28
    label_w = min(260, max((len(label) for label, _, _ in items), default=4) * CHAR_WIDTH + 16)
    plot_w = width - label_w - 150
    height = top + len(items) * (bar_h + gap) + axis
    body = []
    for tick in range(0, 101, 25):
        x = label_w + plot_w * tick / 100
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - axis + 2}" stroke="#e0e0e0"/>')
        body.append(_label(x, height - axis + 14, f"{tick}%", "middle", 11, "#757575"))
    for index, (label, value, note) in enumerate(items):
        y = top + index * (bar_h + gap)
        body.append(_label(label_w - 10, y + bar_h / 2, label, "end"))
        shown = f"{value:.1f}%" if value is not None else "-"
        if value is not None:
            tip = escape(f"{label}: {shown} ({note})")
            body.append(f'<rect x="{label_w}" y="{y}" width="{plot_w * value / 100:.1f}" height="{bar_h}" rx="3" '
                        f'fill="{attainment_colour(value)}"><title>{tip}</title></rect>')
        bar_end = label_w + plot_w * (value or 0) / 100
        body.append(_label(bar_end + 8, y + bar_h / 2, f"{shown}  {note}" if value is not None else note,
                           size=12, fill="#424242"))
    return _report_svg(title, width, height, body)


def stacked_columns(title: str, groups: Sequence[tuple[str, Sequence[tuple[str, Sequence[int]]]]],
                    series: Sequence[tuple[str, str]], width: int = 960) -> str:
    """Columns in groups, each column a stack: groups = [(group label, [(column label, [value per
    series])])], series = [(name, colour)] bottom up."""
    left, top, bottom, height = 40, 48, 58, 310
    columns = sum(len(cols) for _, cols in groups)
    slot = min(64.0, (width - left - 10) / max(columns + len(groups), 1))
    peak = max((sum(values) for _, cols in groups for _, values in cols), default=0) or 1
    scale = (height - top - bottom) / _ticks(peak)[-1]
    body = []
    for index, (name, colour) in enumerate(series):
        key_x = left + index * 170
        body.append(f'<rect x="{key_x}" y="8" width="12" height="12" rx="2" fill="{colour}"/>')
        body.append(_label(key_x + 18, 14, name, size=12))
    base = float(height - bottom)
    right = max(left + slot * (columns + len(groups)), 400.0)
    for tick in _ticks(peak):
        y = base - tick * scale
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        body.append(_label(left - 6, y, str(tick), "end", 11, "#757575"))
    x = left + slot / 2
    for group, cols in groups:
        start = x
        for label, values in cols:
            y = base
            for (name, colour), value in zip(series, values, strict=True):
                if value:
                    body.append(f'<rect x="{x + 3:.1f}" y="{y - value * scale:.1f}" width="{slot - 6:.1f}" '
                                f'height="{value * scale:.1f}" fill="{colour}">'
                                f"<title>{escape(f'{group} {label}: {value} {name}')}</title></rect>")
                    y -= value * scale
            total = sum(values)
            body.append(_label(x + slot / 2, y - 9, str(total), "middle", 11, "#424242", "bold"))
            body.append(_label(x + slot / 2, base + 12, label, "middle", 11, "#616161"))
            x += slot
        body.append(_label((start + x) / 2, base + 34, group, "middle", 12, "#212121", "bold"))
        x += slot
    body.append(f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#9e9e9e"/>')
    return _report_svg(title, min(width, right + 10), height, body)


def _ticks(peak: int) -> list[int]:
    """0 up to at least peak in 3-5 round steps (1, 2 or 5 times a power of ten)."""
    raw = max(peak / 4, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))
    return list(range(0, peak + step, step)) if peak % step else list(range(0, peak + 1, step))


def heat_colour(percent: float | None) -> str:
    """White through blue to a deep red above 100% (over capacity); grey when unknown."""
    if percent is None:
        return "#eeeeee"
    if percent > 100:
        return "#b71c1c"
    shade = percent / 100
    red, green, blue = (int(255 - shade * (255 - c)) for c in (21, 101, 192))
    return f"#{red:02x}{green:02x}{blue:02x}"


def heatmap(title: str, rows: Sequence[str], columns: Sequence[str],
            values: Mapping[tuple[str, str], tuple[float | None, str]], width: int = 1000) -> str:
    """A grid of percentages: values[(row, column)] = (percent or None, tooltip). Missing = no data."""
    label_w = min(260, max((len(r) for r in rows), default=4) * CHAR_WIDTH + 16)
    cell_w = max(18.0, min(60.0, (width - label_w - 10) / max(len(columns), 1)))
    cell_h, top = 26, 40
    width = int(max(label_w + cell_w * len(columns) + 10, label_w + 5 * 120 + 10))
    height = top + cell_h * len(rows) + 46
    body = []
    every = max(1, -(-48 // int(cell_w)))      # column labels that fit
    for index, column in enumerate(columns):
        if index % every == 0:
            body.append(_label(label_w + (index + 0.5) * cell_w, top - 12, column, "middle", 11, "#616161"))
    for r, row in enumerate(rows):
        y = top + r * cell_h
        body.append(_label(label_w - 10, y + cell_h / 2, row, "end"))
        for c, column in enumerate(columns):
            if (row, column) not in values:
                continue
            percent, tip = values[(row, column)]
            x = label_w + c * cell_w
            body.append(f'<rect x="{x + 1:.1f}" y="{y + 1}" width="{cell_w - 2:.1f}" height="{cell_h - 2}" rx="2" '
                        f'fill="{heat_colour(percent)}"><title>{escape(tip)}</title></rect>')
            if percent is not None and cell_w >= 34:
                body.append(_label(x + cell_w / 2, y + cell_h / 2, f"{percent:.0f}", "middle", 10,
                                   "#ffffff" if percent > 55 else "#212121"))
    legend_y = top + cell_h * len(rows) + 18
    for index, (percent, name) in enumerate([(0.0, "0%"), (50.0, "50%"), (100.0, "100%"), (101.0, "over 100%"),
                                             (None, "nobody available")]):
        x = label_w + index * 120
        body.append(f'<rect x="{x}" y="{legend_y - 6}" width="14" height="14" rx="2" fill="{heat_colour(percent)}" '
                    f'stroke="#bdbdbd"/>')
        body.append(_label(x + 20, legend_y + 1, name, size=11, fill="#616161"))
    return _report_svg(title, width, height, body)


# ------------------------------------------------------------------------ the simulation's charts

def line_chart(lines: Mapping[str, tuple[Sequence[int], Sequence[float | None]]], colour: Mapping[str, str],
               top: float, share: bool) -> str:
    """One line per name over time: lines[name] = (epoch seconds, values; None = no point).
    `top` is the y axis' end, `share` labels it as a percentage."""
    times = [t for xs, _ in lines.values() for t in xs]
    first, last = (min(times), max(times)) if times else (0, 1)
    span = max(last - first, 1)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x(t: int) -> float:
        return PAD + (t - first) / span * inner_w

    def y(v: float) -> float:
        return HEIGHT - PAD - min(v, top) / top * inner_h

    parts = _axes(top, share)
    for name, (xs, ys) in sorted(lines.items()):
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(xs, ys, strict=True) if v is not None)
        if points:
            parts.append(f"<polyline fill=\"none\" stroke=\"{colour[name]}\" stroke-width=\"1.2\" "
                         f"points=\"{points}\"><title>{escape(name)}</title></polyline>")
    for t in (first, last):
        day = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%d %b %H:%M")
        parts.append(text(x(t), HEIGHT - PAD + 16, f"{day} UTC", "start" if t == first else "end"))
    return svg(parts, WIDTH, HEIGHT, css_class="chart")


def bar_chart(labels: Sequence[str], values: Sequence[int], top: float) -> str:
    """Vertical bars with slanted labels under them; `top` is the y axis' end."""
    below = int(max([4] + [len(label) for label in labels]) * 4.6) + 10     # room for the slanted labels
    height = HEIGHT + below - PAD
    inner_w, inner_h = WIDTH - PAD - max(PAD, int(below * 0.7)), height - PAD - below   # slanted labels reach right
    step = inner_w / max(len(values), 1)
    parts = _axes(top, False, bottom=below, height=height)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = value / top * inner_h
        left = PAD + i * step + 1
        base = height - below
        parts.append(f"<rect class=\"bar\" x=\"{left:.1f}\" y=\"{base - h:.1f}\" width=\"{max(step - 2, 1):.1f}\" "
                     f"height=\"{h:.1f}\" fill=\"#4c78a8\"><title>{escape(label)}: {value:,}</title></rect>")
        parts.append(text(0, 0, label, transform=f"translate({left + step / 2:.1f},{base + 6}) rotate(45)"))
    return svg(parts, WIDTH, height, css_class="chart")


def _axes(top: float, share: bool, bottom: int = PAD, height: int = HEIGHT) -> list[str]:
    """The x and y axis lines, the y axis labelled 0 and `top`."""
    label = f"{top * 100:.0f}%" if share else f"{top:,.0f}"
    axis = height - bottom
    return [f"<line x1=\"{PAD}\" y1=\"{axis}\" x2=\"{WIDTH - PAD}\" y2=\"{axis}\" stroke=\"#999\"/>",
            f"<line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{axis}\" stroke=\"#999\"/>",
            text(PAD - 4, PAD + 4, label, "end"), text(PAD - 4, axis, "0", "end")]
