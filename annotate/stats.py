"""The rolling FPS line the seed printed, and end-of-run totals."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class RollingFps:
    """Every ``every`` frames, a line like
    ``Frame 30: 4 detections, inference 17.9ms, avg 33.2ms (30.1 FPS)``.

    ``avg`` is the mean interval between the completion times of the last ``every`` frames
    (``every`` frames have ``every - 1`` intervals), so it measures the whole pipeline;
    ``inference`` is the mean model time over the same frames.
    """

    every: int = 30
    _done: deque[float] = field(init=False)
    _inference: deque[float] = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError("every must be at least 1")
        # With every=1 the previous frame is kept too, so there is an interval to report.
        self._done = deque(maxlen=max(self.every, 2))
        self._inference = deque(maxlen=self.every)

    def update(self, done_at: float, inference_s: float, detections: int) -> str | None:
        """Record one finished frame; return the line to print, if this frame gets one."""
        self.count += 1
        self._done.append(done_at)
        self._inference.append(inference_s)
        if self.count % self.every:
            return None
        times = self._done
        inference_ms = 1000 * sum(self._inference) / len(self._inference)
        line = f"Frame {self.count}: {detections} detection{'s' if detections != 1 else ''}, "
        line += f"inference {inference_ms:.1f}ms"
        if len(times) >= 2:
            avg = (times[-1] - times[0]) / (len(times) - 1)
            fps = 1 / avg if avg > 0 else float("inf")
            line += f", avg {1000 * avg:.1f}ms ({fps:.1f} FPS)"
        return line


class LiveStats:
    """What the previews show, updated by the pipeline and read from other threads."""

    def __init__(self, source: str = "", provider: str = "", window: int = 30) -> None:
        import threading

        self._lock = threading.Lock()
        self._done: deque[float] = deque(maxlen=window)
        self._inference: deque[float] = deque(maxlen=window)
        self.source = source
        self.provider = provider
        self.frames = 0
        self.dropped = 0
        self.classes: dict[str, int] = {}
        self.tracks: int | None = None  # identities so far, when the run tracks
        self.counts: dict[str, object] | None = None  # lines and zones
        self.running = True

    def update(
        self,
        done_at: float,
        inference_s: float,
        dropped: int,
        classes: dict[str, int],
        tracks: int | None = None,
        counts: dict[str, object] | None = None,
    ) -> None:
        with self._lock:
            self.tracks = tracks
            self.counts = counts
            self._done.append(done_at)
            self._inference.append(inference_s)
            self.frames += 1
            self.dropped = dropped
            self.classes = classes

    def finish(self) -> None:
        with self._lock:
            self.running = False

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            done = list(self._done)
            fps = (
                (len(done) - 1) / (done[-1] - done[0])
                if len(done) > 1 and done[-1] > done[0]
                else 0.0
            )
            inference = (
                1000 * sum(self._inference) / len(self._inference) if self._inference else 0.0
            )
            return {
                "source": self.source,
                "provider": self.provider,
                "fps": fps,
                "inference_ms": inference,
                "frames": self.frames,
                "dropped": self.dropped,
                "classes": dict(self.classes),
                "tracks": self.tracks,
                "counts": self.counts,
                "running": self.running,
            }
