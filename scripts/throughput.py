#!/usr/bin/env python3
"""End-to-end throughput of ``annotate run`` against the loop a user would write by hand, the
sequential loop and the CPU roofline, on the shared footage at 720p and 1080p (and its own
size).

    python scripts/throughput.py [--frames 300] [--rounds 2] [--plans 2x1,4x1,8x1,4x2]
                                 [--seq-threads 2,4,8] [--sizes 432,720,1080]
                                 [--decode-threads 2,4] [--encode-threads 4,8] [--square]

For each input, in the same run:
- **hand-written loop**: what a user writes in 40 lines (:func:`hand_written`): OpenCV's
  reader, an ONNX Runtime session with its defaults, the YOLOX recipe's letterbox, decode and
  ``cv2.dnn.NMSBoxesBatched``, OpenCV drawing, PyAV libx264; the baseline every other
  column is a ratio of;
- **roofline**: everything single-threaded and sequential (decoder, ONNX Runtime, x264 on
  one thread each), so the time per frame is the CPU time every stage needs; cores ÷ that
  is the most frames per second any design can get from this machine;
- **sequential**: the plain loop with its planned threads (``annotate run --sequential``),
  and with each ``--seq-threads`` count of ONNX Runtime threads;
- **concurrent**: the default runner (``annotate run``), and each ``--plans`` entry
  (``WORKERSxTHREADS``: inference workers × ONNX Runtime threads each);
- with ``--decode-threads`` / ``--encode-threads``, both modes with the decoder / x264 on
  each count of threads;
- with ``--square``, both modes on the model's square canvas too (``--canvas square``, the
  hand-written loop's), to tell the fitted canvas's share of the gain from the pipeline's.
Every side encodes with x264 ``ultrafast`` (the hand-written loop's choice) and reports the
frames per second of its loop after the first frame. They alternate for ``--rounds`` rounds;
each is reported best against best and as the median of its per-round ratios to the
hand-written loop, so a noisy neighbour hurts all alike. The 720p/1080p inputs are
the shared video scaled up and re-encoded as H.264 into a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANNOTATE_TEST_SHARED", ROOT.parent / "shared"))
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
            image = cv2.resize(
                frame.to_ndarray(format="bgr24"), (width, height), interpolation=cv2.INTER_CUBIC
            )
            new = av.VideoFrame.from_ndarray(image, format="bgr24")
            new.pts, new.time_base = round(1000 * frame.time), Fraction(1, 1000)
            for packet in out.encode(new):
                dst.mux(packet)
        for packet in out.encode(None):
            dst.mux(packet)
    return target


def hand_written(
    source: Path, out: Path | None, frames: int, camera: Any = None, ages: list[float] | None = None
) -> float:
    """The loop a user writes by hand; its FPS after the first frame.

    ``out`` ``None``: nothing is recorded (a live view). ``camera``: read from this capture
    device instead of the file (``scripts/live.py``); ``ages`` then gets each frame's age
    when drawn, from the moment the camera had it (``camera.due``).
    """
    import time

    import av
    import cv2
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    size = 416
    grids, strides = [], []
    for stride in (8, 16, 32):
        n = size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack((xs, ys), -1).reshape(-1, 2))
        strides.append(np.full((n * n, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    cap = camera or cv2.VideoCapture(str(source))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if out is not None:
        container = av.open(str(out), "w")
        video = container.add_stream("libx264", rate=round(cap.get(cv2.CAP_PROP_FPS) or 30))
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"preset": "ultrafast"}
    count, start = 0, 0.0
    while count < frames:
        ok, image = cap.read()
        if not ok:
            break
        if count == 1:
            start = time.perf_counter()
        r = min(size / h, size / w)
        canvas = np.full((size, size, 3), 114, np.uint8)
        canvas[: int(h * r), : int(w * r)] = cv2.resize(image, (int(w * r), int(h * r)))
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        pred = session.run(None, {name: blob})[0][0]
        scores = pred[:, 4:5] * pred[:, 5:]
        ids, conf = scores.argmax(1), scores.max(1)
        keep = conf > 0.3
        centre = (pred[keep, :2] + grid[keep]) * stride[keep]
        wh = np.exp(pred[keep, 2:4]) * stride[keep]
        xywh = np.concatenate((centre - wh / 2, wh), 1) / r
        for i in cv2.dnn.NMSBoxesBatched(
            xywh.tolist(), conf[keep].tolist(), ids[keep].tolist(), 0.3, 0.45
        ):
            x, y, bw, bh = (int(v) for v in xywh[i])
            cv2.rectangle(image, (x, y), (x + bw, y + bh), (0, 255, 0), 2)
            cv2.putText(
                image,
                f"{ids[keep][i]} {conf[keep][i]:.2f}",
                (x, y - 4),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6,
                (0, 255, 0),
                2,
            )
        if ages is not None:  # the benchmark's, not the user's
            ages.append(time.monotonic() - cap.due)
        if out is not None:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        count += 1
    if out is not None:
        for packet in video.encode(None):
            container.mux(packet)
        container.close()
    return (count - 1) / (time.perf_counter() - start)


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
    preset = kw.pop("preset", "ultrafast")
    options = RunOptions(
        source=str(source),
        model=MODEL,
        resolution=Resolution((CPU,), "bench"),
        output=output,
        max_frames=frames,
        fps_every=10**9,
        session=session,
        encode=EncodeOptions(threads=encode_threads, preset=preset),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    summary = run(options)
    loop_s = summary.wall_s - (summary.first_frame_s or 0)
    fps = (summary.frames - 1) / loop_s
    stage = {k: 1000 * v / summary.frames for k, v in summary.stage_s.items()}
    return fps, stage


def both_modes(
    source: Path, tmp: Path, frames: int, **kw: object
) -> tuple[Callable[[], float], Callable[[], float]]:
    """The sequential loop's and the concurrent runner's FPS on ``source`` with ``kw``
    (:func:`measure`'s options), each as a call for the rounds."""
    return (
        lambda: measure(source, tmp, frames, sequential=True, **kw)[0],
        lambda: measure(source, tmp, frames, **kw)[0],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--plans", default="", help="e.g. 4x1,8x1,4x2 (workers x threads)")
    parser.add_argument("--sizes", default="432,720,1080")
    parser.add_argument("--seq-threads", default="", help="e.g. 2,4,8: --sequential --threads N")
    parser.add_argument(
        "--decode-threads", default="", help="e.g. 2,4: both modes with N decoder threads"
    )
    parser.add_argument(
        "--encode-threads", default="", help="e.g. 4,8: both modes with x264 on N threads"
    )
    parser.add_argument(
        "--square",
        action="store_true",
        help="also both modes with --canvas square (the hand loop's canvas)",
    )
    args = parser.parse_args()
    from annotate.pipeline.options import RunOptions
    from annotate.pipeline.plan import cpu_cores, plan_threads

    n = cpu_cores()
    default = plan_threads(RunOptions(source=""), n).describe()
    plans = [tuple(int(v) for v in p.split("x")) for p in args.plans.split(",") if p]
    print(
        f"{n} cores; {args.frames} frames per run; best of {args.rounds} rounds; x264 "
        f"ultrafast everywhere; default plan: {default}"
    )
    with tempfile.TemporaryDirectory(prefix="annotate-throughput-") as name:
        tmp = Path(name)
        frames = args.frames + 10
        inputs = {
            "432": ("768x432 (shared)", FOOTAGE),
            "720": ("720p", tmp / "720p.mp4"),
            "1080": ("1080p", tmp / "1080p.mp4"),
        }
        for size in args.sizes.split(","):
            label, path = inputs[size]
            if not path.exists():
                scaled(FOOTAGE, path, int(size), frames)
            _fps, stage = measure(
                path,
                tmp,
                args.frames,
                sequential=True,
                threads=1,
                decode_threads=1,
                encode_threads=1,
            )
            cpu_ms = sum(stage.values())
            roofline = n * 1000 / cpu_ms
            runs = {
                "hand-written loop": lambda p=path: hand_written(p, tmp / "hand.mp4", args.frames)
            }
            runs["annotate run --sequential"], runs["annotate run"] = both_modes(
                path, tmp, args.frames
            )
            if args.square:
                runs["--sequential --canvas square"], runs["--canvas square"] = both_modes(
                    path, tmp, args.frames, canvas="square"
                )
            for count in (int(t) for t in args.decode_threads.split(",") if t):
                (
                    runs[f"--sequential, decoder {count} threads"],
                    runs[f"run, decoder {count} threads"],
                ) = both_modes(path, tmp, args.frames, decode_threads=count)
            for count in (int(t) for t in args.encode_threads.split(",") if t):
                (
                    runs[f"--sequential, x264 {count} threads"],
                    runs[f"run, x264 {count} threads"],
                ) = both_modes(path, tmp, args.frames, encode_threads=count)
            for workers, threads in plans:
                runs[f"--workers {workers} --threads {threads}"] = (
                    lambda p=path, w=workers, t=threads: measure(
                        p, tmp, args.frames, workers=w, threads=t
                    )[0]
                )
            for threads in (int(t) for t in args.seq_threads.split(",") if t):
                runs[f"--sequential --threads {threads}"] = lambda p=path, t=threads: measure(
                    p, tmp, args.frames, sequential=True, threads=t
                )[0]
            seen: dict[str, list[float]] = {key: [] for key in runs}
            for _ in range(args.rounds):
                for key, call in runs.items():
                    seen[key].append(call())
            parts = ", ".join(f"{k} {v:.1f}" for k, v in stage.items())
            print(f"{label}: CPU per frame {cpu_ms:.1f} ms ({parts}); roofline {roofline:.1f} FPS")
            hands = seen["hand-written loop"]
            for key, fps in seen.items():
                # Best against best, and the median of each round's ratio to the hand-written
                # loop run just before it (the noise of a shared machine hits both alike).
                paired = statistics.median(f / h for f, h in zip(fps, hands, strict=True))
                print(
                    f"  {key:32s} {max(fps):6.1f} FPS  {max(fps) / max(hands):4.2f}× "
                    f"hand-written (median of rounds {paired:4.2f}×)  "
                    f"{100 * max(fps) / roofline:3.0f} % of roofline"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
