#!/usr/bin/env python3
"""The live path against the camera loop a user would write by hand: frames drawn per
second and each frame's age from capture to drawn.

    python -m scripts.live [--frames 300] [--rounds 3] [--height 720] [--rates 30,60]

The camera is a stand-in fed from the shared bottle clip scaled to ``--height``, released at
each ``--rates`` frame rate by the clock (``annotate.testing.camera.FileCamera``), and, like a
webcam's driver, holding at most ``BUFFERS`` frames for a reader that falls behind (V4L2 gives
OpenCV 4 buffers); older ones are lost. Both sides read the same camera:
- **hand-written loop**: ``scripts/harness.py``'s loop reading the camera with
  ``read()`` and drawing each frame (``hand_written(camera=...)``), with and without an H.264
  recording (x264 ``ultrafast``);
- **annotate**: ``annotate run --source camera`` (its capture thread keeps only the newest
  frame), JSON Lines out, or an H.264 recording with the same preset.
At 30 FPS both keep up on most machines and the age is the figure that tells; at 60 FPS the
camera outpaces both and the frames drawn per second tell. Rounds alternate; each figure is
the median over the rounds. **Bare inference** is ``session.run`` alone with the live loop's
settings, the least a frame's age can be.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from annotate.testing.camera import FileCamera
from scripts.harness import FOOTAGE, MODEL, alternate, hand_written, scaled

BUFFERS = 4


class DriverCamera(FileCamera):
    """A :class:`FileCamera` at ``fps`` whose reader gets no frame older than ``BUFFERS``
    frame intervals (older ones are lost, as a webcam's driver loses them). A frame is
    decoded once it is due, as a webcam's frame is converted once it has arrived; ``due``
    is when the last frame read was captured, the clock both sides' ages start from."""

    def __init__(self, path: Path, fps: float, threads: int = 0) -> None:
        super().__init__(path, threads)
        self.fps = fps
        self.due = 0.0

    def read(self):
        now = time.monotonic()
        if self._start is None:
            self._start = now
        newest = math.floor((now - self._start) * self.fps)
        while self._n < newest - BUFFERS + 1:  # lost while the reader was busy
            self._cap.grab()
            self._n += 1
        self.due = self._start + self._n / self.fps
        return super().read()


def ours(
    clip: Path, rate: float, frames: int, record: Path | None, session: Any = None
) -> tuple[float, list[float]]:
    """(frames drawn per second, ages in ms) for ``annotate run --source camera``
    (``session``: :class:`SessionSettings` other than the pipeline's choice)."""
    from annotate.detector import SessionSettings
    from annotate.pipeline import RunOptions, run
    from annotate.providers import CPU, Resolution
    from annotate.sinks.video import EncodeOptions
    from annotate.sources.camera import CameraSource

    device = DriverCamera(clip, rate)
    # Frames stamped with the moment the camera had them, as the hand-written loop's are.
    source = CameraSource(0, open_device=lambda _index: device, clock=lambda: device.due)
    with tempfile.TemporaryDirectory() as tmp:
        json_path = None if record else str(Path(tmp) / "d.jsonl")
        options = RunOptions(
            source="camera",
            model=MODEL,
            resolution=Resolution((CPU,), "bench"),
            output=record,
            json_path=json_path,
            max_frames=frames,
            encode=EncodeOptions(preset="ultrafast"),
            fps_every=10**9,
            session=session or SessionSettings(),
        )
        summary = run(options, source=source)
    loop_s = summary.wall_s - (summary.first_frame_s or 0)
    return (summary.frames - 1) / loop_s, [1000 * a for a in list(summary.ages)[10:]]


def hand(clip: Path, rate: float, frames: int, record: Path | None) -> tuple[float, list[float]]:
    ages: list[float] = []
    fps = hand_written(clip, record, frames, camera=DriverCamera(clip, rate), ages=ages)
    return fps, [1000 * a for a in ages[10:]]


def bare_inference_ms(height: int) -> dict[str, float]:
    """``session.run`` alone with the live loop's session settings (median of 200), on the
    canvas the live loop fits to a 16:9 frame and on the model's square (the hand-written
    loop's), alternating in blocks of 20."""
    import numpy as np

    from annotate.detector import Detector
    from annotate.detector.session import SessionSettings
    from annotate.pipeline import RunOptions
    from annotate.pipeline.plan import cpu_cores, plan_threads, spinning_for
    from annotate.providers import CPU, Resolution

    plan = plan_threads(RunOptions(source="", sequential=True), cpu_cores())
    settings = SessionSettings(threads=plan.intra_op, spinning=spinning_for(plan))
    detector = Detector.load(MODEL, Resolution((CPU,), "bench"), settings=settings, free_size=True)
    frame = np.zeros((height, height * 16 // 9, 3), np.uint8)
    times: dict[str, list[float]] = {}
    for block in range(22):
        for name, fit in (("fitted", True), ("square", False)):
            detector.fit = fit and detector.can_fit
            blob = detector.preprocess(frame)[0]
            key = f"{name} {blob.shape[3]}x{blob.shape[2]}"
            for _ in range(10):
                t0 = time.perf_counter()
                detector.infer(blob)
                if block >= 2:
                    times.setdefault(key, []).append(time.perf_counter() - t0)
    return {key: 1000 * statistics.median(t) for key, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--rates", default="30,60")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="annotate-live-") as name:
        tmp = Path(name)
        clip = scaled(
            FOOTAGE.parent / "bottle-detection.mp4", tmp / "cam.mp4", args.height, args.frames * 3
        )
        bare = ", ".join(f"{k} {v:.1f} ms" for k, v in bare_inference_ms(args.height).items())
        print(f"bare inference (session.run with the live loop's settings): {bare}")
        print("| camera | output | side | drawn FPS | age median | age p90 |")
        print("|---|---|---|---|---|---|")
        for rate in (float(r) for r in args.rates.split(",")):
            for record in (None, tmp / "rec.mp4"):
                runs = {
                    key: lambda call=call, rate=rate, record=record: call(
                        clip, rate, args.frames, record
                    )
                    for key, call in (("hand-written loop", hand), ("annotate run", ours))
                }
                seen = alternate(runs, args.rounds)
                what = "H.264 recording" if record else "none (hand) / JSON Lines (annotate)"
                base = statistics.median(fps for fps, _ in seen["hand-written loop"])
                for key, results in seen.items():
                    fps = statistics.median(f for f, _ in results)
                    med = statistics.median(statistics.median(a) for _, a in results)
                    p90 = statistics.median(sorted(a)[int(0.9 * len(a))] for _, a in results)
                    print(
                        f"| {args.height}p at {rate:g} FPS | {what} | {key} | {fps:.1f} "
                        f"({fps / base:.2f}×) | {med:.1f} ms | {p90:.1f} ms |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
