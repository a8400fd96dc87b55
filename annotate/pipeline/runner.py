"""The two ways to drive frames through the pipeline.

- :func:`run_sequential`: read → detect → draw → write, one frame at a time. Used for live
  sources (whose newest-frame slot already keeps latency down) and by ``--sequential``.
- :class:`ConcurrentRun`: decoding, inference (worker threads sharing one session) and
  drawing/encoding run at once on their own threads, linked by bounded queues, so no core
  waits while another stage works. Frames come out in source order; an error in any stage
  stops them all.

Both hand each finished frame to an :class:`Emitter`, which draws, writes and keeps the stats,
so the two differ only in scheduling.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from annotate.detector import Detector, StageTimes
from annotate.errors import StopRequested
from annotate.pipeline.stages import FrameContext, Stage, run_stages
from annotate.signals import raise_received, signals_held
from annotate.stats import LiveStats, RollingFps
from annotate.types import Detections, Frame, Meta

if TYPE_CHECKING:
    from annotate.annotators import Annotator
    from annotate.pipeline.summary import ProgressListener, RunSummary
    from annotate.sinks import Sink
    from annotate.sources.base import Source

log = logging.getLogger("annotate")

POLL_S = 0.1  # how often blocked threads look at the stop flag
#: How much lower the inference workers' priority is than the rest of the run (Linux). Every
#: frame passes through decoding and encoding in order, while the workers run side by side
#: with slack: when they compete for a core the in-order stages should win. 3 was the best
#: of 0-10 (docs/performance.md, "Why the thread plan is what it is").
WORKER_NICENESS = 3
#: Frames between handing freed memory back to the system (see :func:`release_free_memory`).
TRIM_EVERY = 30


class Todo(NamedTuple):
    """A decoded frame waiting for a worker."""

    seq: int
    load: Callable[[], Frame]  # finishes the frame (colour conversion) on the worker's thread
    decode_s: float  # seconds spent decoding it so far


class Done(NamedTuple):
    """A frame back from a worker, waiting for its turn to be emitted."""

    seq: int
    frame: Frame
    decode_s: float
    detections: Detections | None  # None: not detected (--detect-every)
    times: StageTimes


class StopFlag(Protocol):
    """Asks a run to stop: a ``threading.Event`` or a ``multiprocessing`` one."""

    def is_set(self) -> bool: ...


@dataclass(kw_only=True)
class Emitter:
    """The in-order tail of the pipeline: draw, write, count, report."""

    annotators: Sequence[Annotator]
    sinks: Sequence[Sink]
    summary: RunSummary
    source: Source
    fps_every: int = 30
    max_frames: int | None = None
    progress: ProgressListener | None = None
    started: float = field(default_factory=time.perf_counter)
    live: LiveStats | None = None  # what the previews show
    #: Per-frame processing after detection: tracker, counter, the keeper of boxes to hide
    #: (:mod:`annotate.pipeline.stages`). They sit here, in the in-order tail, because both
    #: runners call :meth:`emit` in source order: the concurrent runner detects out of order
    #: on its workers but emits strictly by sequence number, so a tracker sees frames in order.
    stages: Sequence[Stage] = ()
    stop: StopFlag | None = None  # checked before each frame
    label: str = ""  # the source's name in a run of several, before each FPS line

    def __post_init__(self) -> None:
        self.fps = RollingFps(self.fps_every)
        #: Whether any output shows the picture: a run writing only JSON or MOT draws nothing.
        self.draw = any(getattr(sink, "pixels", True) for sink in self.sinks)

    def emit(
        self, frame: Frame, detections: Detections | None, times: StageTimes, decode_s: float
    ) -> bool:
        """Track, draw and write one frame; ``True`` when ``max_frames`` is reached.

        ``detections`` is ``None`` for a frame that was not detected (``--detect-every``):
        the tracker predicts where its objects are.
        """
        if self.stop is not None and self.stop.is_set():
            raise StopRequested("stop requested")
        raise_received()
        t0 = time.perf_counter()
        self.summary.detected += detections is not None
        if self.stages:
            when = (
                frame.time if frame.time is not None else frame.index / float(self.source.info.fps)
            )
            context = FrameContext(frame, when, detected=detections is not None)
            detections = run_stages(self.stages, detections, context)
        elif detections is None:
            detections = Detections.empty()
        image = frame.image
        for annotator in self.annotators if self.draw else ():
            image = annotator.annotate(image, detections)
        t1 = time.perf_counter()
        summary = self.summary
        if frame.captured is not None:  # capture → drawn (the displays come first below)
            summary.ages.append(time.monotonic() - frame.captured)
        stop: StopRequested | None = None
        with signals_held():  # every output gets this frame, or none does
            for sink in self.sinks:
                try:
                    sink.write(frame, image, detections)
                except StopRequested as e:  # the other outputs still get this frame; it counts
                    stop = e
            summary.frames += 1
        now = time.perf_counter()
        stage = summary.stage_s
        stage["decode"] += decode_s
        stage["preprocess"] += times.preprocess
        stage["inference"] += times.inference
        stage["postprocess"] += times.postprocess
        stage["draw"] += t1 - t0  # with the tracker, which runs in this thread too
        stage["write"] += now - t1
        if summary.frames == 1:
            summary.first_frame_s = now - self.started
            log.debug("First annotated frame after %.2f s", summary.first_frame_s)
        if summary.frames % TRIM_EVERY == 0:
            release_free_memory()
        summary.dropped = self.source.dropped
        line = self.fps.update(now, times.inference, len(detections))
        if line:
            if frame.captured is not None:
                line += f", age {1000 * summary.ages[-1]:.0f}ms"
            if summary.dropped:
                line += f", {summary.dropped} dropped"
            log.info("%s: %s" if self.label else "%s%s", self.label, line)
        if self.progress is not None:
            self.progress.update(summary.frames)
        if self.live is not None:
            meta = detections.meta
            self.live.update(
                now,
                times.inference,
                summary.dropped,
                class_counts(detections),
                meta.get(Meta.TRACKS),
                meta.get(Meta.COUNTS),
            )
        if stop is not None:
            raise stop
        return self.max_frames is not None and summary.frames >= self.max_frames


def lower_priority(by: int) -> None:
    """Raise the calling thread's niceness by ``by`` (Linux, where each thread has its own)."""
    if sys.platform != "linux":  # elsewhere the call would reach a process, not this thread
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):  # a sandbox may refuse: the run only loses a little
        niceness = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness + by))


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc: macOS, musl, Windows
        return None


def release_free_memory() -> None:
    """Give free heap pages back to the system (glibc; elsewhere nothing to do).

    Frames are made on one thread and freed on another, so glibc's per-thread arenas keep
    free frame-sized holes that it does not return by itself. Every ``TRIM_EVERY`` frames
    (about a second) lowers the peak at no measurable cost; much more often costs speed.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def class_counts(detections: Detections) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in detections.names:
        counts[name] = counts.get(name, 0) + 1
    return counts


class DetectEvery:
    """Which frames the detector sees: every ``n``-th, or with ``n`` of ``None`` ("auto"),
    as often as the source's frame rate allows.

    Auto keeps the time per frame within the source's frame interval: with inference taking
    ``d`` seconds and the rest of a frame's work ``r``, detecting one frame in ``n`` costs
    ``(d + n·r) / n`` per frame, so ``n = ceil(d / (interval - r))``, from running means.
    """

    def __init__(self, n: int | None, interval_s: float = 0.0, most: int = 10) -> None:
        self.n, self.interval_s, self.most = n, interval_s, most
        self._inference = self._rest = 0.0
        self._since = 0

    def due(self) -> bool:
        """Whether the next frame is to be detected."""
        n = self.n if self.n is not None else self._auto()
        due = self._since == 0 or self._since >= n
        self._since = 1 if due else self._since + 1
        return due

    def measured(self, inference_s: float | None, rest_s: float) -> None:
        """The last frame's detection time (``None`` if not detected) and the rest of its
        time, waiting for a live source's next frame included: when detection keeps up,
        that wait is what it leaves spare, so auto settles on detecting every frame."""
        if inference_s is not None:
            self._inference += 0.2 * (inference_s - self._inference)
        self._rest += 0.2 * (rest_s - self._rest)

    def _auto(self) -> int:
        spare = self.interval_s - self._rest
        if spare <= 0:
            return self.most
        return max(1, min(self.most, math.ceil(self._inference / spare)))


def run_sequential(
    source: Source, detector: Detector, emitter: Emitter, every: DetectEvery | None = None
) -> None:
    frames = iter(source)
    every = every or DetectEvery(1)
    while True:
        t0 = time.perf_counter()
        frame = next(frames, None)
        if frame is None:
            return
        decode_s = time.perf_counter() - t0
        detections: Detections | None = None
        times = StageTimes()
        if every.due():
            detections, times = detector.detect(frame.image)
        t1 = time.perf_counter()
        if emitter.emit(frame, detections, times, decode_s):
            return
        inference_s = times.preprocess + times.inference + times.postprocess
        every.measured(
            inference_s if detections is not None else None, time.perf_counter() - t1 + decode_s
        )


class Slots:
    """A counting semaphore on ``queue.SimpleQueue``, whose waits are C and let go of the GIL:
    ``threading.Semaphore`` is Python over a condition, and on a GPU box every frame's
    acquire and release competed for the GIL with the stages (docs/performance.md, "GPU")."""

    def __init__(self, count: int) -> None:
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(count):
            self._tokens.put(None)

    def acquire(self, timeout: float) -> bool:
        try:
            self._tokens.get(timeout=timeout)
            return True
        except queue.Empty:
            return False

    def release(self) -> None:
        self._tokens.put(None)


def _detect(
    items: list[Todo], detector: Detector, done: queue.SimpleQueue[Done | None], every: int = 1
) -> None:
    """Finish, detect and pass on a batch of frames.

    ``items`` is emptied as each frame is finished, so no decoded picture outlives its
    conversion, and once this returns no frame is held by the worker: the slots that bound
    the frames in memory count only frames that are waiting or being written.
    """
    frames = []
    items.reverse()
    while items:
        item = items.pop()
        t0 = time.perf_counter()  # the colour conversion counts as decoding
        frames.append((item.seq, item.load(), item.decode_s + time.perf_counter() - t0))
    due = [frame.image for seq, frame, _ in frames if seq % every == 0]
    results = iter(detector.detect_batch(due) if due else [])
    for seq, frame, decode_s in frames:
        detections, times = next(results) if seq % every == 0 else (None, StageTimes())
        done.put(Done(seq, frame, decode_s, detections, times))


class ConcurrentRun:
    """Decode on one thread, detect on ``workers`` threads, draw and write on the caller's.

    Its rules, each held by a test (``tests/test_concurrent.py``):

    - **Order**: frames are emitted in source order, however the workers finish them.
    - **Slots**: a frame takes a slot when decoded and gives it back once written, so at
      most ``depth + workers * batch`` frames are alive at once; a slow encoder holds the
      decoder back instead of filling memory.
    - **First error surfaces**: a worker's error stops every thread and is raised; a
      source's error is raised after the frames it did deliver are emitted.
    - **Stop**: on any exit (the end, an error, Ctrl-C, the emitter's stop) every thread is
      told to stop and joined; frames still in flight are discarded, so every output holds
      the same frames.

    Only every ``every``-th frame is detected (``--detect-every``); the others pass through
    the workers untouched and the emitter's tracker predicts their boxes. Each worker takes
    up to ``batch`` waiting frames per inference call, never waiting for a batch to fill.
    ``depth`` is how many frames beyond the workers' own the slots allow (2 is faster than
    1; more bought little for much more memory). Frames wait still in the decoder's 4:2:0 (half the
    size of BGR) and each worker converts its own, faster than converting on the decoding
    thread. The calling thread draws and writes (windows need the main thread) and is the
    one that sees Ctrl-C; from 4 cores it hands the video to an encoding thread of its own
    (:mod:`annotate.sinks.background`, chosen by the plan).
    """

    def __init__(
        self,
        source: Source,
        detector: Detector,
        emitter: Emitter,
        workers: int = 2,
        depth: int = 2,
        batch: int = 1,
        every: int = 1,
    ) -> None:
        self.source, self.detector, self.emitter = source, detector, emitter
        self.workers, self.batch, self.every = workers, batch, every
        self.depth = max(depth, batch)
        self.stop = threading.Event()
        # Unbounded, C queues: the slots bound the frames in flight, waiting ones included.
        self.todo: queue.SimpleQueue[Todo | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[Done | None] = queue.SimpleQueue()
        self.slots = Slots(self.slot_count)
        self.errors: list[BaseException] = []  # from the workers: stop at once
        self.source_errors: list[BaseException] = []  # raised once the frames read are done

    @property
    def slot_count(self) -> int:
        """Frames decoded and not yet written, at most."""
        return self.depth + self.workers * self.batch

    def run(self) -> None:
        threads = [threading.Thread(target=self._read, name="decode", daemon=True)]
        threads += [
            threading.Thread(target=self._detect, name=f"detect-{i}", daemon=True)
            for i in range(self.workers)
        ]
        try:
            # Started inside the try: a Ctrl-C that lands between starting them and the loop
            # must still stop them before the source is closed under the decoder.
            for thread in threads:
                thread.start()
            self._emit_in_order()
        finally:
            self.stop.set()
            for thread in threads:
                if thread.ident is not None:  # started
                    thread.join(timeout=5)

    def _read(self) -> None:
        """The decoding thread: a slot per frame, then the frame to the workers."""
        try:
            frames = self.source.deferred()
            seq = 0
            while not self.stop.is_set():
                if not self.slots.acquire(timeout=POLL_S):
                    continue
                t0 = time.perf_counter()
                load = next(frames, None)
                if load is None:
                    break
                self.todo.put(Todo(seq, load, time.perf_counter() - t0))
                del load  # not held here while waiting for the next slot
                seq += 1
        except BaseException as e:  # surfaced by the emitting thread once the queue drains
            self.source_errors.append(e)
        finally:
            for _ in range(self.workers):
                self.todo.put(None)

    def _take(self) -> tuple[list[Todo], bool]:
        """Up to ``batch`` frames, waiting only for the first; ``True`` once the end is seen."""
        items: list[Todo] = []
        while not self.stop.is_set():
            try:
                item = self.todo.get(timeout=POLL_S) if not items else self.todo.get_nowait()
            except queue.Empty:
                if items:
                    break
                continue
            if item is None:
                return items, True
            items.append(item)
            if len(items) == self.batch:
                break
        return ([], True) if self.stop.is_set() else (items, False)

    def _detect(self) -> None:
        """A worker thread, below the in-order stages' priority."""
        lower_priority(WORKER_NICENESS)
        try:
            finished = False
            while not finished:
                items, finished = self._take()
                if items:
                    _detect(items, self.detector, self.done, self.every)
        except BaseException as e:
            self.errors.append(e)
            self.stop.set()
        finally:
            self.done.put(None)

    def _emit_in_order(self) -> None:
        """The calling thread: frames back from the workers, emitted by sequence number."""
        pending: dict[int, Done] = {}
        next_seq = 0
        running = self.workers
        while running:
            if self.errors:
                raise self.errors[0]
            try:
                item = self.done.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is None:
                running -= 1
                continue
            pending[item.seq] = item
            del item
            while next_seq in pending:
                ready = pending.pop(next_seq)
                next_seq += 1
                finished = self.emitter.emit(
                    ready.frame, ready.detections, ready.times, ready.decode_s
                )
                del ready  # the slot is free once the frame is no longer held here
                self.slots.release()
                if finished:
                    return
        if self.errors or self.source_errors:
            raise (self.errors or self.source_errors)[0]
