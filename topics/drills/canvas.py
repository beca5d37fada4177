"""A mock interview phase's box-and-arrow sketch: plain data, changed by one validated edit at a time.

A sketch is {"boxes": [{"id", "label", "x", "y"}], "arrows": [{"from", "to"}], "next_id"}: small enough to
store in the mock's row and to export as text. Hand-written rather than a vendored diagram library: the
libraries we looked at (Excalidraw, tldraw, JointJS) are mouse-first JavaScript applications of hundreds of
kilobytes that store their own document format in the browser, while this needs a keyboard and no-JS form,
validation on the server and an SVG the server draws, which is a hundred lines.
"""

import textwrap
from dataclasses import dataclass

MAX_BOXES = 16
MAX_ARROWS = 32
LABEL_MAX = 40
WIDTH, HEIGHT = 720, 420  # the drawing's coordinate space (the SVG's viewBox)
BOX_W, BOX_H = 150, 52
COLUMNS, GAP_X, GAP_Y, MARGIN = 4, 36, 34, 12
LINE_CHARS = 20  # a label wraps onto a second line past this many characters
ACTIONS = ("add", "connect", "remove", "disconnect", "move")


class SketchError(ValueError):
    """An edit the sketch refuses, in words for the learner."""


def sketch_empty() -> dict:
    return {"boxes": [], "arrows": [], "next_id": 1}


def _clean(sketch: dict | None) -> dict:
    sketch = sketch or {}
    return {
        "boxes": [dict(box) for box in sketch.get("boxes", [])],
        "arrows": [dict(arrow) for arrow in sketch.get("arrows", [])],
        "next_id": sketch.get("next_id", 1),
    }


def _box(sketch: dict, box_id: int | None, role: str = "box") -> dict:
    found = next((box for box in sketch["boxes"] if box["id"] == box_id), None)
    if found is None:
        raise SketchError(f"There is no {role} box {box_id} in this sketch; reload the page to see the current one.")
    return found


def _free_slot(sketch: dict) -> tuple[int, int]:
    """The first grid cell no box overlaps, left to right, top to bottom (boxes may be dragged anywhere later)."""
    for index in range(MAX_BOXES):
        x = MARGIN + (index % COLUMNS) * (BOX_W + GAP_X)
        y = MARGIN + (index // COLUMNS) * (BOX_H + GAP_Y)
        if all(abs(box["x"] - x) >= BOX_W or abs(box["y"] - y) >= BOX_H for box in sketch["boxes"]):
            return x, y
    return MARGIN, MARGIN


def sketch_apply(
    sketch: dict | None,
    *,
    action: str,
    label: str = "",
    box: int | None = None,
    source: int | None = None,
    target: int | None = None,
    x: int | None = None,
    y: int | None = None,
) -> dict:
    """The sketch after one edit; raises SketchError for an edit that breaks a bound or names no box."""
    sketch = _clean(sketch)
    if action == "add":
        label = " ".join(label.split())
        if not label:
            raise SketchError("Name the box first (for example “API” or “Orders queue”).")
        if len(label) > LABEL_MAX:
            raise SketchError(f"A box's name is at most {LABEL_MAX} characters (this one has {len(label)}).")
        if len(sketch["boxes"]) >= MAX_BOXES:
            raise SketchError(f"A sketch holds at most {MAX_BOXES} boxes: remove one, or say the rest out loud.")
        x, y = _free_slot(sketch)
        sketch["boxes"].append({"id": sketch["next_id"], "label": label, "x": x, "y": y})
        sketch["next_id"] += 1
    elif action in ("connect", "disconnect"):
        start, end = _box(sketch, source, "“from”"), _box(sketch, target, "“to”")
        if start is end:
            raise SketchError("An arrow joins two different boxes: pick another “to” box.")
        arrow = {"from": start["id"], "to": end["id"]}
        if action == "disconnect":
            sketch["arrows"] = [a for a in sketch["arrows"] if a != arrow]
        elif arrow in sketch["arrows"]:
            raise SketchError(f"There is already an arrow from {start['label']} to {end['label']}.")
        elif len(sketch["arrows"]) >= MAX_ARROWS:
            raise SketchError(f"A sketch holds at most {MAX_ARROWS} arrows.")
        else:
            sketch["arrows"].append(arrow)
    elif action == "remove":
        gone = _box(sketch, box)["id"]
        sketch["boxes"] = [b for b in sketch["boxes"] if b["id"] != gone]
        sketch["arrows"] = [a for a in sketch["arrows"] if gone not in (a["from"], a["to"])]
    elif action == "move":
        moved = _box(sketch, box)
        if x is None or y is None:
            raise SketchError("Moving a box needs its new x and y.")
        moved["x"], moved["y"] = min(max(0, x), WIDTH - BOX_W), min(max(0, y), HEIGHT - BOX_H)
    else:
        raise SketchError(f"Unknown sketch action {action!r}: use one of {', '.join(ACTIONS)}.")
    return sketch


@dataclass
class SketchView:
    """What the page draws: boxes with their wrapped label lines, arrows as clipped line segments."""

    boxes: list[dict]
    arrows: list[dict]
    summary: str
    height: int  # the drawing's height: its lowest box plus a free row to drag into, up to HEIGHT

    @property
    def empty(self) -> bool:
        return not self.boxes


def _edge_point(box: dict, towards: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the box's centre towards a point leaves the box's rectangle."""
    cx, cy = box["x"] + BOX_W / 2, box["y"] + BOX_H / 2
    dx, dy = towards[0] - cx, towards[1] - cy
    if dx == 0 and dy == 0:
        return cx, cy
    scale = min(
        (BOX_W / 2) / abs(dx) if dx else float("inf"),
        (BOX_H / 2) / abs(dy) if dy else float("inf"),
    )
    return round(cx + dx * scale, 1), round(cy + dy * scale, 1)


def sketch_view(sketch: dict | None) -> SketchView:
    sketch = _clean(sketch)
    by_id = {box["id"]: box for box in sketch["boxes"]}
    boxes = [
        {**box, "lines": textwrap.wrap(box["label"], LINE_CHARS, max_lines=2, placeholder="…") or [""]}
        for box in sketch["boxes"]
    ]
    arrows = []
    for arrow in sketch["arrows"]:
        start, end = by_id.get(arrow["from"]), by_id.get(arrow["to"])
        if start is None or end is None:
            continue
        x1, y1 = _edge_point(start, (end["x"] + BOX_W / 2, end["y"] + BOX_H / 2))
        x2, y2 = _edge_point(end, (start["x"] + BOX_W / 2, start["y"] + BOX_H / 2))
        arrows.append({**arrow, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "from_label": start["label"],
                       "to_label": end["label"]})  # fmt: skip
    lowest = max((box["y"] + BOX_H for box in sketch["boxes"]), default=0)
    height = min(HEIGHT, max(lowest + BOX_H + GAP_Y + MARGIN, 2 * (BOX_H + GAP_Y)))
    return SketchView(boxes=boxes, arrows=arrows, summary=sketch_text(sketch), height=height)


def sketch_text(sketch: dict | None) -> str:
    """The sketch in words, for screen readers and the export: 'Boxes: API, Queue. Arrows: API → Queue.'"""
    sketch = _clean(sketch)
    if not sketch["boxes"]:
        return "No boxes yet."
    labels = {box["id"]: box["label"] for box in sketch["boxes"]}
    text = "Boxes: " + ", ".join(labels.values()) + "."
    arrows = [
        f"{labels[a['from']]} → {labels[a['to']]}" for a in sketch["arrows"] if {a["from"], a["to"]} <= set(labels)
    ]
    return text + (" Arrows: " + ", ".join(arrows) + "." if arrows else " No arrows yet.")


def sketch_mermaid(sketch: dict | None) -> str:
    """The sketch as a Mermaid flowchart, so the Markdown export draws it again where Mermaid renders."""
    sketch = _clean(sketch)
    lines = ["flowchart LR"]
    for box in sketch["boxes"]:
        lines.append(f'  b{box["id"]}["{box["label"].replace(chr(34), "#quot;")}"]')
    for arrow in sketch["arrows"]:
        lines.append(f"  b{arrow['from']} --> b{arrow['to']}")
    return "\n".join(lines)
