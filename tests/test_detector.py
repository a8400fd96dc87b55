"""The real YOLOX-Nano on real photos, and decoding checked on hand-made outputs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from annotate.detector import Detector
from annotate.detector.families import FAMILIES, read_spec
from annotate.detector.postprocess import anchor_count
from annotate.detector.preprocess import letterbox
from annotate.errors import ModelError
from annotate.types import Detections
from tests.helpers import read_image


def found(detector: Detector, image: np.ndarray) -> dict[str, float]:
    detections = detector(image)
    result: dict[str, float] = {}
    for c, s in zip(detections.class_ids, detections.scores):
        label = detector.labels[c]
        result[label] = max(result.get(label, 0.0), float(s))
    return result


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("astronaut", {"person": 0.93}),
        ("chelsea", {"cat": 0.62}),
        ("coffee", {"cup": 0.90, "dining table": 0.74}),
        ("motorcycle_left", {"motorcycle": 0.90}),
    ],
)
@pytest.mark.shared
def test_known_results(detector, name, expected):
    labels = found(detector, read_image(name))
    for label, score in expected.items():
        assert labels[label] == pytest.approx(score, abs=0.015), labels


@pytest.mark.shared
def test_rgb_input_lowers_scores(detector):
    """The model wants BGR; feeding RGB must visibly hurt, which proves the order matters."""
    image = read_image("chelsea")
    assert found(detector, image[:, :, ::-1].copy())["cat"] < 0.45


@pytest.mark.shared
def test_boxes_are_in_source_pixels(detector):
    image = read_image("coffee")  # 600x400, letterboxed with ratio 416/600
    detections = detector(image)
    cup = detections[detections.class_ids == detector.labels.index("cup")]
    x1, y1, x2, y2 = cup.xyxy[0]
    # The cup sits in the middle-left of the photo; in canvas pixels x2 would be ~292.
    assert 140 < x1 < 190 and 0 <= y1 < 40 and 400 < x2 < 440 and 270 < y2 < 320
    assert (detections.xyxy[:, 2] <= 600).all() and (detections.xyxy[:, 3] <= 400).all()


def test_letterbox_is_top_left_with_114():
    image = np.full((100, 200, 3), 7, np.uint8)
    blob, box = letterbox(image, (416, 416))
    assert blob.shape == (1, 3, 416, 416) and blob.dtype == np.float32
    assert box.ratio == pytest.approx(416 / 200)
    assert (blob[0, :, :208, :] == 7).all()  # image rows at the top
    assert (blob[0, :, 208:, :] == 114).all()  # padding below
    assert blob.max() == 114  # raw 0-255, not normalised


def _raw_output(hw=(416, 416), classes=80):
    return np.zeros((1, anchor_count(hw), 5 + classes), np.float32)


def test_decode_grid_and_stride():
    out = _raw_output()
    # Anchor 52*52 + 3*26 + 5 is stride 16, grid (x=5, y=3).
    i = 52 * 52 + 3 * 26 + 5
    out[0, i, :4] = [0.5, 0.25, np.log(2.0), 0.0]
    out[0, i, 4] = 0.9
    out[0, i, 5 + 2] = 0.8  # car
    box = letterbox(np.zeros((208, 208, 3), np.uint8), (416, 416))[1]  # ratio 2
    d = FAMILIES["yolox"].decode_output(out, box, (416, 416), conf=0.3, iou=0.45)
    assert d.class_ids.tolist() == [2]
    assert d.scores[0] == pytest.approx(0.72)
    cx, cy, w, h = (5 + 0.5) * 16, (3 + 0.25) * 16, 2 * 16, 16
    expected = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) / 2
    np.testing.assert_allclose(d.xyxy[0], expected, rtol=1e-5)


def test_nms_is_class_wise():
    out = _raw_output()
    for i, cls, score in [(100, 0, 0.9), (101, 0, 0.8), (102, 16, 0.7)]:
        out[0, i, 4] = 1.0
        out[0, i, 5 + cls] = score
    # Anchors 100 and 101 are neighbours at stride 8 with identical raw boxes: heavy overlap.
    out[0, 100:103, 2:4] = np.log(8.0)
    box = letterbox(np.zeros((416, 416, 3), np.uint8), (416, 416))[1]
    d = FAMILIES["yolox"].decode_output(out, box, (416, 416), conf=0.3, iou=0.45)
    assert sorted(d.class_ids.tolist()) == [0, 16]  # the second person is suppressed, the dog stays
    assert d.scores.tolist() == pytest.approx([0.9, 0.7])


def test_decode_below_threshold_is_empty():
    out = _raw_output()
    out[0, :, 4] = 0.5
    out[0, :, 5] = 0.5
    box = letterbox(np.zeros((416, 416, 3), np.uint8), (416, 416))[1]
    d = FAMILIES["yolox"].decode_output(out, box, (416, 416), conf=0.3, iou=0.45)
    assert len(d) == 0 and d.xyxy.shape == (0, 4)


@pytest.mark.parametrize("family", ["yolox", "yolov5"])
def test_scores_are_the_same_whether_or_not_rows_are_ruled_out_by_objectness(family):
    """Post-processing skips rows whose objectness is below --conf only when no class score
    can lift them above it; a model with class scores above 1 has every row scored."""
    rng = np.random.default_rng(0)
    out = _raw_output()
    out[0, :, :4] = rng.uniform(0, 200, (out.shape[1], 4)) if family == "yolov5" else 0.0
    out[0, :, 4:] = rng.uniform(0, 1, out[0, :, 4:].shape) ** 4  # mostly low, a few high
    box = letterbox(np.zeros((416, 416, 3), np.uint8), (416, 416))[1]
    fam = FAMILIES[family]
    rows = fam.rows(out[0])
    assert 0 < len(fam.candidates(rows, 0.3)) < len(rows) / 2  # the rule did rule rows out
    everything = type(fam)()
    everything.candidates = lambda rows, conf: None  # type: ignore[method-assign]
    fast = fam.decode_output(out, box, (416, 416), conf=0.3, iou=0.45)
    slow = everything.decode_output(out, box, (416, 416), conf=0.3, iou=0.45)
    assert len(fast) > 0
    np.testing.assert_array_equal(fast.xyxy, slow.xyxy)
    np.testing.assert_array_equal(fast.scores, slow.scores)
    np.testing.assert_array_equal(fast.class_ids, slow.class_ids)
    # Objectness 0.2 is below 0.3, but a class score of 2 makes the score 0.4: still found.
    out = _raw_output()
    out[0, 7, 4], out[0, 7, 5 + 3] = 0.2, 2.0
    found = fam.decode_output(out, box, (416, 416), conf=0.3, iou=0.45)
    assert found.class_ids.tolist() == [3] and found.scores[0] == pytest.approx(0.4)


def _fake_session(in_shape, out_shape):
    arg = SimpleNamespace
    return SimpleNamespace(
        get_inputs=lambda: [arg(name="images", shape=in_shape)],
        get_outputs=lambda: [arg(name="output", shape=out_shape)],
        run=lambda _names, _feed: [np.zeros(out_shape, np.float32)],
        get_modelmeta=lambda: SimpleNamespace(custom_metadata_map={}),
    )


def test_wrong_input_shape_is_refused():
    with pytest.raises(ModelError, match=r"input shape \[1, 416, 416, 3\]"):
        read_spec(_fake_session([1, 416, 416, 3], [1, 3549, 85]), "m.onnx")


def test_other_input_sizes_are_read_from_the_model():
    spec = read_spec(_fake_session([1, 3, 640, 640], [1, 8400, 85]), "m.onnx")
    assert (spec.input_name, spec.input_hw, spec.family.name) == ("images", (640, 640), "yolox")
    assert spec.labels[0] == "person" and len(spec.labels) == 80


def test_detections_name_filter_and_measure_their_boxes():
    d = Detections(
        [[0, 0, 10, 10], [0, 0, 2, 3], [5, 5, 25, 15]],
        [0.9, 0.8, 0.7],
        [0, 2, 99],
        labels=("person", "bicycle", "car"),
    )
    assert d.names == ["person", "car", "99"]  # a class the labels do not name: its number
    assert d.area.tolist() == [100, 6, 200]
    assert d.filter(classes={0, 99}).names == ["person", "99"]
    assert d.filter(min_area=50).names == ["person", "99"]
    assert d.filter(max_det=1).names == ["person"]
    assert d.filter(classes={2}, min_area=50).names == []
    assert d[d.scores > 0.75].labels == d.labels  # indexing keeps the names


def test_detections_validate_shapes():
    with pytest.raises(ValueError, match=r"xyxy must have shape \(n, 4\), got \(1, 3\)"):
        Detections([[0, 0, 1]], [0.5], [0])
    with pytest.raises(ValueError, match="same length"):
        Detections([[0, 0, 1, 1]], [0.5, 0.6], [0])
    d = Detections([[0, 0, 1, 1], [1, 1, 2, 2]], [0.5, 0.9], [3, 4])
    assert d.xyxy.dtype == np.float32 and d.class_ids.dtype == np.int32
    assert d[d.scores > 0.6].class_ids.tolist() == [4]
    assert len(Detections.empty()) == 0


def test_the_detections_docstring_example_runs():
    import doctest

    import annotate.types

    result = doctest.testmod(annotate.types)
    assert result.attempted >= 3 and result.failed == 0
