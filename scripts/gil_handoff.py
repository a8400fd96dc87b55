#!/usr/bin/env python3
"""How fast the video encoder's thread goes when another thread runs Python beside it, at
each of Python's switch intervals: the encoder's calls (BGR → I420, the PyAV frame, x264)
let the GIL go, and getting it back waits for the other thread to yield it.

    python -m scripts.gil_handoff [--seconds 2] [--threads 8]

One thread writes 720p frames as ``annotate``'s encoder thread does (BGR to I420, a PyAV
frame, x264 ``ultrafast`` on ``--threads`` frame threads, muxed to a file), alone and with a
thread beside it that only runs Python bytecode (as a worker's post-processing does between
its C calls). The PyAV frame is made two ways: ``copy``, ``VideoFrame.from_ndarray`` of a
new I420 array (what ``annotate`` did up to 2026-12-06), and ``reused``, the sink's
``I420Frames`` (one buffer, the frame pointing at it). Frames per second of the encoder,
per switch interval. Results: printed as JSON (docs/performance.md, "GPU").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any


def encode_rate(seconds: float, threads: int, busy: bool, way: str, work: Path) -> float:
    """Frames per second of one encoder thread, with or without a Python thread beside it."""
    import av
    import numpy as np

    from annotate.sinks.video import I420Frames, to_i420

    reused = I420Frames(1280, 720)

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(4)]
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    beside = threading.Thread(target=spin, daemon=True)
    if busy:
        beside.start()
    done = 0
    with av.open(str(work / "out.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.codec_context.thread_count = threads
        stream.codec_context.thread_type = "FRAME"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            image = frames[done % 4]
            if way == "copy":
                frame = av.VideoFrame.from_ndarray(to_i420(image), format="yuv420p")
            else:
                frame = reused.frame(image)
            frame.pts, frame.time_base = done, Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
            done += 1
        rate = done / (time.perf_counter() - started)
        stop.set()
        for packet in stream.encode(None):
            container.mux(packet)
    if busy:
        beside.join()
    return round(rate, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=8, help="x264 frame threads")
    args = parser.parse_args()
    default = sys.getswitchinterval()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for switch_ms in (5.0, 1.0, 0.5):
            sys.setswitchinterval(switch_ms / 1000)
            out[f"{switch_ms:g} ms"] = {
                f"{way}, {side}": encode_rate(
                    args.seconds, args.threads, side == "beside Python", way, Path(tmp)
                )
                for way in ("copy", "reused")
                for side in ("alone", "beside Python")
            }
            print(switch_ms, out[f"{switch_ms:g} ms"], file=sys.stderr, flush=True)
    sys.setswitchinterval(default)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
