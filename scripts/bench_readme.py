#!/usr/bin/env python3
"""Benchmark the shared model on this machine and print the README's performance section.

    python scripts/bench_readme.py [--write]     # --write replaces the section in README.md

Runs ``annotate bench`` (every provider this build has) on the bundled photo and end to end on
each shared video, and checks the bench's own overhead: its inference-only mean against a bare
``session.run`` loop on the same input, measured in the same run, interleaved in blocks so
drift and noise hit both alike.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "yolox_nano.onnx"
VIDEOS = ["bottle-detection.mp4", "one-by-one-person-detection.mp4", "car-detection.mp4"]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def overhead(blocks: int = 10, per_block: int = 20) -> tuple[float, float]:
    """Mean ms of the bench's inference timing vs a bare ``session.run`` loop, interleaved
    in blocks on one session and one input."""
    from annotate.bench import BenchConfig, _bench_provider, bench_image
    from annotate.detector import Detector
    from annotate.detector.session import open_session
    from annotate.providers import CPU, Resolution

    resolution = Resolution((CPU,), "bench")
    image, _ = bench_image(None)
    config = BenchConfig(MODEL, iterations=per_block, warmup=0)
    session, info = open_session(MODEL, resolution, quiet=True)
    blob, _ = Detector(session, info).preprocess(image)
    feed = {session.get_inputs()[0].name: blob}
    for _ in range(10):
        session.run(None, feed)
    bench_means, bare = [], []
    for _ in range(blocks):
        result = _bench_provider(config, resolution, image, lambda *_a: (session, info))
        bench_means.append(result.inference.mean)
        for _ in range(per_block):
            started = time.perf_counter()
            session.run(None, feed)
            bare.append(time.perf_counter() - started)
    return float(np.mean(bench_means)), 1000 * float(np.mean(bare))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()

    from annotate.bench import BenchConfig, machine_info, run_bench

    machine = machine_info()
    lines = [
        BEGIN,
        f"Measured by `scripts/bench_readme.py` on {machine['cpu']} ({machine['cores']} cores), "
        f"{machine['system']}, Python {machine['python']}, onnxruntime {machine['onnxruntime']}, "
        f"YOLOX-Nano 416×416.",
        "",
        "| input | provider | inference ms (mean / p90) | pre + post ms | inference FPS "
        "| end-to-end FPS | decode / draw / write ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for video in [None, *VIDEOS]:
        source = str(SHARED / "data" / "videos" / video) if video else None
        config = BenchConfig(MODEL, None, args.iterations, 10, source, args.frames)
        report = run_bench(config)
        for r in report.results:
            if r.status != "ran":
                lines.append(f"| {video or 'bundled photo'} | {r.provider} | skipped: {r.reason} "
                             "| | | | |")  # fmt: skip
                continue
            e2e = r.end_to_end
            lines.append(
                f"| {video or 'bundled photo'} ({report.input['size'][0]}×"
                f"{report.input['size'][1]}) | {r.provider} | {r.inference.mean:.1f} / "
                f"{r.inference.p90:.1f} | {r.preprocess.mean + r.postprocess.mean:.1f} | "
                f"{r.fps:.0f} | {f'{e2e.fps:.1f}' if e2e else '–'} | "
                + (f"{e2e.stage_ms['decode']:.1f} / {e2e.stage_ms['draw']:.1f} / "
                   f"{e2e.stage_ms['write']:.1f} |" if e2e else "– |")
            )  # fmt: skip
    bench_ms, bare_ms = overhead()
    lines += [
        "",
        f"Bench overhead: its inference-only mean was {bench_ms:.2f} ms against {bare_ms:.2f} ms "
        f"for a bare `session.run` loop in the same run ({100 * (bench_ms / bare_ms - 1):+.1f} %).",
        END,
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        readme = ROOT / "README.md"
        current = readme.read_text()
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        if not pattern.search(current):
            print("README.md has no bench section markers", file=sys.stderr)
            return 1
        readme.write_text(pattern.sub(lambda _m: text, current))
    return 0


if __name__ == "__main__":
    sys.exit(main())
