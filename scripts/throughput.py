#!/usr/bin/env python3
"""End-to-end throughput of ``annotate run`` against the loop a user would write by hand, the
sequential loop and the CPU roofline, on the shared footage at 720p and 1080p (and its own
size).

    python -m scripts.throughput [--frames 300] [--rounds 2] [--plans 2x1,4x1,8x1,4x2]
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
import sys
import tempfile
from pathlib import Path

from scripts.harness import (
    FOOTAGE,
    against,
    alternate,
    both_modes,
    hand_written,
    measure,
    save,
    scaled,
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
    results: list[dict[str, object]] = []
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
            compared = against(alternate(runs, args.rounds), "hand-written loop")
            parts = ", ".join(f"{k} {v:.1f}" for k, v in stage.items())
            print(f"{label}: CPU per frame {cpu_ms:.1f} ms ({parts}); roofline {roofline:.1f} FPS")
            for key, c in compared.items():
                print(
                    f"  {key:32s} {c.best:6.1f} FPS  {c.best_ratio:4.2f}× "
                    f"hand-written (median of rounds {c.median_ratio:4.2f}×)  "
                    f"{100 * c.best / roofline:3.0f} % of roofline"
                )
                results.append({"input": label, "run": key, "fps": round(c.best, 1),
                                "vs_hand": round(c.best_ratio, 3),
                                "vs_hand_median": round(c.median_ratio, 3),
                                "of_roofline": round(c.best / roofline, 3)})  # fmt: skip
    print(f"saved {save('throughput', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
