"""The tracker on boxes whose true identities are known (no model needed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from annotate.tracking import Tracker, TrackerSettings
from annotate.tracking.metrics import evaluate
from annotate.types import Detections

PERSON, CAR = 0, 2


def boxes(*items: tuple[float, float, float, float, float, int]) -> Detections:
    """``(x1, y1, x2, y2, score, class)`` rows."""
    rows = np.array(items, np.float64).reshape(-1, 6)
    return Detections(rows[:, :4], rows[:, 4], rows[:, 5].astype(int))


def ids(out: Detections) -> list[int]:
    assert out.track_id is not None
    return out.track_id.tolist()


def test_identities_start_at_1_once_confirmed_and_follow_each_object():
    tracker = Tracker()
    seen = []
    for i in range(10):
        x = 10 + 6 * i
        seen.append(
            ids(
                tracker.update(
                    boxes(
                        (x, 10, x + 40, 90, 0.9, PERSON), (400 - x, 200, 440 - x, 280, 0.8, PERSON)
                    ),
                    i / 30,
                )
            )
        )
    assert seen[:2] == [[-1, -1], [-1, -1]]  # not yet confirmed: null in JSON
    assert seen[2:] == [[1, 2]] * 8
    assert tracker.confirmed == 2 and tracker.active == 2


def test_a_new_tracker_starts_again_at_1():
    for _ in range(2):
        tracker = Tracker()
        for i in range(3):
            out = tracker.update(boxes((10, 10, 50, 90, 0.9, PERSON)), i / 30)
        assert ids(out) == [1]


def test_identity_kept_through_missed_frames_and_dropped_after_the_buffer():
    """Six frames with nothing detected (0.2 s) keep the identity; a gap longer than
    --track-buffer starts a new one."""
    tracker = Tracker(TrackerSettings(buffer_s=1.0))
    t = 0.0
    for i in range(5):
        out = tracker.update(boxes((100 + 10 * i, 50, 160 + 10 * i, 200, 0.9, PERSON)), t)
        t += 1 / 30
    for _ in range(6):
        assert len(tracker.update(Detections(), t)) == 0
        t += 1 / 30
    # It kept walking at 300 px/s while unseen: the prediction follows it.
    out = tracker.update(boxes((100 + 10 * 11, 50, 160 + 10 * 11, 200, 0.9, PERSON)), t)
    assert ids(out) == [1]
    t += 1.5  # longer than the buffer
    tracker.update(Detections(), t)
    for _ in range(3):
        t += 1 / 30
        out = tracker.update(boxes((500, 50, 560, 200, 0.9, PERSON)), t)
    assert ids(out) == [2]


@pytest.mark.parametrize(("score", "expected"), [(0.4, [-1]), (0.9, [1])])
def test_a_lost_track_needs_more_overlap_to_take_a_less_certain_box(score, expected):
    """TUD-Campus's one swap: a track lost for a while took a partial 0.40 box of someone
    else at a loose overlap. The overlap now counts times the box's score (ByteTrack's
    fuse_score): at 0.4 the box stays without an identity, at 0.9 it is the track's."""
    tracker = Tracker(TrackerSettings(high=0.3))
    t = 0.0
    for _ in range(4):
        tracker.update(boxes((0, 0, 40, 100, 0.9, PERSON)), t)
        t += 1 / 30
    for _ in range(5):  # lost, standing still
        tracker.update(Detections(), t)
        t += 1 / 30
    out = tracker.update(boxes((25, 20, 85, 160, score, PERSON)), t)
    assert ids(out) == expected


def test_time_not_frame_count_predicts_motion_across_dropped_frames():
    """A live source dropped 5 frames: the object moved 5 frames' worth. Matching by time
    finds it; a tracker that counted frames would expect it one frame on and lose it."""
    tracker = Tracker()
    for i in range(8):
        tracker.update(boxes((20 * i, 100, 20 * i + 30, 160, 0.9, CAR)), i / 30)
    out = tracker.update(boxes((20 * 13, 100, 20 * 13 + 30, 160, 0.9, CAR)), 13 / 30)
    assert ids(out) == [1]


def test_a_person_never_turns_into_a_car():
    tracker = Tracker()
    for i in range(4):
        tracker.update(boxes((100, 100, 200, 300, 0.9, PERSON)), i / 30)
    out = tracker.update(boxes((100, 100, 200, 300, 0.9, CAR)), 4 / 30)
    assert ids(out) == [-1]  # a new (tentative) car track, not person #1
    out = tracker.update(
        boxes((100, 100, 200, 300, 0.9, PERSON), (100, 100, 200, 300, 0.9, CAR)), 5 / 30
    )
    assert ids(out) == [1, -1]


def test_low_scores_keep_a_track_alive_but_start_none():
    """ByteTrack's second round: a partly hidden object's score drops below --conf; its
    track continues on that box, while a lone low-score box elsewhere is ignored."""
    tracker = Tracker(TrackerSettings(high=0.5, low=0.1))
    for i in range(4):
        tracker.update(boxes((10 * i, 10, 10 * i + 50, 110, 0.9, PERSON)), i / 30)
    out = tracker.update(
        boxes((40, 10, 90, 110, 0.2, PERSON), (600, 10, 650, 110, 0.2, PERSON)), 4 / 30
    )
    assert ids(out) == [1]
    assert out.scores.tolist() == pytest.approx([0.2])


def test_predict_moves_confirmed_tracks_and_marks_them():
    tracker = Tracker()
    for i in range(5):
        tracker.update(boxes((10 * i, 0, 10 * i + 40, 80, 0.9, PERSON)), i / 30)
    out = tracker.predict(6 / 30)
    assert ids(out) == [1]
    assert out.predicted is not None and out.predicted.tolist() == [True]
    assert out.xyxy[0, 0] == pytest.approx(60, abs=6)  # two frames further at 300 px/s


@pytest.mark.slow  # ~30 s: 100,000 updates
def test_state_stays_bounded_over_100000_frames():
    """A stream that runs for days: objects come and go; the tracker's state must not grow."""
    rng = np.random.default_rng(1)
    tracker = Tracker(TrackerSettings(buffer_s=0.5))
    lives: list[list[float]] = []  # x, y, vx, frames left
    largest = 0
    for frame in range(100_000):
        if rng.random() < 0.05:
            lives.append(
                [
                    rng.uniform(0, 1800),
                    rng.uniform(0, 1000),
                    rng.normal(0, 3),
                    rng.integers(10, 300),
                ]
            )
        for life in lives:
            life[0] += life[2]
            life[3] -= 1
        lives = [life for life in lives if life[3] > 0]
        shown = [
            (x, y, x + 60, y + 120, 0.9, PERSON) for x, y, _v, _n in lives if rng.random() > 0.1
        ]
        tracker.update(boxes(*shown), frame / 30)
        if frame % 1000 == 999:
            size = sum(
                sys.getsizeof(getattr(tracker, name))
                for name in ("mean", "cov", "classes", "ids", "hits", "last_seen", "lost", "scores")
            )
            largest = max(largest, size)
    assert tracker.confirmed > 1000  # many objects did come and go
    assert len(tracker.ids) < 60
    assert largest < 60 * (8 + 64 + 6) * 8 + 8 * 200  # a few KB: the live tracks only


def test_metrics_count_switches_misses_and_identity_agreement():
    truth = [(np.array([1, 2]), np.array([[0, 0, 10, 10], [50, 50, 60, 60]]))] * 4
    perfect = [(np.array([7, 8]), np.array([[0, 0, 10, 10], [50, 50, 60, 60]]))] * 4
    score = evaluate(truth, perfect)
    assert (score.mota, score.idf1, score.id_switches) == (1.0, 1.0, 0)
    switched = perfect[:2] + [(np.array([9, 8]), perfect[0][1])] * 2
    missing = [(np.array([7]), np.array([[0, 0, 10, 10]]))] * 4
    assert evaluate(truth, switched).id_switches == 1
    assert evaluate(truth, switched).idf1 == pytest.approx(0.75)
    score = evaluate(truth, missing)
    assert (score.misses, score.false_positives, score.mota) == (4, 0, 0.5)


def test_a_box_under_the_start_threshold_is_shown_but_starts_no_track():
    """ByteTrack's det_thresh: boxes from --conf (0.3) up are returned, but only those from
    ``start`` (0.6) up start a track; the others stay without an identity however long they
    last (on TUD-Campus most boxes of 0.3-0.6 were not people: docs/tracking.md)."""
    tracker = Tracker(TrackerSettings(high=0.3, low=0.1, start=0.6))
    boxes = [[10, 10, 50, 90], [200, 10, 240, 90]]
    for i in range(6):
        out = tracker.update(Detections(boxes, [0.9, 0.45], [0, 0]), i * 0.04)
    assert out.xyxy.tolist() == boxes
    assert out.track_id.tolist() == [1, -1]
    assert tracker.confirmed == 1
