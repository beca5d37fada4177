"""Server-rendered SVG charts for the Lab and Drills: no JavaScript library, readable without CSS.

Every chart is an <svg role="img"> with a <title> and a <desc>, axis labels and a legend. Only numbers
and fixed labels go into the markup, and all text passes through format_html, so nothing a visitor
typed can reach it.
"""

import math

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

MIN_SLOTS = 10  # a run of a few seconds still gets a readable axis, which then fills up
WIDTH, HEIGHT = 480, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 14, 14, 46


def _join(parts: list[SafeString]) -> SafeString:
    return format_html_join("", "{}", ((part,) for part in parts))


def _n(value: float) -> str:
    return f"{value:.1f}"


def nice_max(value: float) -> int:
    if value <= 4:
        return 4
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return math.ceil(step * magnitude)
    return math.ceil(value)


def _axis(xs: list[int], until: int | None = None) -> list[int]:
    """The x values of every slot on the axis: the data's, extended to at least MIN_SLOTS, and to `until`
    (a scale shared with the run's other charts)."""
    if not xs:
        return []
    step = xs[1] - xs[0] if len(xs) > 1 else 1
    axis = xs + [xs[-1] + step * (i + 1) for i in range(MIN_SLOTS - len(xs))]
    while until is not None and axis[-1] < until:
        axis.append(axis[-1] + step)
    return axis


def _frame(
    uid: str,
    *,
    title: str,
    desc: str,
    x_label: str,
    y_label: str,
    y_max: int,
    xs: list[int],
    body,
    centered: bool = False,
) -> SafeString:
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    bottom = PAD_TOP + plot_h
    grid = []
    for i in range(5):
        value = y_max * i / 4
        y = bottom - plot_h * i / 4
        label = f"{value:g}" if value != int(value) else str(int(value))
        grid.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                PAD_LEFT,
                WIDTH - PAD_RIGHT,
                _n(y),
                _n(y),
                PAD_LEFT - 6,
                _n(y + 4),
                label,
            )
        )
    if xs:
        n = len(xs)
        for index in sorted({0, n // 2, n - 1}):
            if centered:
                x = PAD_LEFT + plot_w * (index + 0.5) / n
            else:
                x = PAD_LEFT + (plot_w * index / (n - 1) if n > 1 else plot_w / 2)
            grid.append(
                format_html(
                    '<text class="tick" x="{}" y="{}" text-anchor="middle">{}s</text>', _n(x), bottom + 18, xs[index]
                )
            )
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{uid}-t {uid}-d">'
        '<title id="{uid}-t">{title}</title><desc id="{uid}-d">{desc}</desc>'
        "{grid}"
        '<line class="axis" x1="{l}" x2="{l}" y1="{top}" y2="{bottom}"></line>'
        '<line class="axis" x1="{l}" x2="{r}" y1="{bottom}" y2="{bottom}"></line>'
        "{body}"
        '<text class="axis-label" x="{cx}" y="{xl}" text-anchor="middle">{x_label}</text>'
        '<text class="axis-label" x="12" y="{cy}" text-anchor="middle" transform="rotate(-90 12 {cy})">{y_label}</text>'
        "</svg>",
        w=WIDTH,
        h=HEIGHT,
        uid=uid,
        title=title,
        desc=desc,
        grid=_join(grid),
        l=PAD_LEFT,
        r=WIDTH - PAD_RIGHT,
        top=PAD_TOP,
        bottom=bottom,
        body=body,
        cx=_n(PAD_LEFT + plot_w / 2),
        xl=HEIGHT - 6,
        x_label=x_label,
        cy=_n(PAD_TOP + plot_h / 2),
        y_label=y_label,
    )


def _x_positions(n: int) -> list[float]:
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    if n == 1:
        return [PAD_LEFT + plot_w / 2]
    return [PAD_LEFT + plot_w * i / (n - 1) for i in range(n)]


def line_chart(
    *,
    name: str,
    title: str,
    desc: str,
    xs: list[int],
    lines: list[tuple[str, str, list[int]]],
    x_label: str,
    y_label: str,
    y_max: int | None = None,
    x_until: int | None = None,
) -> SafeString:
    """lines: (legend label, css class, values) sharing the x slots in xs. y_max, x_until: shared scales."""
    uid = f"chart-{name}"
    y_max = nice_max(max([*(v for _, _, values in lines for v in values), y_max or 0]))
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    bottom = PAD_TOP + plot_h
    positions = _x_positions(len(_axis(xs, x_until))) if xs else []
    paths = []
    for _label, css, values in lines:
        if not values:
            continue
        points = " ".join(f"{x:.1f},{bottom - plot_h * v / y_max:.1f}" for x, v in zip(positions, values, strict=False))
        paths.append(format_html('<polyline class="line {}" points="{}"></polyline>', css, points))
        if len(values) == 1:  # a polyline of one point draws nothing
            x, y = points.split(",")
            paths.append(format_html('<circle class="dot {}" cx="{}" cy="{}" r="3"></circle>', css, x, y))
    body = _join(paths)
    return _frame(
        uid,
        title=title,
        desc=desc,
        x_label=x_label,
        y_label=y_label,
        y_max=y_max,
        xs=_axis(xs, x_until),
        body=body,
        centered=False,
    )


def bar_chart(
    *,
    name: str,
    title: str,
    desc: str,
    xs: list[int],
    bars: list[tuple[str, str, list[int]]],
    x_label: str,
    y_label: str,
    y_max: int | None = None,
    x_until: int | None = None,
) -> SafeString:
    """Stacked bars per x slot; bars: (legend label, css class, values). y_max, x_until: shared scales."""
    uid = f"chart-{name}"
    totals = [sum(values[i] for _, _, values in bars) for i in range(len(xs))]
    y_max = nice_max(max([*totals, y_max or 0], default=0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    bottom = PAD_TOP + plot_h
    slot = plot_w / max(1, len(_axis(xs, x_until)))
    bar_w = max(1.0, slot * 0.8)
    rects = []
    for i, x_value in enumerate(xs):
        x = PAD_LEFT + slot * i + (slot - bar_w) / 2
        y = bottom
        for label, css, values in bars:
            value = values[i]
            if not value:
                continue
            height = plot_h * value / y_max
            y -= height
            rects.append(
                format_html(
                    '<rect class="bar {}" x="{}" y="{}" width="{}" height="{}"><title>{}s: {} {}</title></rect>',
                    css,
                    _n(x),
                    _n(y),
                    _n(bar_w),
                    _n(height),
                    x_value,
                    value,
                    label,
                )
            )
    body = _join(rects)
    return _frame(
        uid,
        title=title,
        desc=desc,
        x_label=x_label,
        y_label=y_label,
        y_max=y_max,
        xs=_axis(xs, x_until),
        body=body,
        centered=True,
    )


def legend(items: list[tuple[str, str]]) -> SafeString:
    """A legend under a chart: (label, css class) pairs."""
    return format_html(
        '<ul class="legend">{}</ul>',
        format_html_join("", '<li><span class="swatch {}"></span>{}</li>', ((css, label) for label, css in items)),
    )


LANE_W, LANE_H, LANE_LABEL, LANE_TOP, LANE_BOTTOM = 720, 18, 64, 8, 34


def sub_lanes(row: dict, now: float) -> tuple[list[int], int, int]:
    """Which sub-lane each of a job's attempts takes, so attempts that overlap in time (a second consumer
    claiming a message the first still works on) sit one under the other instead of on top of each other.
    Returns (sub-lane per mark, the running attempt's sub-lane, how many sub-lanes)."""
    spans = [(m.get("s", m.get("t", 0.0)), m.get("t", 0.0)) for m in row["marks"]]
    if row.get("running_since"):
        spans.append((row["running_since"], now))
    ends: list[float] = []
    lanes = [0] * len(spans)
    for i in sorted(range(len(spans)), key=lambda i: spans[i][0]):
        if i < len(row["marks"]) and row["marks"][i].get("r") == "redriven":
            continue
        start, end = spans[i]
        lane = next((k for k, free_at in enumerate(ends) if start >= free_at - 1e-3), len(ends))
        if lane < len(ends):
            ends[lane] = end
        else:
            ends.append(end)
        lanes[i] = lane
    marks = lanes[: len(row["marks"])]
    running = lanes[-1] if row.get("running_since") else 0
    return marks, running, max(1, len(ends))


def swimlanes(
    *,
    rows: list[dict],
    t0: float,
    now: float,
    title: str,
    desc: str,
    span: float | None = None,
    gap: tuple[float, float] | None = None,
    live: bool = True,
) -> SafeString:
    """Each job on a real time axis: its attempts as bars (start to end, coloured by outcome), each wait
    for a retry as a line, and the backoff window the wait was drawn from as a pale band behind it.

    rows: {"job", "marks": [{"n", "r", "e", "s"?, "t", "next"?}], "ceilings": [s per retry],
    "running_since"?: float, "retry_at"?: float, "group"?: partition, rows sorted by it}; span: seconds the axis shows (shared with the run's charts);
    gap: (from, to) seconds since t0 left out of the axis and marked as a break (an idle wait for a redrive)
    """
    if not rows or not t0:
        return SafeString("")
    ends = [m.get("t", t0) for row in rows for m in row["marks"]]
    ends += [m.get("next", t0) for row in rows for m in row["marks"]] + [row.get("retry_at") or t0 for row in rows]
    span = span or nice_max(max(10.0, min(now, max([*ends, now])) - t0))
    plot_w = LANE_W - LANE_LABEL - PAD_RIGHT
    layout = [sub_lanes(row, now) for row in rows]
    tops = [LANE_TOP + LANE_H * sum(count for _, _, count in layout[:i]) for i in range(len(rows))]
    plot_bottom = LANE_TOP + LANE_H * sum(count for _, _, count in layout)
    height = plot_bottom + LANE_BOTTOM

    idle = gap[1] - gap[0] if gap else 0.0

    def squeeze(seconds: float) -> float:
        if gap and seconds >= gap[1]:
            return seconds - idle
        return min(seconds, gap[0]) if gap else seconds

    def x(moment: float) -> str:
        return _n(LANE_LABEL + plot_w * min(max(squeeze(moment - t0), 0.0), span) / span)

    parts = []
    for i in range(5):
        gx = LANE_LABEL + plot_w * i / 4
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="tick" x="{}" y="{}" text-anchor="middle">{}s</text>',
                _n(gx),
                _n(gx),
                LANE_TOP,
                plot_bottom,
                _n(gx),
                plot_bottom + 14,
                f"{span * i / 4 + (idle if gap and span * i / 4 > gap[0] else 0):g}",
            )
        )
    if gap:
        bx = float(x(t0 + gap[0]))
        parts.append(
            format_html(
                '<g class="lane-break"><title>{} s with nothing to do, left out</title>'
                '<line x1="{}" x2="{}" y1="{}" y2="{}"></line><line x1="{}" x2="{}" y1="{}" y2="{}"></line></g>',
                f"{idle:g}",
                _n(bx - 3),
                _n(bx + 1),
                LANE_TOP,
                plot_bottom,
                _n(bx + 1),
                _n(bx + 5),
                LANE_TOP,
                plot_bottom,
            )
        )
    labels: list[SafeString] = []  # drawn in the chart and again in a column that stays put on a phone
    for index, row in enumerate(rows):
        top = row_top = tops[index]
        mid = top + LANE_H / 2
        mark_lanes, running_lane, _ = layout[index]
        group = row.get("group")
        if group is not None and (index == 0 or rows[index - 1].get("group") != group):
            labels.append(
                format_html(
                    '<line class="lane-group" x1="0" x2="{}" y1="{}" y2="{}"></line>'
                    '<text class="lane-group-label" x="2" y="{}">p{}</text>',
                    LANE_W - PAD_RIGHT,
                    _n(top),
                    _n(top),
                    _n(mid + 4),
                    group,
                )
            )
        labels.append(
            format_html(
                '<text class="lane-label" x="{}" y="{}" text-anchor="end">job {}</text>',
                LANE_LABEL - 6,
                _n(mid + 4),
                row["job"],
            )
        )
        retries = 0
        for mark, lane in zip(row["marks"], mark_lanes, strict=True):
            top = row_top + LANE_H * lane
            mid = top + LANE_H / 2
            result, end = mark.get("r", ""), mark.get("t", t0)
            if result == "redriven":
                parts.append(
                    format_html(
                        '<text class="lane-redrive" x="{}" y="{}" text-anchor="middle">↺<title>redriven</title></text>',
                        x(end),
                        _n(mid + 4),
                    )
                )
                retries = 0
                continue
            start = mark.get("s", end)
            css = (
                "double"
                if mark.get("e") == "double_charge"
                else "suppressed"
                if mark.get("e") == "duplicate_suppressed"
                else result
            )
            parts.append(
                format_html(
                    '<rect class="lane-bar mark-{}" x="{}" y="{}" width="{}" height="{}"><title>attempt {}: {}{}</title></rect>',
                    css,
                    x(start),
                    _n(top + 3),
                    _n(max(2.0, float(x(end)) - float(x(start)))),
                    LANE_H - 6,
                    mark.get("n", ""),
                    result,
                    f" — {mark['e']}" if mark.get("e") else "",
                )
            )
            if mark.get("next"):
                retries += 1
                ceilings = row.get("ceilings") or []
                ceiling = ceilings[retries - 1] if retries <= len(ceilings) else None
                if ceiling:
                    parts.append(
                        format_html(
                            '<rect class="lane-window" x="{}" y="{}" width="{}" height="{}"><title>retry {} drawn from 0–{} s after the failure</title></rect>',
                            x(end),
                            _n(top + 6),
                            _n(max(1.0, float(x(end + ceiling)) - float(x(end)))),
                            LANE_H - 12,
                            retries,
                            f"{ceiling:g}",
                        )
                    )
                parts.append(
                    format_html(
                        '<line class="lane-wait" x1="{}" x2="{}" y1="{}" y2="{}"></line>',
                        x(end),
                        x(mark["next"]),
                        _n(mid),
                        _n(mid),
                    )
                )
        top, mid = row_top + LANE_H * running_lane, row_top + LANE_H * running_lane + LANE_H / 2
        if row.get("running_since"):
            parts.append(
                format_html(
                    '<rect class="lane-bar mark-running" x="{}" y="{}" width="{}" height="{}"><title>running</title></rect>',
                    x(row["running_since"]),
                    _n(top + 3),
                    _n(max(2.0, float(x(now)) - float(x(row["running_since"])))),
                    LANE_H - 6,
                )
            )
        top, mid = row_top, row_top + LANE_H / 2
        if row.get("retry_at"):
            parts.append(
                format_html(
                    '<circle class="lane-due" cx="{}" cy="{}" r="3"><title>retry due</title></circle>',
                    x(row["retry_at"]),
                    _n(mid),
                )
            )
    if live:  # a finished run has no "now" on its axis
        parts.append(
            format_html(
                '<line class="lane-now" x1="{}" x2="{}" y1="{}" y2="{}"></line>',
                x(now),
                x(now),
                LANE_TOP,
                plot_bottom,
            )
        )
    return format_html(
        '<div class="lanes-wrap"><svg class="lane-labels" viewBox="0 0 {} {}" aria-hidden="true">'
        '<rect class="lane-labels-bg" x="0" y="{}" width="{}" height="{}"></rect>{}</svg>'
        '<svg class="chart lanes" viewBox="0 0 {} {}" role="img" aria-labelledby="lanes-t lanes-d">'
        '<title id="lanes-t">{}</title><desc id="lanes-d">{}</desc>{}{}'
        '<text class="axis-label" x="{}" y="{}" text-anchor="middle">seconds since the start</text></svg></div>',
        LANE_LABEL,
        height,
        LANE_TOP,
        LANE_LABEL - 2,
        plot_bottom - LANE_TOP,
        _join(labels),
        LANE_W,
        height,
        title,
        desc,
        _join(parts),
        _join(labels),
        _n(LANE_LABEL + plot_w / 2),
        height - 4,
    )


def day_bars(per_day: list[tuple], *, width: int = 640, height: int = 160) -> dict:
    """Geometry for one bar per day (Drills' reviews per day; its template draws the SVG): bars, value
    labels and a few date labels."""
    top, bottom, left = 18, 22, 4
    plot_h = height - top - bottom
    peak = max((count for _, count in per_day), default=0) or 1
    slot = (width - left) / max(1, len(per_day))
    bars = []
    for i, (day, count) in enumerate(per_day):
        h = round(plot_h * count / peak, 1)
        x = round(left + i * slot + slot * 0.15, 1)
        bars.append(
            {
                "x": x,
                "y": round(top + plot_h - h, 1),
                "w": round(slot * 0.7, 1),
                "h": h,
                "count": count,
                "label_x": round(x + slot * 0.35, 1),
                "label_y": round(top + plot_h - h - 4, 1),
                "day": day,
                # Label every 7th day counting back from today; the last label hugs the right edge.
                "show_day": (len(per_day) - 1 - i) % 7 == 0,
                "anchor": "end" if i == len(per_day) - 1 else "middle",
                "day_x": round(x + slot * 0.7, 1) if i == len(per_day) - 1 else round(x + slot * 0.35, 1),
            }
        )
    return {"width": width, "height": height, "bars": bars, "baseline": top + plot_h, "day_y": height - 6}
