"""Encoding on a thread of its own (``annotate.sinks.background``): every frame handed over
is written, in order; the queue is bounded; the inner sink's errors reach the caller once."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from annotate.errors import OutputError
from annotate.sinks.background import BackgroundSink
from annotate.sinks.video import VideoSink
from annotate.types import Detections, Frame, SourceInfo
from tests.helpers import decode_video


def _frame(i: int) -> Frame:
    image = np.full((72, 128, 3), (i * 7) % 250, np.uint8)  # each frame's grey tells it apart
    return Frame(i, i / 25, image, "test")


class Recording:
    """An inner sink that records what it was given; ``hold`` keeps a write waiting."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.written: list[int] = []
        self.fail_at = fail_at
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.closed = False

    def write(self, frame, annotated, detections) -> None:
        self.entered.set()
        self.hold.wait()
        if frame.index == self.fail_at:
            raise OutputError("cannot write out.mp4: No space left on device")
        self.written.append(frame.index)

    def close(self) -> None:
        self.closed = True


def test_every_frame_handed_over_is_encoded_in_order(tmp_path):
    path = tmp_path / "apart.mp4"
    info = SourceInfo(128, 72, Fraction(25), 40)
    with BackgroundSink(VideoSink(path, info), depth=2) as sink:
        for i in range(40):
            frame = _frame(i)
            sink.write(frame, frame.image, Detections.empty())
    _, times, frames = decode_video(path)
    assert len(frames) == 40
    assert times == pytest.approx([i / 25 for i in range(40)], abs=1e-3)
    greys = [float(f.mean()) for f in frames]
    assert greys == pytest.approx([(i * 7) % 250 for i in range(40)], abs=2)


def test_a_slow_encoder_holds_the_caller_back_after_depth_frames():
    inner = Recording()
    inner.hold.clear()
    sink = BackgroundSink(inner, depth=2)
    handed: list[int] = []

    def produce() -> None:
        for i in range(6):
            sink.write(_frame(i), _frame(i).image, Detections.empty())
            handed.append(i)

    producer = threading.Thread(target=produce)
    producer.start()
    deadline = time.monotonic() + 10
    while len(handed) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # were the queue unbounded, the other three would be in by now
    assert inner.entered.is_set() and handed == [0, 1, 2]  # one encoding, two waiting
    inner.hold.set()
    producer.join(timeout=10)
    sink.close()
    assert inner.written == list(range(6)) and inner.closed
    assert sink.blocked_s > 0


def test_an_encoder_error_is_raised_once_by_the_next_write():
    inner = Recording(fail_at=3)
    sink = BackgroundSink(inner, depth=1)
    with pytest.raises(OutputError, match="No space left"):
        for i in range(50):
            sink.write(_frame(i), _frame(i).image, Detections.empty())
            time.sleep(0.005)
    sink.close()  # raised already: not again, and the inner sink is finalised
    assert inner.written == [0, 1, 2] and inner.closed


def test_an_error_on_the_last_frames_is_raised_by_close():
    inner = Recording(fail_at=4)
    sink = BackgroundSink(inner, depth=8)
    for i in range(5):
        sink.write(_frame(i), _frame(i).image, Detections.empty())
    with pytest.raises(OutputError, match="No space left"):
        sink.close()
    assert inner.written == [0, 1, 2, 3] and inner.closed
    sink.close()  # twice is fine
