"""``annotate batch`` against what a user would otherwise run: a shell loop of ``annotate run``.

    python -m scripts.batch_bench short   # 20 clips of 2-5 s: batch vs the loop
    python -m scripts.batch_bench long    # long videos: batch vs one `annotate run` each
    python -m scripts.batch_bench ray     # the same clips: --ray (local) vs the local pool
    python -m scripts.batch_bench ray --ray-address auto   # ... joining a Ray already running
    python -m scripts.batch_bench jobs    # the short clips with --jobs 1, 2, 4, ... (cores/job)

Clips are cut from the shared videos (re-encoded with PyAV so each starts on a keyframe) into
a temporary folder; every side writes the same outputs (H.264 video and JSON Lines) with the
same settings, rounds alternate, and the best round of each side is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from scripts.harness import MODEL, SHARED, against, alternate, save, table

VIDEOS = SHARED / "data" / "videos"
if not VIDEOS.is_dir():  # the device machine's carried copy holds the videos beside the model
    VIDEOS = SHARED
SOURCES = ("bottle-detection.mp4", "car-detection.mp4", "one-by-one-person-detection.mp4")
ANNOTATE = [sys.executable, "-m", "annotate"]


def cut(source: Path, target: Path, start_s: float, seconds: float) -> Path:
    """``seconds`` of ``source`` from ``start_s``, re-encoded (x264 veryfast, CRF 20)."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        video = src.streams.video[0]
        rate = video.average_rate or Fraction(25)
        out = dst.add_stream("libx264", rate=rate, options={"preset": "veryfast", "crf": "20"})
        out.width, out.height, out.pix_fmt = video.width, video.height, "yuv420p"
        src.seek(int(start_s / video.time_base), stream=video)
        n = 0
        for frame in src.decode(video):
            if frame.time is None or frame.time < start_s:
                continue
            if frame.time >= start_s + seconds:
                break
            picture = frame.reformat(format="yuv420p")
            picture.pts, picture.time_base = n, Fraction(1) / rate
            n += 1
            for packet in out.encode(picture):
                dst.mux(packet)
        for packet in out.encode(None):
            dst.mux(packet)
    return target


def short_clips(folder: Path, count: int = 20) -> list[Path]:
    """``count`` clips of 2-5 s, cycling through the shared videos and their stretches."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(count):
        source = VIDEOS / SOURCES[i % len(SOURCES)]
        seconds = 2 + (i % 4)  # 2, 3, 4, 5
        start = 3.0 * (i // len(SOURCES))
        clips.append(cut(source, folder / f"clip{i:02d}.mp4", start, seconds))
    return clips


def shell_loop(clips: list[Path], out: Path, extra: list[str]) -> float:
    """What a user writes: ``for f in clips/*.mp4; do annotate run "$f" -o ...; done``."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for clip in clips:
        subprocess.run(
            [
                *ANNOTATE,
                "run",
                str(clip),
                "-o",
                str(out / clip.name),
                "--json",
                str(out / f"{clip.stem}.jsonl"),
                "-q",
                *extra,
            ],
            check=True,
        )
    return time.perf_counter() - t0


def batch(inputs: list[str], out: Path, extra: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run(
        [*ANNOTATE, "batch", *inputs, "-o", str(out), "--json", "-q", *extra], check=True
    )
    return time.perf_counter() - t0


def frames_in(out: Path) -> int:
    return sum(json.loads(line)["frames"] for line in (out / "manifest.jsonl").open())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("short", "long", "ray", "jobs"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=20, help="short clips")
    parser.add_argument("--jobs", default="1,2,4,8", help="for 'jobs': the --jobs values")
    parser.add_argument("--long", action="store_true", help="jobs, ray: the long videos")
    parser.add_argument("--ray-address", default="local", help="ray: local, or auto (running)")
    args = parser.parse_args()
    model = ["--model", str(MODEL)]
    tmp = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    try:
        clips_dir = tmp / "clips"
        clips = short_clips(clips_dir, args.count)
        longs = [VIDEOS / name for name in SOURCES]
        if args.what == "short":
            sides = {
                "shell loop of annotate run": lambda: shell_loop(clips, tmp / "loop", model),
                "annotate batch": lambda: batch([str(clips_dir)], tmp / "batch", model),
            }
        elif args.what == "ray":
            inputs = [str(p) for p in longs] if args.long else [str(clips_dir)]
            sides = {
                "annotate batch": lambda: batch(inputs, tmp / "batch", model),
                f"annotate batch --ray {args.ray_address}": lambda: batch(
                    inputs, tmp / "ray", [*model, "--ray", args.ray_address]
                ),
            }
        elif args.what == "jobs":
            inputs = [str(p) for p in longs] if args.long else [str(clips_dir)]
            sides = {
                f"--jobs {j}": lambda j=j: batch(inputs, tmp / "batch", [*model, "--jobs", str(j)])
                for j in args.jobs.split(",")
            }
        else:
            sides = {
                "annotate run, one after another": lambda: shell_loop(longs, tmp / "runs", model),
                "annotate batch": lambda: batch([str(p) for p in longs], tmp / "batch", model),
            }
        compared = against(alternate(sides, args.rounds), next(iter(sides)), higher=False)
        frames = frames_in(tmp / "batch")
        what = "the shared videos" if args.what == "long" or args.long else f"{len(clips)} clips"
        print(f"\n{os.cpu_count()} cores, {what}, {frames} frames")
        rows = [
            (name, f"{c.best:.2f} s", f"{frames / c.best:.1f}", f"{c.best_ratio:.2f}×")
            for name, c in compared.items()
        ]
        print(table(("run", "seconds", "FPS", "speed-up"), rows))
        save("batch_bench", {name: c.best for name, c in compared.items()})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
