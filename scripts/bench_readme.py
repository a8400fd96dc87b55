#!/usr/bin/env python3
"""Benchmark the shared model on this machine and print the README's performance section.

    python -m scripts.bench_readme [--write]  # --write: the section in docs/performance.md

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

import numpy as np

from scripts.harness import MODEL, ROOT, SHARED

VIDEOS = ["bottle-detection.mp4", "one-by-one-person-detection.mp4", "car-detection.mp4"]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def overhead(blocks: int = 10, per_block: int = 20) -> tuple[float, float]:
    """Mean ms of the bench's inference timing (its own session, as ``annotate bench``
    makes it) against a bare loop on a session made with ONNX Runtime's defaults, what a
    user would write, interleaved in blocks on the same input."""
    import onnxruntime as ort

    from annotate.bench import BenchConfig, _bench_provider, _open, bench_image
    from annotate.detector import Detector
    from annotate.providers import CPU, Resolution

    resolution = Resolution((CPU,), "bench")
    image, _ = bench_image(None)
    config = BenchConfig(MODEL, iterations=per_block, warmup=3)
    bare = ort.InferenceSession(str(MODEL), providers=[CPU])
    session, info = _open(MODEL, resolution, config.session)
    blob, _ = Detector(session, info).preprocess(image)
    del session
    feed = {bare.get_inputs()[0].name: blob}
    for _ in range(10):
        bare.run(None, feed)
    bench_means, bare_times = [], []
    for _ in range(blocks):
        result = _bench_provider(config, resolution, image, _open)
        bench_means.append(result.inference.mean)
        for _ in range(per_block):
            started = time.perf_counter()
            bare.run(None, feed)
            bare_times.append(time.perf_counter() - started)
    return float(np.mean(bench_means)), 1000 * float(np.mean(bare_times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/performance.md in place")
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
        "| input | provider | inference ms (mean / p90), ONNX Runtime defaults | as `run` "
        "uses it | `annotate run` FPS | `--sequential` FPS | CPU ms per frame: decode / "
        "inference / draw / write |",
        "|---|---|---|---|---|---|---|",
    ]
    for video in [None, *VIDEOS]:
        source = str(SHARED / "data" / "videos" / video) if video else None
        config = BenchConfig(MODEL, None, args.iterations, 10, source, args.frames)
        report = run_bench(config)
        for r in report.results:
            name = (
                f"{video or 'bundled photo'} ({report.input['size'][0]}×{report.input['size'][1]})"
            )
            if r.status != "ran":
                lines.append(f"| {name} | {r.provider} | skipped: {r.reason} | | | | |")
                continue
            e2e, seq = r.end_to_end, r.sequential
            used = r.pipeline_inference
            stages = ("decode", "inference", "draw", "write")
            cpu = " / ".join(f"{e2e.cpu_ms[k]:.1f}" for k in stages) if e2e else "–"
            lines.append(
                f"| {name} | {r.provider} | {r.inference.mean:.1f} / {r.inference.p90:.1f} | "
                f"{f'{used.mean:.1f} ({r.pipeline_settings})' if used else '–'} | "
                f"{f'{e2e.fps:.1f}' if e2e else '–'} | {f'{seq.fps:.1f}' if seq else '–'} | "
                f"{cpu} |"
            )
    bench_ms, bare_ms = overhead()
    lines += [
        "",
        "FPS are frames ÷ wall-clock seconds over the first "
        f"{args.frames} frames with an H.264 `-o`, start-up included, as `annotate run` reports "
        "them; CPU ms are each stage's time per frame, which overlap in the concurrent runner.",
        "",
        f"Bench overhead: its inference-only mean was {bench_ms:.2f} ms against {bare_ms:.2f} ms "
        "for a bare `session.run` loop on a session with ONNX Runtime's defaults, interleaved "
        f"in the same run ({100 * (bench_ms / bare_ms - 1):+.1f} %).",
        END,
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        readme = ROOT / "docs" / "performance.md"
        current = readme.read_text()
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        if not pattern.search(current):
            print("docs/performance.md has no bench section markers", file=sys.stderr)
            return 1
        readme.write_text(pattern.sub(lambda _m: text, current))
    return 0


if __name__ == "__main__":
    sys.exit(main())
