"""Live sources (cameras, network streams) read on their own thread into a one-frame slot.

When the model is slower than the source, the newest frame replaces the unread one instead of
queueing behind it, so what is drawn is never stale; the replaced frames are counted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

from annotate.sources.base import SourceBase
from annotate.types import Frame

POLL_S = 0.2  # how often a waiting consumer wakes, so Ctrl-C is handled promptly


class LatestFrame:
    """A slot holding at most one frame: ``put`` overwrites, ``get`` waits for a new one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self._error: BaseException | None = None
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify()

    def close(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._closed = True
            self._error = error
            self._cond.notify_all()

    def get(self) -> Frame | None:
        """The newest unread frame; ``None`` once the producer has finished and all is read.

        Raises the producer's error, if it failed.
        """
        with self._cond:
            while self._frame is None and not self._closed:
                self._cond.wait(POLL_S)
            frame, self._frame = self._frame, None
            if frame is None and self._error is not None:
                raise self._error
            return frame


class LiveSource(SourceBase):
    """Runs :meth:`produce` on a daemon thread once iteration starts."""

    name: str

    def __init__(self) -> None:
        self._slot = LatestFrame()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    def produce(self, slot: LatestFrame, stop: threading.Event) -> None:  # pragma: no cover
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self.produce(self._slot, self._stop)
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._slot.close(e)
        else:
            self._slot.close()

    def __iter__(self) -> Iterator[Frame]:
        """The newest frames, timed from the first one taken: where a slow start let newer
        frames replace the first captured ones, the JSON's times still start where a
        recording of the run starts (a video starts at its first frame)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"read {self.name}", daemon=True)
            self._thread.start()
        zero: float | None = None
        while (frame := self._slot.get()) is not None:
            if frame.time is not None:
                if zero is None:
                    zero = frame.time
                if zero:
                    frame = replace(frame, time=frame.time - zero)
            yield frame

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.release()

    def release(self) -> None:
        """Free the device or connection after the reader thread has stopped."""
