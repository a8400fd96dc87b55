"""Lines, zones and blur on tracks whose paths are known (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from annotate.analytics.counting import Counter
from annotate.analytics.geometry import parse_shapes
from annotate.annotators import BlurAnnotator
from annotate.errors import UsageError
from annotate.pipeline.stages import FrameContext, HideStage
from annotate.types import Detections, Frame

LABELS = ["person", "bicycle", "car"]


def feet(*points: tuple[float, float, int], cls: int = 0) -> Detections:
    """Boxes 20 wide and 40 tall whose bottom centre is at each ``(x, y, track)``."""
    xyxy = [[x - 10, y - 40, x + 10, y] for x, y, _t in points]
    return Detections(
        np.reshape(xyxy, (-1, 4)),
        [0.9] * len(points),
        [cls] * len(points),
        track_id=[t for *_xy, t in points],
        labels=LABELS,
    )


def walk(
    counter: Counter,
    path: list[tuple[float, float]],
    track: int = 1,
    cls: int = 0,
    fps: float = 30,
    start: int = 0,
) -> list:
    events = []
    for i, (x, y) in enumerate(path, start=start):
        events += counter.update(feet((x, y, track), cls=cls), i / fps, 640, 480)
    return events


def door(frames: int = 2) -> Counter:
    # Horizontal, pointing right: "in" is from above it (left of a→b) to below it (right).
    return Counter(parse_shapes(["door=200,240,440,240"], "line"), frames=frames)


def test_crossing_counts_once_per_direction_with_its_class():
    counter = door()
    events = walk(counter, [(300, y) for y in range(180, 320, 20)])
    assert [(e.shape, e.track_id, e.kind, e.label) for e in events] == [("door", 1, "in", "person")]
    walk(counter, [(300, y) for y in range(300, 160, -20)], start=7)  # back out
    walk(counter, [(300, y) for y in range(180, 320, 20)], start=14)  # in again: not twice
    assert counter.line_counts["door"] == {
        "in": 1,
        "out": 1,
        "by_class": {"person": {"in": 1, "out": 1}},
    }


def test_a_box_jittering_on_the_line_counts_nothing():
    counter = door()
    assert (
        walk(
            counter,
            [(300, 238), (300, 242), (300, 237), (300, 243), (300, 238), (300, 241), (300, 239)],
        )
        == []
    )
    assert counter.line_counts["door"]["in"] == counter.line_counts["door"]["out"] == 0


def test_passing_beside_the_segment_counts_nothing():
    counter = door()
    assert walk(counter, [(500, y) for y in range(180, 320, 20)]) == []  # beyond its end


def test_crossing_during_dropped_frames_still_counts():
    """Last seen above the line, next seen well below it (frames dropped or predicted in
    between): the move between the two positions passes through the segment."""
    counter = door()
    events = walk(counter, [(300, 200), (300, 210)])
    events += counter.update(feet((310, 300, 1)), 0.5, 640, 480)
    events += counter.update(feet((312, 310, 1)), 0.53, 640, 480)
    assert [e.kind for e in events] == ["in"]


def test_line_frames_sets_how_long_the_new_side_must_hold():
    path = [(300, 220), (300, 260), (300, 220), (300, 260), (300, 270), (300, 280)]
    assert [e.kind for e in walk(door(frames=2), path)] == ["in"]
    assert walk(door(frames=4), path) == []


def test_fractions_fit_any_frame_size():
    counter = Counter(parse_shapes(["0.25,0.5,0.75,0.5"], "line"))
    events = []
    for i, y in enumerate(range(300, 900, 100)):  # 1920x1080: the line is at y=540
        events += counter.update(feet((960, y, 3)), i / 30, 1920, 1080)
    assert [(e.shape, e.kind) for e in events] == [("line1", "in")]


def test_zone_counts_now_entered_and_dwell_time():
    counter = Counter(zones=parse_shapes(["shop=100,100,300,100,300,300,100,300"], "zone"))
    for i in range(40):  # track 1 is inside from frame 2 to 22 (10 FPS); track 2 stays out
        x = 80 + 10 * i
        counter.update(feet((x, 200, 1), (50, 50, 2)), i / 10, 640, 480)
        if i == 15:
            state = counter.as_json()["zones"]["shop"]
            assert (state["now"], state["entered"]) == (1, 1)
            assert state["by_class"]["now"] == {"person": 1}
            assert state["dwell_s"]["1"] == pytest.approx(1.3)
    state = counter.as_json()["zones"]["shop"]
    assert (state["now"], state["entered"], state["dwell_s"]) == (0, 1, {})
    assert counter.dwell_done["shop"] == [pytest.approx(2.1)]


def test_untracked_boxes_count_nothing():
    counter = door()
    for i, y in enumerate(range(180, 320, 20)):
        counter.update(feet((300, y, -1)), i / 30, 640, 480)
    assert counter.line_counts["door"]["in"] == 0


@pytest.mark.parametrize(("kind", "specs", "message"), [
    ("line", ["1,2,3"], "--line '1,2,3': a line takes 4 numbers (x1,y1,x2,y2), got 3"),
    ("zone", ["0,0,1,1"], "--zone '0,0,1,1': a zone takes 3 or more points (x1,y1,x2,y2,x3,y3,…), "
                          "got 4 numbers"),
    ("line", ["0.5,0,640,480"], "--line '0.5,0,640,480': mixes fractions of the frame and "
                                "pixels; give all four coordinates one way"),
    ("line", ["a=0,0,1,1", "a=0,1,1,0"], "--line: the name 'a' is used twice; names must differ"),
    ("line", ["door=x,0,1,1"], "--line 'door=x,0,1,1': coordinates must be numbers, as "
                               "door=100,400,500,400"),
    ("line", ["5,5,5,5"], "--line '5,5,5,5': the line has no length or area"),
    ("zone", ["0,0,10,10,20,20"], "--zone '0,0,10,10,20,20': the zone has no length or area"),
])  # fmt: skip
def test_bad_shapes_are_one_line_usage_errors(kind, specs, message):
    with pytest.raises(UsageError) as error:
        parse_shapes(specs, kind)
    assert str(error.value) == message


def test_points_outside_the_frame_are_allowed():
    (line,) = parse_shapes(["-100,240,740,240"], "line")
    assert line.in_pixels(640, 480).tolist() == [[-100, 240], [740, 240]]


def _laplacian_variance(image: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


@pytest.mark.parametrize("style", ["gaussian", "pixelate", "solid"])
@pytest.mark.parametrize("size", [60, 400])
def test_blur_removes_detail_in_the_box_and_nothing_else(style, size):
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (720, 1280, 3), np.uint8)  # all detail
    original = scene.copy()
    box = [100, 100, 100 + size, 100 + size]
    BlurAnnotator({0}, style).annotate(scene, Detections([box], [0.9], [0]))
    region = (slice(100, 100 + size), slice(100, 100 + size))
    assert _laplacian_variance(scene[region]) * 4 <= _laplacian_variance(original[region])
    pad = round(0.1 * size) + 1
    outside = np.ones(scene.shape[:2], bool)
    outside[100 - pad : 100 + size + pad, 100 - pad : 100 + size + pad] = False
    assert np.array_equal(scene[outside], original[outside])


def test_blur_only_the_classes_asked_for_and_lost_tracks_too():
    scene = np.random.default_rng(1).integers(0, 255, (200, 300, 3), np.uint8)
    original = scene.copy()
    lost = Detections([[200, 20, 260, 120]], [0.5], [0], track_id=[4])
    detections = Detections([[10, 10, 60, 110], [100, 10, 150, 110]], [0.9, 0.9], [0, 2])
    tracker = type("Lost", (), {"lost_boxes": lambda self: lost})()  # a tracker's one call
    context = FrameContext(Frame(0, 0.0, scene, "x"), 0.0, detected=True)
    detections = HideStage({0}, tracker).process(detections, context)  # type: ignore[arg-type]
    BlurAnnotator({0}, "solid").annotate(scene, detections)
    assert (scene[20:100, 20:50] == 0).all()  # person: hidden
    assert np.array_equal(scene[20:100, 110:140], original[20:100, 110:140])  # car: not asked
    assert (scene[30:110, 210:250] == 0).all()  # a lost track's predicted box: still hidden


def test_ellipse_keeps_the_corners():
    scene = np.full((200, 200, 3), 255, np.uint8)
    whole = Detections([[0, 0, 200, 200]], [0.9], [0])
    BlurAnnotator(None, "solid", "ellipse", pad=0).annotate(scene, whole)
    assert (scene[100, 100] == 0).all() and (scene[2, 2] == 255).all()


def test_a_name_the_font_cannot_draw_is_labelled_visibly():
    """OpenCV's font draws '入口🚪' as '???': the frame says 'line 1' instead (the JSON and the
    counts keep the name), and the run says so."""
    from annotate.annotators import CountAnnotator
    from annotate.pipeline import RunOptions
    from annotate.pipeline.build import make_counter

    def drawn(name: str) -> np.ndarray:
        options = RunOptions(source="x.mp4", track=True, lines=[f"{name}=0,0.5,1,0.5"])
        counter = make_counter(options)
        assert counter is not None
        image = np.zeros((360, 640, 3), np.uint8)
        return CountAnnotator(counter.lines, counter.zones).annotate(image, Detections.empty())

    import logging

    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("annotate").addHandler(handler)
    try:
        unicode = drawn("入口🚪")
    finally:
        logging.getLogger("annotate").removeHandler(handler)
    assert warnings == [
        "'入口🚪': the video's font has only ASCII letters, so the frame labels it 'line 1' (the "
        "JSON and the counts keep its name)"
    ]
    assert np.array_equal(unicode, drawn("line 1"))
    assert not np.array_equal(unicode, drawn("door"))  # the label is drawn, and it differs


@pytest.mark.parametrize(
    ("spec", "crosses"),
    [
        ("100,100,500,100,500,400,300,200,100,400", False),  # concave (an arrow's notch)
        ("0,0,1,0,1,1,0,1", False),
        ("0,0,1,1,1,0,0,1", True),  # a bowtie
        ("0,0,1,1,1,0,0,0.6", True),  # a lopsided one: its area is not zero
        ("0,0,200,0,100,0,100,100", True),  # an edge folding back over its neighbour
        ("0,0,1,0,1,1,0.5,0,0,1", True),  # a corner touching another edge
    ],
)
def test_zones_that_cross_themselves_are_refused(spec, crosses):
    if crosses:
        with pytest.raises(UsageError, match="the zone crosses itself"):
            parse_shapes([spec], "zone")
    else:
        assert len(parse_shapes([spec], "zone")[0].points) == len(spec.split(",")) // 2
