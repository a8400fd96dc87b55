"""What a run reports: its summary, and the progress protocol a front end draws."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

AGES_KEPT = 1800  # a minute at 30 FPS
STAGES = ("decode", "preprocess", "inference", "postprocess", "draw", "write")


@dataclass
class RunSummary:
    frames: int = 0
    detected: int = 0  # frames the detector saw (fewer than frames with --detect-every)
    wall_s: float = 0.0
    provider: str = ""
    outputs: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the run ended early: "window closed", "SIGINT", ...
    tracks: int | None = None  # identities handed out, when the run tracks
    counts: dict[str, Any] | None = None  # lines and zones, as in the JSON Lines records
    first_frame_s: float | None = None
    dropped: int = 0
    #: Live sources: capture → drawn, seconds, for the last ``AGES_KEPT`` frames (a camera may
    #: run for days).
    ages: deque[float] = field(default_factory=lambda: deque(maxlen=AGES_KEPT))
    mode: str = ""
    #: Seconds spent per stage over the run: decode, preprocess, inference, postprocess,
    #: draw, write (encode and other outputs).
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @property
    def inference_s(self) -> float:
        return self.stage_s["inference"]

    #: What the inference service did (GPU runs): ``batches``, ``mean_batch``, ``largest``,
    #: ``busy_s`` (seconds in the device's calls).
    service: dict[str, float] | None = None

    @property
    def fps(self) -> float:
        """Frames ÷ the whole run's wall clock, start-up included."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def loop_fps(self) -> float | None:
        """The steady rate: frames after the first ÷ the time after it, start-up excluded
        (what ``annotate bench`` and a warmed-up loop measure); ``None`` under two frames."""
        if self.frames < 2 or self.first_frame_s is None:
            return None
        loop_s = self.wall_s - self.first_frame_s
        return (self.frames - 1) / loop_s if loop_s > 0 else None


class ProgressListener(Protocol):
    """How far a run has got; the CLI draws it (a Rich bar), the library only reports."""

    def start(self, total: int | None) -> None: ...
    def update(self, frames: int) -> None: ...
    def stop(self) -> None: ...
