"""Network streams (RTSP, RTMP, HTTP, …) opened by FFmpeg, reopened when they drop."""

from __future__ import annotations

import logging
import threading
import time

from annotate.errors import SourceError
from annotate.sources.live import LatestFrame, LiveSource
from annotate.sources.video import VideoSource
from annotate.types import Frame

log = logging.getLogger("annotate")

MAX_BACKOFF_S = 10.0


def backoff(attempt: int, first: float = 0.5) -> float:
    """0.5 s, 1 s, 2 s, … capped at 10 s."""
    return min(MAX_BACKOFF_S, first * 2.0 ** (attempt - 1))


class StreamSource(LiveSource):
    """A live stream read on its own thread; stale frames are dropped, never queued.

    When the stream ends or fails it is reopened up to ``reconnect`` times in a row, waiting
    longer each time. ``time`` is seconds since the first frame by the receiving clock, which
    stays continuous across reconnects (the stream's own timestamps restart).
    """

    def __init__(self, first: VideoSource, reconnect: int = 5, first_backoff: float = 0.5) -> None:
        super().__init__()
        self.name = first.name
        self.info = first.info
        self.hwdec = first.hwdec  # a reconnect decodes where the first connection did
        self.reconnect = reconnect
        self.first_backoff = first_backoff
        self._video: VideoSource | None = first
        self._started = time.monotonic()

    def produce(self, slot: LatestFrame, stop: threading.Event) -> None:
        index = 0
        attempt = 0
        while not stop.is_set():
            video = self._video
            if video is not None:
                try:
                    for frame in video:
                        if stop.is_set():
                            return
                        now = time.monotonic()
                        slot.put(
                            Frame(index, now - self._started, frame.image, self.name, captured=now)
                        )
                        index += 1
                        attempt = 0
                    problem = "the stream ended"
                except SourceError as e:
                    problem = str(e)
                finally:
                    video.close()
                    self._video = None
            else:
                problem = "could not reopen it"
            attempt += 1
            if attempt > self.reconnect:
                raise SourceError(
                    f"lost {self.name} ({problem}); gave up after {self.reconnect} reconnect "
                    "attempts (raise --reconnect to keep trying)"
                )
            wait = backoff(attempt, self.first_backoff)
            log.warning(
                "%s: %s; reconnecting in %.1f s (attempt %d/%d)",
                self.name,
                problem,
                wait,
                attempt,
                self.reconnect,
            )
            if stop.wait(wait):
                return
            try:
                self._video = VideoSource(self.name, hwdec=self.hwdec)
            except SourceError as e:
                log.debug("reconnect failed: %s", e)

    def release(self) -> None:
        if self._video is not None:
            self._video.close()
