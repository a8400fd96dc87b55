#!/usr/bin/env python3
"""What binds K cameras in one process: ``scripts/streams.py``'s one-process side for one K,
with the process's CPU use (cores, sampled each second), its thread count and, with
``--py-spy``, a ``py-spy record --gil`` profile (what holds the GIL).

    python -m scripts.streams_load --k 16 --seconds 20 --provider cuda [--batch 8]
        [--switch 0.005] [--processes 4] [--memory] [--py-spy PATH --out DIR]

``--memory``: cameras that hand out frames decoded once beforehand, at the same rate and
with the same losses, so no decoding is done while measured. ``--switch``: the GIL switch
interval several sources run with (annotate's default: ``MANY_SOURCES_SWITCH_S``).
``--batch``: annotate's ``--batch`` (8: the shared inference service); ``--processes``:
annotate's (the cores are then sampled in this process only). Numbers:
docs/performance.md, "Many cameras in one process".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import scripts.streams as streams
from annotate.testing import loop_clip
from scripts.harness import FOOTAGE, cpu_reference, scaled
from scripts.live import BUFFERS


class MemoryCamera:
    """A camera stand-in whose frames were decoded before the run (shared by every camera),
    released at ``fps`` and lost as :class:`scripts.live.DriverCamera` loses them."""

    frames: ClassVar[list[Any]] = []

    def __init__(self, path: Path, fps: float) -> None:
        import cv2

        if not MemoryCamera.frames:
            capture = cv2.VideoCapture(str(path))
            while len(MemoryCamera.frames) < 120:
                ok, frame = capture.read()
                if not ok:
                    break
                MemoryCamera.frames.append(frame)
        self.fps, self.due, self._n = fps, 0.0, 0
        self._start: float | None = None

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def read(self) -> tuple[bool, Any]:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        newest = math.floor((now - self._start) * self.fps)
        self._n = max(self._n, newest - BUFFERS + 1)  # lost while the reader was busy
        self.due = self._start + self._n / self.fps
        if (wait := self.due - time.monotonic()) > 0:
            time.sleep(wait)
        frame = MemoryCamera.frames[self._n % len(MemoryCamera.frames)].copy()
        self._n += 1
        return True, frame

    def get(self, prop: int) -> float:
        return self.fps if prop == 5 else 0.0  # cv2.CAP_PROP_FPS

    def release(self) -> None:
        pass


#: The stand-ins' clip: 20 s at 30 FPS, looped for longer ``--frames``.
CLIP_FRAMES = 600


def _stat(pid: int | str) -> list[str]:
    """``/proc/PID/stat``'s fields after the command's name (``[1]`` the parent's pid)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):  # gone meanwhile
        return []


def tree_usage() -> tuple[float, int]:
    """CPU seconds and threads of this process and every live descendant (``--processes``
    runs the cameras in child processes); the seconds include what reaped children used."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(entry)):
            children.setdefault(int(fields[1]), []).append(int(entry))
    ticks, threads, tree = 0, 0, [os.getpid()]
    while tree:
        pid = tree.pop()
        fields = _stat(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])
            threads += int(fields[17])
            if pid == os.getpid():
                ticks += int(fields[13]) + int(fields[14])
        tree.extend(children.get(pid, []))
    return ticks / os.sysconf("SC_CLK_TCK"), threads


def over_time(times: list[list[float]], settle: float) -> dict[str, Any]:
    """From each camera's drawn capture times (its JSON's ``time``, 0 at its first frame):
    the share of the camera's frames drawn in each second of the run (all cameras pooled),
    and the worst camera's share after ``settle`` seconds. Losses bunched at the start
    (warm-up) and losses spread over the run call for different fixes."""
    if not times or not any(times):
        return {}
    rate = streams.RATE
    seconds = int(max(max(t) for t in times if t)) or 1
    per_second = [0] * seconds
    steady: list[float] = []
    for cam in times:
        for t in cam:
            if t < seconds:
                per_second[int(t)] += 1
        end = cam[-1] if cam else 0.0
        late = [t for t in cam if t >= settle]
        if end > settle + 1:
            steady.append(len(late) / ((end - settle) * rate + 1))
    return {
        "drawn_by_second": [round(n / (rate * len(times)), 3) for n in per_second],
        "steady_share_min": round(min(steady), 3) if steady else None,
    }


def cpu_boxes(clip: Path, frames: int = 300) -> float:
    """Boxes per frame on the clip's first frames, by the CPU on the model's square canvas."""
    with tempfile.TemporaryDirectory() as tmp:
        out = cpu_reference(clip, streams.MODEL, Path(tmp) / "ref.jsonl", frames, "--track")
        counts = [len(json.loads(line)["detections"]) for line in out.read_text().splitlines()]
    return round(sum(counts) / max(1, len(counts)), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--provider", default="cuda", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--switch", type=float, default=None)
    parser.add_argument("--processes", type=int, default=1, help="annotate's --processes")
    parser.add_argument(
        "--camera-threads",
        type=int,
        default=1,
        help="each stand-in's FFmpeg threads (0: OpenCV's default)",
    )
    parser.add_argument("--memory", action="store_true")
    parser.add_argument(
        "--frames",
        type=int,
        default=CLIP_FRAMES,
        help="each stand-in's clip length (20 s at 30 FPS; a camera whose "
        "clip ends stops sending frames)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds after each camera's first frame left out of 'steady'",
    )
    parser.add_argument("--py-spy", default="", help="py-spy's path: profile the GIL")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    if args.provider == "cuda":
        streams.PROVIDER[:] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    streams.BATCH[0] = args.batch
    streams.CAMERA_THREADS[0] = args.camera_threads
    if args.switch is not None:
        from annotate import defaults

        defaults.MANY_SOURCES_SWITCH_S = args.switch
    work = Path("/tmp/annotate-streams")
    work.mkdir(exist_ok=True)
    clip = work / "cam720-load.mp4"
    if not clip.exists():
        scaled(FOOTAGE, clip, 720, CLIP_FRAMES)
    if args.frames > CLIP_FRAMES:  # longer runs play the clip again (remuxed, not encoded)
        longer = work / f"cam720-load-{args.frames}.mp4"
        if not longer.exists():
            loop_clip(clip, longer, math.ceil(args.frames / CLIP_FRAMES))
        clip = longer
    if args.memory:
        MemoryCamera(clip, streams.RATE)
        streams.DriverCamera = MemoryCamera  # type: ignore[misc, assignment]
    samples: list[tuple[float, int]] = []

    def sample() -> None:
        last, used = time.monotonic(), tree_usage()[0]
        while True:
            time.sleep(1.0)
            now, (cpu, threads) = time.monotonic(), tree_usage()
            samples.append(((cpu - used) / (now - last), threads))
            last, used = now, cpu

    threading.Thread(target=sample, daemon=True).start()
    if args.py_spy:
        profile = Path(args.out) / f"gil-{args.k}-{args.provider}-{args.batch}.txt"

        def spy() -> None:
            time.sleep(3)  # past the start
            subprocess.run([args.py_spy, "record", "--gil", "-r", "100", "-d", "4", "-p",
                            str(os.getpid()), "-f", "raw", "-o", str(profile), "--nonblocking"],
                           capture_output=True)  # fmt: skip

        threading.Thread(target=spy, daemon=True).start()
    times: list[list[float]] = []
    boxes: list[int] = []
    cams = streams.ours(clip, args.k, args.seconds, args.processes, times, boxes)
    failed = [c for c in cams if "drawn_share" not in c]
    if failed:
        print(f"{len(failed)} of {len(cams)} cameras failed: see the errors above", flush=True)
        os._exit(1)
    steady = samples[2:-1] or samples
    print(json.dumps({
        "k": args.k, "provider": args.provider, "batch": args.batch, "switch": args.switch,
        "processes": args.processes, "camera_threads": args.camera_threads,
        "memory": args.memory, "kept": all(c["kept"] for c in cams),
        "drawn_share_min": min(c["drawn_share"] for c in cams),
        "age_p95_ms_max": max(c["age_p95_ms"] for c in cams),
        "cores_used": round(sum(s[0] for s in steady) / max(1, len(steady)), 2),
        "threads": max((s[1] for s in samples), default=0),
        **over_time(times, args.settle),
        # Beside the CPU's count on the same clip: rates measured on wrong boxes show it
        # (docs/performance.md, "GPU", "Correction").
        "boxes_per_frame": round(sum(boxes) / max(1, len(boxes)), 2),
        "boxes_per_frame_cpu": cpu_boxes(clip),
    }), flush=True)  # fmt: skip
    os._exit(0)  # the stand-ins' threads are daemons; leave without waiting on them


if __name__ == "__main__":
    sys.exit(main())
