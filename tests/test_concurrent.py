"""The concurrent runner's rules (annotate/pipeline/runner.py, ConcurrentRun), with a stand-in
source, detector and emitter: order, slots, the first error, and a clean stop."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from annotate.detector import StageTimes
from annotate.errors import StopRequested
from annotate.pipeline.runner import ConcurrentRun
from annotate.types import Detections, Frame


class Source:
    """``frames`` tiny frames; counts how many are alive (decoded, not yet emitted)."""

    def __init__(self, frames: int, fail_at: int | None = None) -> None:
        self.frames, self.fail_at = frames, fail_at
        self.alive = self.most_alive = 0
        self.lock = threading.Lock()

    def deferred(self) -> Iterator[Callable[[], Frame]]:
        for i in range(self.frames):
            if i == self.fail_at:
                raise OSError("the stream went away")
            with self.lock:
                self.alive += 1
                self.most_alive = max(self.most_alive, self.alive)
            yield lambda i=i: Frame(i, i / 25, np.full((4, 4, 3), i % 256, np.uint8), "fake")

    def emitted(self) -> None:
        with self.lock:
            self.alive -= 1


class Detector:
    """Takes a random few milliseconds per call, so workers finish out of order."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.calls = 0

    def detect_batch(self, images: list[np.ndarray]) -> list[tuple[Detections, StageTimes]]:
        self.calls += 1
        time.sleep(random.uniform(0, 0.004))
        if any(int(image[0, 0, 0]) == self.fail_at for image in images):
            raise RuntimeError("the model failed")
        return [(Detections.empty(), StageTimes()) for _ in images]


class Emitter:
    def __init__(self, source: Source, slow_s: float = 0.0, stop_after: int | None = None):
        self.source, self.slow_s, self.stop_after = source, slow_s, stop_after
        self.order: list[int] = []

    def emit(self, frame: Frame, detections, times, decode_s) -> bool:
        if self.stop_after is not None and len(self.order) == self.stop_after:
            raise StopRequested("stop requested")
        time.sleep(self.slow_s)
        self.order.append(frame.index)
        self.source.emitted()
        return False


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(("decode", "detect-"))}


@pytest.mark.parametrize(("workers", "batch"), [(1, 1), (3, 1), (4, 3)])
def test_frames_come_out_in_source_order(workers, batch):
    random.seed(workers)
    source = Source(120)
    emitter = Emitter(source)
    ConcurrentRun(source, Detector(), emitter, workers=workers, batch=batch).run()
    assert emitter.order == list(range(120))
    assert not _threads()


def test_a_slow_writer_holds_the_decoder_back_to_the_slots():
    source = Source(60)
    run = ConcurrentRun(source, Detector(), Emitter(source, slow_s=0.003), workers=3, batch=2)
    run.run()
    assert run.slot_count == 2 + 3 * 2
    assert 1 < source.most_alive <= run.slot_count
    assert source.alive == 0


def test_the_first_worker_error_surfaces_and_stops_everything():
    source = Source(500)
    emitter = Emitter(source)
    with pytest.raises(RuntimeError, match="the model failed"):
        ConcurrentRun(source, Detector(fail_at=30), emitter, workers=3).run()
    assert len(emitter.order) <= 30 + 2 + 3  # nothing much after the failure
    assert emitter.order == list(range(len(emitter.order)))
    assert not _threads()


def test_a_source_error_comes_after_the_frames_it_delivered():
    source = Source(100, fail_at=40)
    emitter = Emitter(source)
    with pytest.raises(OSError, match="the stream went away"):
        ConcurrentRun(source, Detector(), emitter, workers=2).run()
    assert emitter.order == list(range(40))
    assert not _threads()


def test_a_stop_ends_every_thread():
    source = Source(10_000)
    emitter = Emitter(source, stop_after=25)
    with pytest.raises(StopRequested):
        ConcurrentRun(source, Detector(), emitter, workers=3, batch=2).run()
    assert emitter.order == list(range(25))
    assert not _threads()


def test_detect_every_sends_only_every_nth_frame_to_the_model():
    source = Source(30)
    detector = Detector()
    seen: list[bool] = []
    emitter = Emitter(source)
    real = emitter.emit

    def emit(frame, detections, times, decode_s):
        seen.append(detections is not None)
        return real(frame, detections, times, decode_s)

    emitter.emit = emit  # type: ignore[method-assign]
    ConcurrentRun(source, detector, emitter, workers=2, every=3).run()
    assert seen == [i % 3 == 0 for i in range(30)]
