#!/usr/bin/env python3
"""How many live 720p cameras at 30 FPS one machine keeps in real time: ``annotate run`` with
all of them in one process, against one ``annotate run`` process per camera and a
hand-written loop of one thread per camera sharing one ONNX Runtime session.

    python -m scripts.streams [--seconds 20] [--max-k 6] [--height 720]
    python -m scripts.streams --provider cuda --search --max-k 64 --save-as streams-gpu
    python -m scripts.streams --sides processes --processes 4 --provider cuda --search …

Each camera is a stand-in fed from the shared pedestrian footage scaled to ``--height``,
released at 30 FPS by the clock and, like a webcam's driver, losing frames a slow reader
leaves behind (``scripts/live.py``'s ``DriverCamera``); ``annotate`` reads it through its
real camera path. Every side detects every frame it draws; ``annotate`` also tracks and
writes JSON Lines (the hand-written loop draws boxes, no tracking). A camera is **kept** when
at least 95 % of its frames are drawn and 95 % of them are drawn within 1.5 frame intervals
(50 ms) of capture; K is the most cameras all kept, for each side, counting up from one
(``--search``: doubling, then halving the gap, for machines that keep dozens).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from scripts.harness import FOOTAGE, MODEL, hand_written, save, scaled
from scripts.live import DriverCamera

RATE = 30.0
#: FFmpeg threads each stand-in decodes its clip with (``--camera-threads``; 0: OpenCV's
#: default of one per core, which put 500 decoder threads in a 32-camera process on 16 cores).
CAMERA_THREADS = [1]
#: The provider every side runs (``--provider``).
PROVIDER = ["CPUExecutionProvider"]
#: Processes of the ``--processes`` side (``--processes``).
PROCESSES = [4]
#: ``annotate``'s ``--batch`` (``--batch``; ``None``: its default).
BATCH: list[int | None] = [None]
KEPT_SHARE = 0.95
STALE_S = 1.5 / RATE


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else float("inf")


def verdict(drawn_fps: float, ages_s: list[float]) -> dict[str, Any]:
    ages = ages_s[10:]  # after the first frames
    share = drawn_fps / RATE
    stale = p95(ages)
    return {"drawn_share": round(share, 3), "age_p95_ms": round(1000 * stale, 1),
            "kept": share >= KEPT_SHARE and stale <= STALE_S}  # fmt: skip


def cameras(clip: Path) -> None:
    """Every camera index the pipeline opens becomes a stand-in playing ``clip``."""
    import annotate.sources.camera as camera

    camera.open_capture = lambda _index: DriverCamera(  # type: ignore[assignment]
        clip, RATE, CAMERA_THREADS[0]
    )


def ours(
    clip: Path,
    k: int,
    seconds: float,
    processes: int = 1,
    times: list[list[float]] | None = None,
    boxes: list[int] | None = None,
) -> list[dict[str, Any]]:
    """``annotate run camera:0 … camera:K-1 --track --json DIR`` in this process, or with
    ``--processes P``: the cameras split over P spawned processes, a model each.
    ``times``: filled with each camera's drawn frames' capture times, from its JSON;
    ``boxes``: with the number of boxes in each drawn frame, all cameras pooled."""
    import functools
    import multiprocessing

    from annotate.pipeline import RunOptions
    from annotate.pipeline.groups import run_processes
    from annotate.pipeline.many import SourceSpec, run_many
    from annotate.providers import Resolution

    stop: Any = multiprocessing.get_context("spawn").Event() if processes > 1 else None
    if stop is None:
        cameras(clip)
        stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    with tempfile.TemporaryDirectory() as tmp:
        resolution = Resolution(tuple(PROVIDER), "streams")
        base = RunOptions("camera:0", MODEL, resolution, json_path=f"{tmp}/", track=True,
                          fps_every=10**9, show=False, batch=BATCH[0])  # fmt: skip
        specs = [SourceSpec(f"camera:{i}") for i in range(k)]
        if processes > 1:
            setup = functools.partial(cameras, clip)  # in each process: its own stand-ins
            results = run_processes(base, specs, min(processes, k), None, setup, stop)
        else:
            results = run_many(base, specs, stop=stop)
        for path in sorted(Path(tmp).glob("*.jsonl")):
            with path.open() as lines:
                records = [json.loads(line) for line in lines]
            if times is not None:
                times.append([r["time"] for r in records])
            if boxes is not None:
                boxes.extend(len(r["detections"]) for r in records)
    return [one_summary(r.summary) for r in results]


def grouped(clip: Path, k: int, seconds: float) -> list[dict[str, Any]]:
    """``--processes P`` (``PROCESSES[0]``)."""
    return ours(clip, k, seconds, PROCESSES[0])


def one_summary(summary: Any) -> dict[str, Any]:
    if summary is None:
        return {"kept": False, "error": "failed"}
    loop_s = summary.wall_s - (summary.first_frame_s or 0)
    return verdict((summary.frames - 1) / loop_s, list(summary.ages))


def single(clip: Path, seconds: float) -> dict[str, Any]:
    """One ``annotate run --source camera --track --json`` process's camera."""
    from annotate.pipeline import RunOptions, run
    from annotate.providers import Resolution

    cameras(clip)
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions("camera:0", MODEL, Resolution(tuple(PROVIDER), "streams"),
                             json_path=f"{tmp}/d.jsonl", track=True, fps_every=10**9,
                             show=False)  # fmt: skip
        return one_summary(run(options, stop=stop))


def separate(clip: Path, k: int, seconds: float) -> list[dict[str, Any]]:
    """K processes at once, each one camera, each planning its threads for the machine."""
    procs = [
        subprocess.Popen([sys.executable, "-m", "scripts.streams", "--single", str(clip),
                          "--seconds", str(seconds), "--provider", PROVIDER[0],
                          "--camera-threads", str(CAMERA_THREADS[0])],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(k)
    ]  # fmt: skip
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def hand(clip: Path, k: int, seconds: float) -> list[dict[str, Any]]:
    """K threads, each a hand-written camera loop, sharing one session."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(MODEL), providers=PROVIDER)
    out: list[dict[str, Any]] = [{} for _ in range(k)]

    def loop(i: int) -> None:
        ages: list[float] = []
        camera = DriverCamera(clip, RATE, CAMERA_THREADS[0])
        fps = hand_written(clip, None, int(seconds * RATE), camera=camera,
                           ages=ages, session=session, provider=PROVIDER[0])  # fmt: skip
        out[i] = verdict(fps, ages)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def probes(max_k: int, search: bool) -> Any:
    """The K to try next, given whether the last was kept (sent in): one by one, or doubling
    then halving the gap (``search``) until it is within an eighth of the K kept."""
    if not search:
        for k in range(1, max_k + 1):
            if not (yield k):
                return
        return
    kept, failed, k = 0, max_k + 1, 1
    while k < failed:
        if (yield k):
            kept = k
            k = min(2 * k, failed - 1) if failed > max_k else (k + failed) // 2
        else:
            failed = k
            k = (kept + failed) // 2
        if k <= kept or (failed <= max_k and failed - kept <= max(1, kept // 8)):
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--max-k", type=int, default=6)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--provider", default="cpu", help="cpu or cuda")
    parser.add_argument("--search", action="store_true", help="double, then bisect")
    parser.add_argument("--sides", default="",
                        help="only these sides (ours,processes,separate,hand)")  # fmt: skip
    parser.add_argument("--processes", type=int, default=4, help="the processes side's count")
    parser.add_argument("--batch", type=int, default=None, help="annotate's --batch")
    parser.add_argument(
        "--camera-threads",
        type=int,
        default=1,
        help="each stand-in's FFmpeg threads (0: OpenCV's default)",
    )
    parser.add_argument("--save-as", default="streams")
    parser.add_argument("--single", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.provider.lower() in ("cuda", "cudaexecutionprovider"):
        PROVIDER[:] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    PROCESSES[0] = args.processes
    BATCH[0] = args.batch
    CAMERA_THREADS[0] = args.camera_threads
    if args.single:
        print(json.dumps(single(Path(args.single), args.seconds)))
        return 0
    work = Path(tempfile.gettempdir()) / "annotate-streams"
    work.mkdir(exist_ok=True)
    frames = int((args.seconds + 5) * RATE)  # named by its length: a shorter one ran out
    clip = work / f"cam{args.height}-{frames}.mp4"
    if not clip.exists():
        scaled(FOOTAGE, clip, args.height, frames)
    sides = {"annotate, one process": ("ours", ours),
             f"annotate, --processes {args.processes}": ("processes", grouped),
             "annotate, a process per camera": ("separate", separate),
             "hand-written, a thread per camera, one session": ("hand", hand)}  # fmt: skip
    chosen = set(args.sides.split(",")) if args.sides else {key for key, _ in sides.values()}
    results: dict[str, Any] = {"seconds": args.seconds, "height": args.height,
                               "provider": PROVIDER[0], "batch": args.batch,
                               "sides": {}}  # fmt: skip
    for name, (key, side) in sides.items():
        if key not in chosen:
            continue
        runs: dict[str, Any] = {}
        k_kept = 0
        tries = probes(args.max_k, args.search)
        k = next(tries)
        while True:
            started = time.perf_counter()
            cams = side(clip, k, args.seconds)
            runs[str(k)] = cams
            kept = all(c.get("kept") for c in cams)
            print(f"{name}: K={k} {'kept' if kept else 'not kept'} "
                  f"({time.perf_counter() - started:.0f} s) {cams}", flush=True)  # fmt: skip
            if kept:
                k_kept = max(k_kept, k)
            try:
                k = tries.send(kept)
            except StopIteration:
                break
        results["sides"][name] = {"k": k_kept, "runs": runs}
    print(json.dumps({n: s["k"] for n, s in results["sides"].items()}))
    save(args.save_as, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
