"""A sink whose writes run on a thread of their own, in order, so encoding one frame overlaps
drawing the next.

The pipeline's in-order tail (track, draw, write) runs on one thread; when the model is off
the cores (a GPU) that thread is what bounds a run with ``-o``, and in it the encoder's call
costs more than the drawing. Behind this wrapper the tail only hands the drawn frame over,
and the encoder takes it on its own thread:

- **Order and completeness**: one thread writes, in the order frames were handed over; on
  :meth:`close` every frame handed over is written before the inner sink is finalised, so
  the video holds the same frames as the outputs written in line (JSON, MOT).
- **Bounded**: at most ``depth`` frames wait; a slower encoder holds the tail back rather
  than filling memory.
- **Errors**: an error of the inner sink is raised from the next :meth:`write`, or from
  :meth:`close` if no write came after it; frames handed over after it are not written.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING

from annotate.signals import signals_held
from annotate.sinks import SinkBase

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from annotate.sinks import Sink
    from annotate.types import Detections, Frame

#: Frames that may wait for the encoder: two keep it busy while the tail draws the next.
DEPTH = 2

_Item = tuple["Frame", "npt.NDArray[np.uint8]", "Detections"]


class BackgroundSink(SinkBase):
    """Wraps ``inner``: :meth:`write` queues the frame, a thread named ``name`` writes it."""

    def __init__(self, inner: Sink, depth: int = DEPTH, name: str = "encode") -> None:
        self.inner = inner
        self.pixels = getattr(inner, "pixels", True)
        #: Seconds the thread spent in the inner sink's ``write``: the encoding's cost, for
        #: the run's per-stage times (the tail's own ``write`` is only the hand-over).
        self.busy_s = 0.0
        #: Seconds :meth:`write` waited for room: the tail held back by the encoder.
        self.blocked_s = 0.0
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._raised = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        self._raise()
        item = (frame, annotated, detections)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            started = time.perf_counter()
            self._queue.put(item)
            self.blocked_s += time.perf_counter() - started

    def _raise(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drained, not written: the run is stopping on that error
            started = time.perf_counter()
            try:
                self.inner.write(*item)
            except BaseException as e:  # raised on the tail's thread (write or close)
                self._error = e
            self.busy_s += time.perf_counter() - started
            del item  # no frame outlives its write here

    def close(self) -> None:
        """Write what was handed over, then finalise the inner sink; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with signals_held():  # a few frames at most: a second Ctrl-C waits for them
            self._queue.put(None)
            self._thread.join()
        try:
            self.inner.close()
        finally:
            self._raise()
