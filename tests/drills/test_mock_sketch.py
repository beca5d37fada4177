"""A mock phase's box-and-arrow sketch: keyboard/no-JS forms, htmx fragments, bounds, export and review."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from topics.drills import canvas
from topics.drills.models import MockInterview

pytestmark = pytest.mark.django_db


@pytest.fixture
def mock(client, question) -> MockInterview:
    client.post(reverse("drills:mock_start"), {"question": question.pk})
    return MockInterview.objects.get()


def edit(client, mock, htmx=False, **data):
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(reverse("drills:mock_sketch", args=[mock.pk]), {"phase": "high_level", **data}, **extra)


def boxes(mock) -> dict[str, int]:
    mock.refresh_from_db()
    return {box["label"]: box["id"] for box in mock.sketches["high_level"]["boxes"]}


def test_without_javascript_add_two_boxes_and_connect_them(client, mock):
    response = edit(client, mock, action="add", label="API")
    assert response.status_code == 302
    assert response["Location"] == f"{mock.get_absolute_url()}#sketch-high_level"
    edit(client, mock, action="add", label="Orders queue")
    ids = boxes(mock)
    assert edit(client, mock, action="connect", source=ids["API"], target=ids["Orders queue"]).status_code == 302
    html = client.get(mock.get_absolute_url()).content.decode()
    sketch = html[html.index('id="sketch-high_level"') :]
    sketch = sketch[: sketch.index("</section>")]
    assert sketch.count('<g class="sketch-box"') == 2
    assert ">API</text>" in sketch
    assert ">Orders queue</text>" in sketch
    assert sketch.count('<line class="sketch-arrow"') == 1
    assert "Boxes: API, Orders queue. Arrows: API → Orders queue." in sketch  # the SVG's description
    assert "Arrow: API → Orders queue" in sketch  # the visible list, each with its Remove button
    assert '<label for="arrow-from-high_level">Connect</label>' in sketch


def test_htmx_edits_return_the_redrawn_sketch_and_announce_it(client, mock):
    response = edit(client, mock, htmx=True, action="add", label="Worker")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<div class="sketch" id="sketch-high_level"')
    assert ">Worker</text>" in html
    assert re.search(r'id="mock-announcer"[^>]*hx-swap-oob="innerHTML">Sketch saved. Boxes: Worker.', html)


def test_removing_a_box_removes_its_arrows_and_a_drag_moves_it_within_the_drawing(client, mock):
    for label in ("API", "Queue", "Worker"):
        edit(client, mock, action="add", label=label)
    ids = boxes(mock)
    edit(client, mock, action="connect", source=ids["API"], target=ids["Queue"])
    edit(client, mock, action="connect", source=ids["Queue"], target=ids["Worker"])
    edit(client, mock, action="move", box=ids["Worker"], x=5000, y=-30)  # dragged off the edge: kept inside
    mock.refresh_from_db()
    worker = next(box for box in mock.sketches["high_level"]["boxes"] if box["label"] == "Worker")
    assert (worker["x"], worker["y"]) == (canvas.WIDTH - canvas.BOX_W, 0)
    edit(client, mock, action="remove", box=ids["Queue"])
    mock.refresh_from_db()
    assert [box["label"] for box in mock.sketches["high_level"]["boxes"]] == ["API", "Worker"]
    assert mock.sketches["high_level"]["arrows"] == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "add", "label": "x" * 41}, "A box&#x27;s name is at most 40 characters (this one has 41)."),
        ({"action": "add", "label": "   "}, "Name the box first"),
        ({"action": "connect", "source": "1", "target": "99"}, "There is no “to” box 99 in this sketch"),
        ({"action": "connect", "source": "1", "target": "1"}, "An arrow joins two different boxes"),
        ({"action": "remove", "box": "abc"}, "Enter a whole number."),
        ({"action": "explode"}, "Select a valid choice. explode is not one of the available choices."),
    ],
)
def test_bad_sketch_input_is_a_400_that_says_why(client, mock, data, message):
    edit(client, mock, action="add", label="API")
    for htmx in (False, True):
        response = edit(client, mock, htmx=htmx, **data)
        assert response.status_code == 400
        assert message in response.content.decode()
    assert list(boxes(mock)) == ["API"]


def test_a_sketch_is_bounded_in_boxes_and_arrows(client, mock):
    for n in range(canvas.MAX_BOXES):
        edit(client, mock, action="add", label=f"Box {n}")
    response = edit(client, mock, action="add", label="One too many")
    assert response.status_code == 400
    assert f"A sketch holds at most {canvas.MAX_BOXES} boxes" in response.content.decode()
    ids = list(boxes(mock).values())
    pairs = [(a, b) for a in ids for b in ids if a != b][: canvas.MAX_ARROWS]
    for source, target in pairs:
        edit(client, mock, action="connect", source=source, target=target)
    response = edit(client, mock, action="connect", source=ids[-1], target=ids[0])
    assert response.status_code == 400
    assert f"A sketch holds at most {canvas.MAX_ARROWS} arrows" in response.content.decode()
    response = edit(client, mock, action="connect", source=pairs[0][0], target=pairs[0][1])
    assert "There is already an arrow from Box 0 to Box 1" in response.content.decode()


def test_an_unknown_phase_is_a_plain_400_and_another_learner_gets_404(client, mock):
    response = client.post(reverse("drills:mock_sketch", args=[mock.pk]), {"phase": "lunch", "action": "add"})
    assert response.status_code == 400
    assert response.content.decode().startswith("Sketch not changed: Select a valid choice. lunch")
    assert Client().post(reverse("drills:mock_sketch", args=[mock.pk]), {"phase": "high_level"}).status_code == 404


def test_the_sketch_is_in_the_review_and_the_export_after_finishing(client, mock):
    edit(client, mock, action="add", label='Orders "v2" API')
    edit(client, mock, action="add", label="Queue")
    ids = boxes(mock)
    edit(client, mock, action="connect", source=ids['Orders "v2" API'], target=ids["Queue"])
    client.post(reverse("drills:mock_finish", args=[mock.pk]), {"covered": []})
    html = client.get(mock.get_absolute_url()).content.decode()
    review = html[html.index('id="mock-review"') :]
    assert '<h4 id="review-sketch-title-high_level">Your sketch</h4>' in review
    assert 'aria-describedby="review-sketch-high_level-desc"' in review
    text = client.get(reverse("drills:mock_export", args=[mock.pk])).content.decode()
    assert '### Your sketch\n\nBoxes: Orders "v2" API, Queue. Arrows: Orders "v2" API → Queue.' in text
    assert '```mermaid\nflowchart LR\n  b1["Orders #quot;v2#quot; API"]\n  b2["Queue"]\n  b1 --> b2\n```' in text
