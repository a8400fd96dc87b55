#!/usr/bin/env python3
"""End-to-end throughput of the concurrent runner against the sequential loop and the CPU
roofline, on the shared footage at 720p and 1080p (and its own size).

    python scripts/throughput.py [--frames 300] [--rounds 2] [--workers N]

For each input, in the same run:
- **roofline**: everything single-threaded and sequential (decoder, ONNX Runtime, x264 on
  one thread each), so the time per frame is the CPU time every stage needs; cores ÷ that
  is the most frames per second any design can get from this machine;
- **sequential**: the plain loop with default threads (``annotate run --sequential``);
- **concurrent**: the default runner (``annotate run``).
Sequential and concurrent alternate for ``--rounds`` rounds and the best of each is kept, so
a noisy neighbour hurts both alike. The 720p/1080p inputs are the shared video scaled up and
re-encoded as H.264 into a temporary directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "yolox_nano.onnx"
FOOTAGE = SHARED / "data" / "videos" / "one-by-one-person-detection.mp4"


def scaled(source: Path, target: Path, height: int, frames: int) -> Path:
    import av
    import cv2

    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        stream = src.streams.video[0]
        width = round(stream.width * height / stream.height / 2) * 2
        out = dst.add_stream("libx264", rate=stream.average_rate)
        out.width, out.height, out.pix_fmt = width, height, "yuv420p"
        out.options = {"preset": "veryfast", "crf": "20"}
        out.codec_context.time_base = Fraction(1, 1000)
        for i, frame in enumerate(src.decode(stream)):
            if i == frames:
                break
            image = cv2.resize(frame.to_ndarray(format="bgr24"), (width, height),
                               interpolation=cv2.INTER_CUBIC)  # fmt: skip
            new = av.VideoFrame.from_ndarray(image, format="bgr24")
            new.pts, new.time_base = round(1000 * frame.time), Fraction(1, 1000)
            for packet in out.encode(new):
                dst.mux(packet)
        for packet in out.encode(None):
            dst.mux(packet)
    return target


def measure(source: Path, tmp: Path, frames: int, **kw: object) -> tuple[float, dict[str, float]]:
    """(FPS over the loop, mean ms per frame per stage) for one ``annotate run``."""
    from annotate.detector import SessionSettings
    from annotate.pipeline import RunOptions, run
    from annotate.providers import CPU, Resolution
    from annotate.sinks.video import EncodeOptions

    threads = kw.pop("threads", None)
    encode_threads = kw.pop("encode_threads", 0)
    output = kw.pop("output", tmp / "out.mp4")  # None: no video output
    session = kw.pop("session", SessionSettings(threads=threads))  # type: ignore[arg-type]
    options = RunOptions(
        source=str(source), model=MODEL, resolution=Resolution((CPU,), "bench"),
        output=output, max_frames=frames, fps_every=10**9,
        session=session,
        encode=EncodeOptions(threads=encode_threads),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    summary = run(options)
    loop_s = summary.wall_s - (summary.first_frame_s or 0)
    fps = (summary.frames - 1) / loop_s
    stage = {k: 1000 * v / summary.frames for k, v in summary.stage_s.items()}
    return fps, stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    from annotate.pipeline.plan import cpu_cores

    n = cpu_cores()
    print(f"{n} cores; {args.frames} frames per run; best of {args.rounds} rounds")
    with tempfile.TemporaryDirectory(prefix="annotate-throughput-") as name:
        tmp = Path(name)
        frames = args.frames + 10
        inputs = [("768x432 (shared)", FOOTAGE),
                  ("720p", scaled(FOOTAGE, tmp / "720p.mp4", 720, frames)),
                  ("1080p", scaled(FOOTAGE, tmp / "1080p.mp4", 1080, frames))]  # fmt: skip
        for label, path in inputs:
            _fps, stage = measure(path, tmp, args.frames, sequential=True, threads=1,
                                  decode_threads=1, encode_threads=1)  # fmt: skip
            cpu_ms = sum(stage.values())
            roofline = n * 1000 / cpu_ms
            seq, conc = 0.0, 0.0
            for _ in range(args.rounds):
                seq = max(seq, measure(path, tmp, args.frames, sequential=True)[0])
                conc = max(conc, measure(path, tmp, args.frames, workers=args.workers)[0])
            parts = ", ".join(f"{k} {v:.1f}" for k, v in stage.items())
            print(f"{label}: CPU per frame {cpu_ms:.1f} ms ({parts})")
            print(f"  roofline {roofline:.1f} FPS")
            print(f"  sequential {seq:.1f} FPS, concurrent {conc:.1f} FPS: {conc / seq:.2f}× "
                  f"sequential, {100 * conc / roofline:.0f} % of roofline")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
