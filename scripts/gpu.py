#!/usr/bin/env python3
"""On an NVIDIA GPU box: ``annotate run`` with the inference service against the CPU provider
of the same box, the same pipeline with the detector taken out (a passthrough), the loop a
user writes by hand with ONNX Runtime's CUDA provider, and the code before the service.

    python -m scripts.gpu --part setup|loop|where|calls --media DIR --out DIR [--old DIR]
                          [--rounds 2] [--quick]

- ``--part setup``: makes the clips (the shared bottle footage, looped and scaled to 720p,
  1,800 frames, and 1080p, 1,200 frames: H.264), builds a YOLOX-L-sized graph with random
  weights (``yolox`` 0.3.0's Apache-licensed modules from its sdist in ``--media``, PyTorch;
  objectness and class biases at the prior so nothing is found: the compute of YOLOX-L, none
  of the post-processing of its boxes), then times cuDNN's algorithm searches, the packed
  input against float, ``annotate bench`` and the YOLOX-L-sized runs.
- ``--part loop``: the 720p and 1080p runs, alternating for ``--rounds`` rounds.
- ``--part where``: what binds a JSON run in each plan, inside one process; ``--part
  calls``: the service's calls one by one, with each way of decoding.

Every ``annotate run`` is a fresh process, as a user's is: its start-up (first annotated
frame, from the run's ``-v`` line, and from the process's start) and its FPS after the first
frame. Every side writing video uses x264 ``ultrafast``. Results go to ``OUT/gpu-PART.json``
after each step, so a cut-short call keeps what it measured. ``--quick``: the same on this
machine's CPU provider with few frames, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from scripts.harness import agreement, cpu_reference, hand_written, machine

NANO = "yolox_nano.onnx"
LARGE = "yolox_l_sized.onnx"
FOOTAGE = "bottle-detection.mp4"
ENCODE = ("--preset", "ultrafast", "--codec", "h264")
#: The service at batch 8, the GPU waited for (no CPU stand-in).
WAITED_B8 = ("--batch", "8", "--no-cpu-start")
QUIET = ("-v", "--fps-every", "1000000")


#: A variant's switch interval (seconds), set by this script in the run's process (``_sw``).
SWITCH_ENV = "STUDY_SWITCH_S"
#: The ``_copy`` variants: the encoder's PyAV frame copied from a new array (as up to
#: 2026-12-06) instead of pointing at the sink's reused I420 buffer.
COPY_ENV = "STUDY_COPY_FRAMES"
BOOT = (
    "import runpy, sys; from scripts.gpu import study_boot; study_boot(); "
    "sys.argv[0] = 'annotate'; runpy.run_module('annotate', run_name='__main__')"
)


def study_boot() -> None:
    """A variant's settings, made in the run's own process before annotate starts, so the
    library has no hook for them."""
    if os.environ.get(SWITCH_ENV):
        sys.setswitchinterval(float(os.environ[SWITCH_ENV]))
    if os.environ.get(COPY_ENV):
        import av

        from annotate.sinks import video

        def copied(self: Any, image: Any) -> Any:
            return av.VideoFrame.from_ndarray(video.to_i420(image), format="yuv420p")

        video.I420Frames.frame = copied  # type: ignore[method-assign]


def make_clip(source: Path, target: Path, width: int, height: int, frames: int) -> Path:
    """``source`` looped and scaled to ``width``×``height``, ``frames`` long, at 30 FPS."""
    import av
    import cv2

    if target.exists():
        return target
    part = target.with_suffix(".part.mp4")
    with av.open(str(part), "w") as dst:
        out = dst.add_stream("libx264", rate=30)
        out.width, out.height, out.pix_fmt = width, height, "yuv420p"
        out.options = {"preset": "veryfast", "crf": "23"}
        written = 0
        while written < frames:
            with av.open(str(source)) as src:
                for frame in src.decode(video=0):
                    if written == frames:
                        break
                    image = cv2.resize(frame.to_ndarray(format="bgr24"), (width, height))
                    new = av.VideoFrame.from_ndarray(image, format="bgr24")
                    new.pts, new.time_base = written, Fraction(1, 30)
                    for packet in out.encode(new):
                        dst.mux(packet)
                    written += 1
        for packet in out.encode(None):
            dst.mux(packet)
    part.rename(target)
    return target


def build_large(sdist: Path, target: Path) -> dict[str, Any]:
    """A YOLOX-L-sized export (depth 1.0, width 1.0, 640×640) with random weights."""
    import logging
    import types

    import torch

    root = Path("/tmp/yolox-src")
    if not root.exists():
        with tarfile.open(sdist) as archive:
            archive.extractall(root, filter="data")
    sys.path.insert(0, str(next(root.glob("yolox-*"))))
    # Only the model's modules are used: their training helpers' imports are stood in for.
    loguru = types.ModuleType("loguru")
    loguru.logger = logging.getLogger("yolox")  # type: ignore[attr-defined]
    utils = types.ModuleType("yolox.utils")

    def unused(*args: object, **kwargs: object) -> None:
        raise NotImplementedError("training only")

    utils.bboxes_iou = utils.meshgrid = unused  # type: ignore[attr-defined]
    sys.modules.setdefault("loguru", loguru)
    sys.modules["yolox.utils"] = utils
    from yolox.models import YOLOPAFPN, YOLOX, YOLOXHead

    channels = [256, 512, 1024]
    model = YOLOX(YOLOPAFPN(1.0, 1.0, in_channels=channels), YOLOXHead(80, 1.0, channels))
    model.eval()
    model.head.decode_in_inference = False
    with torch.no_grad():
        for conv in (*model.head.obj_preds, *model.head.cls_preds):
            conv.weight.zero_()
            conv.bias.fill_(-4.6)  # sigmoid 0.01: YOLOX's own prior
    params = sum(p.numel() for p in model.parameters())
    started = time.perf_counter()
    export: Any = torch.onnx.export
    kwargs: dict[str, Any] = {"input_names": ["images"], "output_names": ["output"]}
    try:
        export(model, torch.zeros(1, 3, 640, 640), str(target), opset_version=13, dynamo=False,
               **kwargs)  # fmt: skip
    except TypeError:  # a torch without the dynamo switch
        export(model, torch.zeros(1, 3, 640, 640), str(target), opset_version=13, **kwargs)
    return {
        "params_m": round(params / 1e6, 1),
        "export_s": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
        "bytes": target.stat().st_size,
    }


def annotate(
    args: list[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> dict[str, Any]:
    """One ``annotate run`` (or other command) as a user runs it: exit code, its start-up,
    FPS and FPS after the first frame from its own lines, and the process's wall clock."""
    variant = any((env or {}).get(name) for name in (SWITCH_ENV, COPY_ENV))
    boot = ["-c", BOOT] if variant else ["-m", "annotate"]
    with RunCost() as cost:
        done = subprocess.run(
            [sys.executable, *boot, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
        )
    err = done.stderr
    result: dict[str, Any] = {"code": done.returncode, **cost.summary()}
    first = re.search(r"First annotated frame after ([\d.]+) s", err)
    line = re.search(r"Done: (\d+) frames in ([\d.]+) s", err)
    if first and line:
        frames, run_s, first_s = int(line[1]), float(line[2]), float(first[1])
        result.update(
            frames=frames,
            first_frame_s=first_s,
            # From the process's start: imports and everything before the run, plus its
            # first frame (the process's end after the run is a few ms).
            first_frame_process_s=round(cost.wall_s - run_s + first_s, 3),
            fps=round(frames / run_s, 1) if run_s else 0.0,
            loop_fps=round((frames - 1) / (run_s - first_s), 1) if run_s > first_s else 0.0,
        )
    took = re.search(r"took over after ([\d.]+) s; the CPU detected (\d+) frame", err)
    if took and line:
        # The accelerator's own rate: the frames the CPU did not detect, over the time after
        # it took over (counted from the detector's load, a little after the run's start).
        gpu_frames, gpu_s = int(line[1]) - int(took[2]), float(line[2]) - float(took[1])
        result["took_over_s"] = float(took[1])
        result["after_takeover_fps"] = round(gpu_frames / gpu_s, 1) if gpu_s > 0 else 0.0
    mode = re.search(r"Runner: (.*)", err)
    if mode:
        result["mode"] = mode[1]
    # "the CPU's": the GPU checked against it; "took over", "Waiting for": the stand-in
    said = ("--codec auto", "--hwdec", "the CPU's", "took over", "Waiting for",
            "Encoder thread", "Inference service:", "CPU: ")  # fmt: skip
    notes = [ln for ln in err.splitlines() if any(s in ln for s in said)]
    if notes:
        result["notes"] = notes
    if done.returncode:
        result["error"] = err.strip().splitlines()[-3:]
    return result


class RunCost:
    """A child process's wall clock and CPU time (its own children's too, once waited for),
    and the whole machine's busy cores from /proc/stat every quarter second meanwhile: the
    median says whether the cores were what bound the run."""

    def __init__(self) -> None:
        import threading

        self.samples: list[float] = []
        self.wall_s = self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _children_cpu_s() -> float:
        import resource

        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        return used.ru_utime + used.ru_stime

    @staticmethod
    def _read() -> tuple[float, float]:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    def _run(self) -> None:
        cores = os.cpu_count() or 1
        busy, total = self._read()
        while not self._stop.wait(0.25):
            now_busy, now_total = self._read()
            if now_total > total:
                self.samples.append(cores * (now_busy - busy) / (now_total - total))
            busy, total = now_busy, now_total

    def __enter__(self) -> RunCost:
        if os.path.exists("/proc/stat"):
            self._thread.start()
        self._started, self._cpu = time.perf_counter(), self._children_cpu_s()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._started
        self.cpu_s = self._children_cpu_s() - self._cpu
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def summary(self) -> dict[str, float]:
        """``process_s``, ``cpu_s``, ``cores_busy`` (the two's ratio) and, where sampled,
        ``cores_p50`` and ``cores_max``."""
        busy = self.cpu_s / self.wall_s if self.wall_s else 0.0
        out = {"process_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 2),
               "cores_busy": round(busy, 2)}  # fmt: skip
        ordered = sorted(self.samples)
        if ordered:
            out.update(cores_p50=round(ordered[len(ordered) // 2], 1),
                       cores_max=round(ordered[-1], 1))  # fmt: skip
        return out


def helper(*args: str, env: dict[str, str] | None = None, show: bool = False) -> dict[str, Any]:
    """This module's helpers in a fresh process (each holds its own CUDA context); with
    ``show`` its progress lines go to this process's stderr as they come."""
    with RunCost() as cost:
        done = subprocess.run(
            [sys.executable, "-m", "scripts.gpu", *args],
            stdout=subprocess.PIPE,
            stderr=None if show else subprocess.PIPE,
            text=True,
            env=env,
        )
    if done.returncode and show:
        return {"error": f"exit {done.returncode}"}
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-5:]}
    parsed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    parsed.update(cost.summary())
    return parsed


def passthrough(source: str, out: str, provider: str, model: str) -> dict[str, Any]:
    """The run's own pipeline (plan, threads, decoder, converter, encoder) with the detector
    taken out: every frame decoded, converted, drawn on (nothing) and written."""
    from annotate.detector import Detector, StageTimes
    from annotate.pipeline import RunOptions, run
    from annotate.providers import resolve_here
    from annotate.sinks.encoding import EncodeOptions
    from annotate.types import Detections

    resolution = resolve_here(provider, "study")
    options = RunOptions(
        source=source,
        model=Path(model),
        resolution=resolution,
        output=None if out.endswith(".jsonl") else Path(out),
        json_path=Path(out) if out.endswith(".jsonl") else None,
        encode=EncodeOptions(preset="ultrafast", codec="h264"),
        fps_every=10**9,
    )
    options = options.resolved()
    detector = Detector.load(Path(model), resolution)
    empty = Detections.empty(detector.labels)
    detector.detect = lambda image: (empty, StageTimes())  # type: ignore[method-assign]
    summary = run(options, detector=detector)
    per_frame = {k: round(1000 * v / max(1, summary.frames), 3) for k, v in summary.stage_s.items()}
    return {"frames": summary.frames, "loop_fps": round(summary.loop_fps or 0.0, 1),
            "mode": summary.mode, "stage_ms": per_frame}  # fmt: skip


def cudnn(model: str, quick: bool) -> dict[str, Any]:
    """Start-up (the detector loaded, its batch-1 probe run), the first call at batch 1
    and at the service's batch of 16, and batch-16 latency, for each of cuDNN's searches."""
    import numpy as np

    from annotate.detector import Detector, SessionSettings
    from annotate.detector.session import BoundRun
    from annotate.providers import resolve_here

    resolution = resolve_here("cpu" if quick else "cuda", "study")
    out: dict[str, Any] = {}
    for search in ("heuristic", "exhaustive"):
        started = time.perf_counter()
        detector = Detector.load(Path(model), resolution, settings=SessionSettings(
            cudnn_search=search, cpu_start=False))  # fmt: skip
        loaded = time.perf_counter() - started
        run = BoundRun(detector.session)
        firsts = {}
        for size in (1, 16):  # the service's two shapes
            t = time.perf_counter()
            run(detector.probe(size))
            firsts[size] = round(1000 * (time.perf_counter() - t), 1)
        blob = detector.probe(16)
        times = []
        for _ in range(5 if quick else 50):
            t = time.perf_counter()
            run(blob)
            times.append(time.perf_counter() - t)
        out[search] = {
            "load_s": round(loaded, 3),
            "first_call_ms": firsts,
            "batch16_ms": round(1000 * float(np.median(times)), 2),
        }
        del detector, run
    return out


def packed(source: str, model: str, quick: bool) -> dict[str, Any]:
    """The run (JSON only) with the canvas packed and prepared on the GPU, and with the
    float blob made on the CPU, alternating."""
    from annotate.detector import Detector
    from annotate.pipeline import RunOptions, run
    from annotate.providers import resolve_here

    resolution = resolve_here("cpu" if quick else "cuda", "study")
    seen: dict[str, list[float]] = {"packed": [], "float": []}
    for _ in range(2):
        for name in seen:
            options = RunOptions(source=source, model=Path(model), resolution=resolution,
                                 json_path=Path("/tmp/packed.jsonl"), fps_every=10**9)  # fmt: skip
            detector = Detector.load(Path(model), resolution, packed=name == "packed")
            summary = run(options.resolved(), detector=detector)
            seen[name].append(round(summary.loop_fps or 0.0, 1))
    return seen


def scored(source: str, model: str, quick: bool) -> dict[str, Any]:
    """The run (JSON only) with the class scores reduced in the graph (the scored output)
    and with the model's own output copied back, alternating, in both GPU plans: the
    workers' (each worker runs the one session) and the service at batch 16."""
    from annotate.detector import Detector
    from annotate.pipeline import RunOptions, run
    from annotate.providers import resolve_here

    resolution = resolve_here("cpu" if quick else "cuda", "study")
    seen: dict[str, Any] = {}
    for _ in range(2):
        for plan in ("workers", "service16"):
            for name in ("scored", "full"):
                options = RunOptions(source=source, model=Path(model), resolution=resolution,
                                     json_path=Path("/tmp/scored.jsonl"), fps_every=10**9,
                                     batch=16 if plan == "service16" else None)  # fmt: skip
                detector = Detector.load(Path(model), resolution, scored=name == "scored")
                summary = run(options.resolved(), detector=detector)
                service = summary.service or {}
                batches = service.get("batches", 0) or 1
                seen.setdefault(f"{plan}_{name}", []).append({
                    "loop_fps": round(summary.loop_fps or 0.0, 1),
                    "mean_batch": service.get("mean_batch"),
                    "ms_per_call": round(1000 * service.get("busy_s", 0.0) / batches, 2),
                })  # fmt: skip
                print(plan, name, seen[f"{plan}_{name}"][-1], file=sys.stderr, flush=True)
    return seen


def startup(model: str, source: str, quick: bool) -> dict[str, Any]:
    """Where a fresh process's first frame goes: importing ONNX Runtime, loading CUDA and
    cuDNN (``preload_dlls``), creating the session (graph edits, the family probe), the first
    frame's detection."""
    marks: dict[str, float] = {}
    started = time.perf_counter()
    import onnxruntime as ort

    marks["import_onnxruntime"] = time.perf_counter()
    from annotate.detector.session import preload_cuda

    if not quick:
        preload_cuda(ort)
    marks["preload_dlls"] = time.perf_counter()
    import av

    from annotate.detector import Detector, SessionSettings
    from annotate.providers import resolve_here

    with av.open(source) as container:
        image = next(container.decode(video=0)).to_ndarray(format="bgr24")
    marks["first_frame_decoded"] = time.perf_counter()
    detector = Detector.load(Path(model), resolve_here("cpu" if quick else "cuda", "study"),
                             settings=SessionSettings(cpu_start=False))  # fmt: skip
    marks["session_and_probe"] = time.perf_counter()
    detector.detect(image)
    marks["first_detection"] = time.perf_counter()
    detector.detect(image)
    marks["second_detection"] = time.perf_counter()
    out, last = {}, started
    for name, at in marks.items():
        out[name] = round(at - last, 3)
        last = at
    out["total"] = round(last - started, 3)
    return out


def diag(source: str, model: str, quick: bool) -> dict[str, Any]:
    """Where the service's time goes: the run (JSON only, ``--batch 16``) as shipped, with 8
    and 32 CPU workers, and warmed up before the run. (Run 2026-12-02 also with the GIL's
    switch interval at 0.5 ms against 5 ms: no difference, so the code keeps Python's.)"""
    from annotate.detector import Detector
    from annotate.pipeline import RunOptions, run
    from annotate.providers import resolve_here

    resolution = resolve_here("cpu" if quick else "cuda", "study")
    out: dict[str, Any] = {}
    configs: dict[str, dict[str, Any]] = {
        "shipped": {},
        "workers_8": {"workers": 8},
        "workers_32": {"workers": 32},
        "prewarmed": {"prewarm": True},
        "shipped_again": {},
    }
    for name, config in configs.items():
        options = RunOptions(source=source, model=Path(model), resolution=resolution,
                             json_path=Path("/tmp/diag.jsonl"), fps_every=10**9,
                             workers=config.get("workers"), batch=16).resolved()  # fmt: skip
        detector = Detector.load(Path(model), resolution)
        if config.get("prewarm"):
            detector.batch_limit(16)
        summary = run(options, detector=detector)
        service = summary.service or {}
        batches = service.get("batches", 0) or 1
        out[name] = {
            "loop_fps": round(summary.loop_fps or 0.0, 1),
            "first_frame_s": round(summary.first_frame_s or 0.0, 2),
            "mean_batch": service.get("mean_batch"),
            "ms_per_call": round(1000 * service.get("busy_s", 0.0) / batches, 2),
            "batches": service.get("batches"),
        }
        print(name, out[name], file=sys.stderr, flush=True)
    return out


def svc(source: str, model: str, quick: bool) -> dict[str, Any]:
    """The service's call at batch 16 alone (IO-bound, plain, alternating with batch 1), with
    and without the scored output, then runs (JSON, ``--batch 16``, 240 frames) with each of
    scored and the CPU start on and off: where a batch's time goes."""
    from annotate.detector import Detector, SessionSettings
    from annotate.pipeline import RunOptions, run
    from annotate.providers import resolve_here

    resolution = resolve_here("cpu" if quick else "cuda", "study")
    out: dict[str, Any] = {}

    def ms(call: Any, n: int = 6) -> list[float]:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            call()
            times.append(round(1000 * (time.perf_counter() - t), 1))
        return times

    def calls(scored_: bool) -> dict[str, list[float]]:
        detector = Detector.load(Path(model), resolution, scored=scored_,
                                 settings=SessionSettings(cpu_start=False))  # fmt: skip
        bound, one = detector.bound_run(), detector.probe(1)
        big = one if quick else detector.probe(16)  # the CPU's model keeps its batch of 1
        return {
            "bound16": ms(lambda: bound(big)),
            "run16": ms(lambda: detector._run(big)),
            "bound1": ms(lambda: bound(one)),
            "alternating": ms(lambda: (bound(one), bound(big))),
        }

    for scored_ in (True, False):
        out[f"calls_scored_{scored_}"] = calls(scored_)
        print(scored_, out[f"calls_scored_{scored_}"], file=sys.stderr, flush=True)
    for scored_ in (True, False):
        for start in (False, True):
            options = RunOptions(source=source, model=Path(model), resolution=resolution,
                                 json_path=Path("/tmp/svc.jsonl"), fps_every=10**9, batch=16,
                                 max_frames=240).resolved()  # fmt: skip
            detector = Detector.load(Path(model), resolution, scored=scored_,
                                     settings=SessionSettings(cpu_start=start))  # fmt: skip
            t = time.perf_counter()
            summary = run(options, detector=detector)
            service = summary.service or {}
            batches = service.get("batches", 0) or 1
            key = f"run_scored_{scored_}_cpu_start_{start}"
            busy = service.get("busy_s", 0.0)
            out[key] = {
                "s": round(time.perf_counter() - t, 2),
                "loop_fps": round(summary.loop_fps or 0.0, 1),
                "mean_batch": service.get("mean_batch"),
                "ms_per_call": round(1000 * busy / batches, 2),
            }
            print(key, out[key], file=sys.stderr, flush=True)
    return out


def where(source: str, model: str, quick: bool) -> dict[str, Any]:
    """What binds a GPU's JSON run: the session's own rates (threads at batch 1, as the
    workers call it; one thread at larger batches through the IO binding, as the service
    does), then the run in each plan, and with the GPU's call made free (a kept output of
    the real model returned at once: the CPU side's own ceiling), each with its CPU ms a
    frame per stage."""
    import threading

    import av
    import numpy as np

    from annotate.detector import Detector, SessionSettings, StageTimes
    from annotate.pipeline import RunOptions, run
    from annotate.providers import resolve_here
    from annotate.types import Detections

    resolution = resolve_here("cpu" if quick else "cuda", "study")
    out: dict[str, Any] = {}
    detector = Detector.load(Path(model), resolution, settings=SessionSettings(cpu_start=False))
    one = detector.probe(1)
    detector._run(one)

    def rate(call: Any, threads: int, images: int, seconds: float = 1.5) -> float:
        stop = time.perf_counter() + seconds
        counts = [0] * threads

        def loop(i: int) -> None:
            while time.perf_counter() < stop:
                call()
                counts[i] += images

        started = time.perf_counter()
        pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return round(sum(counts) / (time.perf_counter() - started), 1)

    out["run_threads_batch1"] = {
        t: rate(lambda: detector._run(one), t, 1) for t in (1, 2, 4, 8, 16)
    }
    print("threads", out["run_threads_batch1"], file=sys.stderr, flush=True)
    bound_rates = {}
    for b in (1, 4, 8, 16, 32) if not quick else (1,):
        bound = detector.bound_run()
        blob = detector.probe(b)
        bound(blob)
        bound_rates[b] = rate(lambda bound=bound, blob=blob: bound(blob), 1, b)
    out["bound_one_thread"] = bound_rates
    print("bound", bound_rates, file=sys.stderr, flush=True)
    frame = None
    with av.open(source) as container:
        for i, decoded in enumerate(container.decode(video=0)):  # frame 100, or the last
            frame = decoded.to_ndarray(format="bgr24")
            if i == 100:
                break
    assert frame is not None
    canvas, _ = detector.preprocess(frame)
    kept = detector._run(canvas).copy()
    detector.close()

    from annotate.sources import video
    from annotate.types import Frame

    swscale = video.VideoSource._to_frame

    def opencv(self: Any, index: int, seconds: float, picture: Any) -> Frame:
        """4:2:0 to BGR by OpenCV (which lets go of the GIL) instead of PyAV's swscale."""
        import cv2

        if picture.format.name != "yuv420p":
            return swscale(self, index, seconds, picture)
        image = cv2.cvtColor(picture.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
        return Frame(index, seconds, image, self.name)

    def pipeline(
        name: str,
        batch: int | None = None,
        free: bool = False,
        cv: bool = False,
        switch: float | None = None,
    ) -> None:
        """``switch``: Python's switch interval for this run (several sources run with 1 ms,
        one with Python's 5 ms)."""
        video.VideoSource._to_frame = opencv if cv else swscale  # type: ignore[method-assign]
        default_switch = sys.getswitchinterval()
        if switch is not None:
            sys.setswitchinterval(switch)
        options = RunOptions(source=source, model=Path(model), resolution=resolution,
                             json_path="/tmp/where.jsonl", fps_every=10**9,
                             batch=batch).resolved()  # fmt: skip
        det = Detector.load(
            Path(model), resolution, settings=SessionSettings(cpu_start=False), batch=batch or 1
        )
        if free:
            det._run = lambda blob, session=None: kept  # type: ignore[method-assign]
            det._serve_run = (
                lambda blob: np.broadcast_to(  # type: ignore[method-assign]
                    kept, (blob.shape[0], *kept.shape[1:])
                )
            )
        if name.startswith("passthrough"):
            empty = Detections.empty(det.labels)
            det.detect = lambda image: (empty, StageTimes())  # type: ignore[method-assign]
        used, started = time.process_time(), time.perf_counter()
        try:
            summary = run(options, detector=det)
        finally:
            sys.setswitchinterval(default_switch)
        cores = (time.process_time() - used) / (time.perf_counter() - started)
        frames = max(1, summary.frames)
        service = summary.service or {}
        batches = service.get("batches", 0) or 1
        out[name] = {
            "loop_fps": round(summary.loop_fps or 0.0, 1),
            "mode": summary.mode,
            "cpu_ms_per_frame": {
                k: round(1000 * v / frames, 3) for k, v in summary.stage_s.items()
            },
            "mean_batch": service.get("mean_batch"),
            "ms_per_call": round(1000 * service.get("busy_s", 0.0) / batches, 2),
            "cores_busy": round(cores, 2),  # the run alone, its session already made
        }
        print(name, out[name], file=sys.stderr, flush=True)

    out["cuda_graph"] = graph_rates(model, quick=quick)
    for r in range(2):
        pipeline(f"workers_{r}")
        pipeline(f"workers_opencv_{r}", cv=True)
        pipeline(f"free_gpu_workers_{r}", free=True)
        pipeline(f"free_gpu_workers_opencv_{r}", free=True, cv=True)
        pipeline(f"workers_switch1ms_{r}", switch=0.001)
        pipeline(f"free_gpu_workers_switch1ms_{r}", free=True, switch=0.001)
        pipeline(f"service8_{r}", batch=8)
        pipeline(f"service16_{r}", batch=16)
        pipeline(f"free_gpu_service16_{r}", batch=16, free=True)
        pipeline("passthrough" if r == 0 else "passthrough_1")
    return out


def calls(source: str, model: str, quick: bool, rounds: int = 2) -> dict[str, Any]:
    """The service's calls one by one: alone at batch 8 on blank and on real canvases, then
    in ``--json --batch 8`` runs decoding with NVDEC (as ``--batch`` does), on the CPU, and
    with NVDEC in ONNX Runtime's CUDA context. Each call's time and its thread's CPU time,
    so a mean of many short calls and one of a few long ones (a shape planned again) tell
    apart. The where part found 20-30 ms a call in a run against 2.8 alone."""
    import av
    import numpy as np

    from annotate.detector import Detector, SessionSettings
    from annotate.detector import session as session_module
    from annotate.pipeline import RunOptions, run
    from annotate.providers import resolve_here

    resolution = resolve_here("cpu" if quick else "cuda", "study")
    timed: list[tuple[float, float, float, tuple[int, ...]]] = []
    plain = session_module.BoundRun._call

    def call(self: Any, blob: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        output = plain(self, blob)
        timed.append((started, time.perf_counter() - started, time.thread_time() - cpu,
                      tuple(blob.shape)))  # fmt: skip
        return output

    session_module.BoundRun._call = call  # type: ignore[method-assign]

    def summary(name: str, origin: float) -> dict[str, Any]:
        if not timed:
            return {}
        ms = np.array([t[1] for t in timed]) * 1000
        longest = sorted(timed, key=lambda t: -t[1])[:6]
        result = {
            "calls": len(ms), "p50_ms": round(float(np.median(ms)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "mean_ms": round(float(ms.mean()), 2), "sum_s": round(float(ms.sum()) / 1000, 2),
            "thread_cpu_p50_ms": round(1000 * float(np.median([t[2] for t in timed])), 2),
            "longest": [[round(t[0] - origin, 2), round(1000 * t[1], 1), list(t[3])]
                        for t in longest],
            "shapes": sorted({t[3] for t in timed}),
        }  # fmt: skip
        print(name, result, file=sys.stderr, flush=True)
        return result

    out: dict[str, Any] = {}
    settings = SessionSettings(cpu_start=False)
    detector = Detector.load(Path(model), resolution, settings=settings)
    pictures = []
    with av.open(source) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            if i % 50 == 0:
                pictures.append(decoded.to_ndarray(format="bgr24"))
            if len(pictures) == 8:
                break
    real = np.concatenate([detector.preprocess(p)[0] for p in pictures])
    blobs = (("blank", detector.probe(8)), ("real", real)) * 2
    for i, (label, blob) in enumerate(blobs if not quick else ()):
        bound = detector.bound_run(8)
        bound(blob)
        timed.clear()
        started = time.perf_counter()
        while time.perf_counter() - started < 1.5:
            bound(blob)
        out[f"alone_{label}_{i // 2}"] = summary(f"alone_{label}_{i // 2}", started)
    detector.close()
    from annotate.sources import video

    shipped = video.hw

    def primary(device: str) -> Any:
        """NVDEC in the device's primary CUDA context, the one ONNX Runtime's CUDA
        provider uses, instead of a context of FFmpeg's own."""
        from av.codec.hwaccel import HWAccel

        return HWAccel(device, allow_software_fallback=True, options={"primary_ctx": "1"})

    # --batch picks NVDEC (--hwdec auto): FFmpeg's own CUDA context shares the GPU with
    # ONNX Runtime's, and contexts take turns on it.
    runs = (("run_nvdec", "auto", shipped), ("run_software_decode", "none", shipped),
            ("run_nvdec_primary_context", "auto", primary))  # fmt: skip
    for r in range(1 if quick else rounds):
        for name, hwdec, opener in runs:
            video.hw = opener  # type: ignore[assignment]
            detector = Detector.load(Path(model), resolution, settings=settings, batch=8)
            options = RunOptions(source=source, model=Path(model), resolution=resolution,
                                 json_path="/tmp/calls.jsonl", fps_every=10**9, batch=8,
                                 hwdec=hwdec).resolved()  # fmt: skip
            timed.clear()
            started = time.perf_counter()
            try:
                done = run(options, detector=detector)
            finally:
                video.hw = shipped  # type: ignore[assignment]
            key = f"{name}_{r}"
            out[key] = {**summary(key, started), "loop_fps": round(done.loop_fps or 0.0, 1),
                        "service": done.service, "mode": done.mode}  # fmt: skip
            print(key, out[key]["loop_fps"], file=sys.stderr, flush=True)
            detector.close()
    return out


def graph_rates(
    model: str, sizes: tuple[int, ...] = (1, 8, 16), quick: bool = False
) -> dict[str, Any]:
    """The edited model (packed, scored) on CUDA with ONNX Runtime's CUDA graphs: one fixed
    shape per session, its input and output bound on the device, so a call replays the
    captured kernels. Images/s from one thread, the input copied in and the output out."""
    import numpy as np
    import onnxruntime as ort

    from annotate.detector import packing, scoring
    from annotate.detector.graph import Edits
    from annotate.detector.session import edit, preload_cuda

    if not quick:
        preload_cuda(ort)
    device, name_ = ("cpu", "CPUExecutionProvider") if quick else ("cuda", "CUDAExecutionProvider")
    made = edit(Path(model), Edits(batch=True, packed=packing(None), scored=scoring(None)))
    data = made.data if made is not None else Path(model).read_bytes()
    out: dict[str, Any] = {}
    for b in sizes:
        for graph in ("0",) if quick else ("1", "0"):
            try:
                options = ort.SessionOptions()
                probe = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
                shape = probe.get_inputs()[0].shape
                for dim, value in zip(shape, (b, 416, 416, 3), strict=False):
                    if isinstance(dim, str):
                        options.add_free_dimension_override_by_name(dim, value)
                provider = (name_, {"enable_cuda_graph": graph} if not quick else {})
                session = ort.InferenceSession(data, options, providers=[provider])
                name = session.get_inputs()[0].name
                fetch = session.get_outputs()[0].name
                host = np.zeros((b, 416, 416, 3), np.uint8)
                result = session.run([fetch], {name: host})[0]
                device_in = ort.OrtValue.ortvalue_from_numpy(host, device, 0)
                device_out = ort.OrtValue.ortvalue_from_shape_and_type(
                    result.shape, np.float32, device, 0
                )
                binding = session.io_binding()
                binding.bind_ortvalue_input(name, device_in)
                binding.bind_ortvalue_output(fetch, device_out)
                session.run_with_iobinding(binding)
                session.run_with_iobinding(binding)
                n, started = 0, time.perf_counter()
                while time.perf_counter() - started < 1.5:
                    device_in.update_inplace(host)
                    session.run_with_iobinding(binding)
                    device_out.numpy()
                    n += b
                out[f"b{b}_graph{graph}"] = round(n / (time.perf_counter() - started), 1)
            except Exception as e:  # recorded: whether the graph can be captured at all
                out[f"b{b}_graph{graph}"] = f"{type(e).__name__}: {str(e)[:300]}"
            print(b, graph, out[f"b{b}_graph{graph}"], file=sys.stderr, flush=True)
    return out


def gil_profiles(study: Study, py_spy: str) -> dict[str, Any]:
    """``py-spy record --gil`` (what holds the GIL) over a JSON run in each GPU plan, the raw
    stacks written beside the results for reading elsewhere."""
    clip, nano = study.clip(720), study.model("nano")
    out: dict[str, Any] = {}
    for name, extra in (("workers", ()), ("service16", ("--batch", "16"))):
        path = study.out / f"gil-{name}.txt"
        command = [py_spy, "record", "--gil", "-r", "250", "-f", "raw", "-o", str(path), "--",
                   sys.executable, "-m", "annotate", "run", str(clip), "--model", nano,
                   "--json", study.jsonl, "--provider", study.gpu, "--no-cpu-start", *QUIET,
                   *extra]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        line = re.search(r"Done: .*", done.stderr)
        out[name] = {"code": done.returncode, "done": line[0] if line else done.stderr[-400:]}
    return out


def hand(
    source: str, out: str, provider: str, model: str, size: int, frames: int
) -> dict[str, Any]:
    fps = hand_written(Path(source), None if out == "-" else Path(out), frames,
                       provider=provider, model=Path(model), size=size)  # fmt: skip
    return {"loop_fps": round(fps, 1)}


class Study:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.media = Path(args.media).resolve()  # the old tree's runs start from its folder
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path("/tmp/gpu-study") if not args.quick else Path("/tmp/gpu-study-quick")
        self.work.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, Any] = {"machine": machine(), "gpu": gpu_name()}
        self.gpu = "cpu" if args.quick else "cuda"
        self.jsonl = str(self.work / "out.jsonl")
        self.env_extra: dict[str, str] = {}
        self.flags_extra: tuple[str, ...] = ()

    def step(self, name: str, call: Any) -> Any:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
        started = time.perf_counter()
        try:
            value = call()
        except Exception as e:  # a step that fails is recorded; the others still run
            value = {"error": f"{type(e).__name__}: {e}"}
        self.results[name] = value
        self.results.setdefault("step_s", {})[name] = round(time.perf_counter() - started, 1)
        name_ = f"gpu-{self.args.part}-{self.args.heights.replace(',', '-')}"
        (self.out / f"{name_}.json").write_text(json.dumps(self.results, indent=1))
        print(json.dumps(value)[:600], flush=True)
        return value

    def clip(self, height: int) -> Path:
        frames = {720: 1800, 1080: 1200}[height] if not self.args.quick else 60
        width = height * 16 // 9
        return make_clip(self.media / FOOTAGE, self.work / f"clip{height}.mp4", width, height,
                         frames)  # fmt: skip

    def model(self, name: str) -> str:
        return str(self.media / NANO) if name == "nano" else str(self.work / LARGE)

    def run(self, clip: Path, model: str, *extra: str, old: bool = False) -> dict[str, Any]:
        env, cwd = None, None
        if self.env_extra:  # a variant's settings (``variant``)
            env = {**os.environ, **self.env_extra}
        if old:  # ``-m`` puts the working directory first on the path: run from the old tree
            env = {**os.environ, "PYTHONPATH": f"{self.args.old}:/tmp/site"}
            cwd = self.args.old
        command = ["run", str(clip), "--model", model, *QUIET, *extra, *self.flags_extra]
        result = annotate(command, env, cwd)
        if "--json" in extra and not result.get("error"):
            result["vs_cpu"] = agreement(self.reference(clip, model), Path(self.jsonl))
        return result

    def reference(self, clip: Path, model: str) -> Path:
        """The CPU's boxes for the first frames of ``clip`` on the model's own square canvas,
        as a GPU runs it: what every JSON run is checked against."""
        path = self.work / f"ref-{clip.stem}-{Path(model).stem}.jsonl"
        if not path.exists():
            cpu_reference(clip, Path(model), path, 300 if Path(model).name == NANO else 30)
        return path

    def setup(self) -> None:
        self.step("clip720", lambda: str(self.clip(720)))
        self.step("clip1080", lambda: str(self.clip(1080)))
        if not self.args.quick:
            self.step("build_large", lambda: build_large(
                self.media / "yolox-0.3.0.tar.gz", self.work / LARGE))  # fmt: skip
        nano = self.model("nano")
        # The driver's PTX cache: its own default size, then annotate's, each run twice in
        # fresh processes (the second finds what the first compiled, if it fits).
        small = {**os.environ, "CUDA_CACHE_MAXSIZE": str(256 << 20)}
        for i in range(2):
            self.step(f"cache256m_{i}", lambda: helper("cudnn", nano, *self.flag(), env=small))
        for i in range(2):
            self.step(f"cache4g_{i}", lambda: helper("cudnn", nano, *self.flag()))
        self.step("packed_nano", lambda: helper("packed", str(self.clip(720)), nano,
                                                *self.flag()))  # fmt: skip
        frames = "300" if not self.args.quick else "30"
        self.step("bench_nano", lambda: json.loads(subprocess.run(
            [sys.executable, "-m", "annotate", "bench", "--providers", f"{self.gpu},cpu",
             "--source", str(self.clip(720)), "--frames", frames, "--json",
             "--model", nano, "--batches", "1,8,32"],
            capture_output=True, text=True).stdout or "{}"))  # fmt: skip
        if self.args.quick:
            return
        large = self.model("large")
        if not Path(large).exists():
            return
        self.step("cudnn_large", lambda: helper("cudnn", large))
        self.step("bench_large", lambda: json.loads(subprocess.run(
            [sys.executable, "-m", "annotate", "bench", "--providers", "cuda",
             "--json", "--model", large, "--batches", "1,8,32", "--iterations", "20"],
            capture_output=True, text=True).stdout or "{}"))  # fmt: skip
        clip = self.clip(720)
        for r in range(self.args.rounds):
            self.step(
                f"large_cuda_json_{r}",
                lambda: self.run(clip, large, "--provider", "cuda", "--json", self.jsonl),
            )
            self.step(
                f"large_cpu_json_{r}",
                lambda: self.run(
                    clip, large, "--provider", "cpu", "--json", self.jsonl, "--max-frames", "120"
                ),
            )
            self.step(
                f"large_cuda_out_{r}",
                lambda: self.run(
                    clip, large, "--provider", "cuda", "-o", str(self.work / "l.mp4"), *ENCODE
                ),
            )

    def large(self) -> None:
        """The YOLOX-L-sized model in both GPU plans, with the passthrough beside it."""
        clip = self.clip(720)
        large = self.model("large")
        if not self.args.quick:
            self.step("build_large", lambda: build_large(
                self.media / "yolox-0.3.0.tar.gz", self.work / LARGE))  # fmt: skip
        else:
            large = self.model("nano")
        out = str(self.work / "l.mp4")
        gpu = self.gpu
        json_, video = ("--json", self.jsonl), ("-o", out, *ENCODE)
        served = ("--batch", "16")
        waits = ("--no-cpu-start",)
        runs: dict[str, Any] = {
            "large_cuda_json": (*json_,),
            "large_cuda_json_b16": (*json_, *served),
            "large_cuda_out_b16": (*video, *served),
            "large_cuda_out": (*video,),
            "large_cuda_json_b8": (*json_, "--batch", "8"),
            "large_cuda_out_b8": (*video, "--batch", "8"),
            "large_cuda_json_b16_no_cpu_start": (*json_, *served, *waits),
            "large_cuda_out_b16_no_cpu_start": (*video, *served, *waits),
            "large_cuda_json_cpu_start": (*json_, "--cpu-start"),
            "large_cuda_json_no_cpu_start": (*json_, *waits),
        }
        calls: dict[str, Any] = {
            name: lambda e=extra: self.run(clip, large, "--provider", gpu, *e)
            for name, extra in runs.items()
        }
        calls["passthrough_out"] = lambda: helper("passthrough", str(clip), out, gpu, large)
        if self.args.old:
            calls["old_large_cuda_out"] = lambda: self.run(
                clip, large, "--provider", gpu, *video, old=True
            )
            calls["old_large_cuda_json"] = lambda: self.run(
                clip, large, "--provider", gpu, *json_, old=True
            )
            calls["old_large_cuda_json_b8"] = lambda: self.run(
                clip, large, "--provider", gpu, *json_, "--batch", "8", old=True
            )
        only = self.only()
        if only:
            calls = {n: calls[n] for n in only if n != "large_cpu_json"}
        for r in range(self.args.rounds):
            for name, call in calls.items():
                self.step(f"{name}_{r}", call)
        if only is None or "large_cpu_json" in only:
            self.step("large_cpu_json", lambda: self.run(clip, large, "--provider", "cpu",
                      "--json", self.jsonl, "--max-frames", "120"))  # fmt: skip

    def only(self) -> list[str] | None:
        """The runs ``--only`` names, or None: every run."""
        return self.args.only.split(",") if self.args.only else None

    def flag(self) -> list[str]:
        return ["--quick"] if self.args.quick else []

    def loop(self) -> None:
        for height in (int(h) for h in self.args.heights.split(",")):
            self.loop_at(height)

    def loop_at(self, height: int) -> None:
        nano = self.model("nano")
        gpu, work = self.gpu, self.work
        clip = self.clip(height)
        out = str(work / f"o{height}.mp4")
        runs: dict[str, Any] = {
            "cuda_json": lambda: self.run(clip, nano, "--provider", gpu, "--json", self.jsonl),
            "cpu_json": lambda: self.run(clip, nano, "--provider", "cpu", "--json", self.jsonl),
            "cuda_out": lambda: self.run(clip, nano, "--provider", gpu, "-o", out, *ENCODE),
            # The detector's whole work, but no box kept (no giraffe in the clip): nothing drawn.
            "cuda_out_undrawn": lambda: self.run(
                clip, nano, "--provider", gpu, "-o", out, *ENCODE, "--classes", "giraffe"
            ),
            "cpu_out": lambda: self.run(clip, nano, "--provider", "cpu", "-o", out, *ENCODE),
            "passthrough_out": lambda: helper(
                "passthrough", str(clip), out, gpu, nano, env=self.env()
            ),
            "passthrough_json": lambda: helper(
                "passthrough", str(clip), self.jsonl, gpu, nano, env=self.env()
            ),
            "hand_cuda_out": lambda: helper(
                "hand", str(clip), out, provider_name(gpu), nano, "416", "100000"
            ),
            "hand_cuda_json": lambda: helper(
                "hand", str(clip), "-", provider_name(gpu), nano, "416", "100000"
            ),
            "cuda_out_hwdec_none": lambda: self.run(
                clip, nano, "--provider", gpu, "-o", out, "--hwdec", "none", *ENCODE
            ),
            "cuda_out_codec_auto": lambda: self.run(clip, nano, "--provider", gpu, "-o", out),
            "cuda_json_b16": lambda: self.run(
                clip, nano, "--provider", gpu, "--json", self.jsonl, "--batch", "16"
            ),
            "cuda_json_b8": lambda: self.run(
                clip, nano, "--provider", gpu, "--json", self.jsonl, "--batch", "8"
            ),
            "cuda_out_b16": lambda: self.run(
                clip, nano, "--provider", gpu, "-o", out, *ENCODE, "--batch", "16"
            ),
            "cuda_out_b8": lambda: self.run(
                clip, nano, "--provider", gpu, "-o", out, *ENCODE, "--batch", "8"
            ),
            "cuda_json_b8_no_cpu_start": lambda: self.run(
                clip, nano, "--provider", gpu, "--json", self.jsonl, *WAITED_B8
            ),
            "cuda_json_no_cpu_start": lambda: self.run(
                clip, nano, "--provider", gpu, "--json", self.jsonl, "--no-cpu-start"
            ),
            "cuda_json_cpu_start": lambda: self.run(
                clip, nano, "--provider", gpu, "--json", self.jsonl, "--cpu-start"
            ),
            "cuda_out_cpu_start": lambda: self.run(
                clip, nano, "--provider", gpu, "-o", out, *ENCODE, "--cpu-start"
            ),
            "cuda_out_no_cpu_start": lambda: self.run(
                clip, nano, "--provider", gpu, "-o", out, *ENCODE, "--no-cpu-start"
            ),
        }
        for name in [n for n in runs if n.startswith("cuda_")]:
            runs[f"{name}_grouped"] = lambda call=runs[name]: self.variant(
                call, "--cuda-depthwise", "grouped"
            )
        runs["cuda_out_w4"] = lambda: self.run(
            clip, nano, "--provider", gpu, "-o", out, *ENCODE, "--workers", "4"
        )
        runs["cuda_out_w12"] = lambda: self.run(
            clip, nano, "--provider", gpu, "-o", out, *ENCODE, "--workers", "12"
        )
        for name in [n for n in runs if n.startswith(("cuda_", "passthrough_"))]:
            for suffix, switch in (("sw1", "0.001"), ("sw05", "0.0005")):
                runs[f"{name}_{suffix}"] = lambda call=runs[name], s=switch: self.variant(
                    call, **{SWITCH_ENV: s}
                )
        for name in [n for n in runs if n.endswith("_out") or "_out_" in n]:
            runs[f"{name}_copy"] = lambda call=runs[name]: self.variant(call, **{COPY_ENV: "1"})
        if self.args.old:
            runs["old_cpu_out"] = lambda: self.run(
                clip, nano, "--provider", "cpu", "-o", out, *ENCODE, old=True
            )
            runs["old_cpu_json"] = lambda: self.run(
                clip, nano, "--provider", "cpu", "--json", self.jsonl, old=True
            )
            runs["old_cuda_out"] = lambda: self.run(
                clip, nano, "--provider", gpu, "-o", out, *ENCODE, old=True
            )
            runs["old_cuda_json"] = lambda: self.run(
                clip, nano, "--provider", gpu, "--json", self.jsonl, old=True
            )
            runs["old_cuda_json_no_cpu_start"] = lambda: self.run(
                clip, nano, "--provider", gpu, "--json", self.jsonl, "--no-cpu-start", old=True
            )
            runs["old_cuda_json_b8_no_cpu_start"] = lambda: self.run(
                clip, nano, "--provider", gpu, "--json", self.jsonl, *WAITED_B8, old=True
            )
        if only := self.only():
            runs = {name: runs[name] for name in only}
        for r in range(self.args.rounds):
            for name, call in runs.items():
                self.step(f"{height}_{name}_{r}", call)

    def env(self) -> dict[str, str] | None:
        return {**os.environ, **self.env_extra} if self.env_extra else None

    def variant(self, call: Any, *flags: str, **env: str) -> Any:
        """``call``'s run with ``flags`` added to its command line (``annotate run`` only)
        and ``env`` to its environment."""
        outer = self.env_extra, self.flags_extra
        self.env_extra, self.flags_extra = {**outer[0], **env}, (*outer[1], *flags)
        try:
            return call()
        finally:
            self.env_extra, self.flags_extra = outer


def provider_name(short: str) -> str:
    return {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}[short]


def gpu_name() -> str:
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
        done = subprocess.run(query, capture_output=True, text=True)
        return done.stdout.strip()
    except OSError:
        return "none"


def main() -> int:
    helpers = (
        "passthrough",
        "cudnn",
        "packed",
        "hand",
        "diag",
        "scored",
        "startup",
        "svc",
        "where",
        "calls",
    )
    if len(sys.argv) > 1 and sys.argv[1] in helpers:
        study_boot()
        name, rest = sys.argv[1], sys.argv[2:]
        quick = "--quick" in rest
        rest = [a for a in rest if a != "--quick"]
        if name == "passthrough":
            value = passthrough(*rest)
        elif name == "cudnn":
            value = cudnn(rest[0], quick)
        elif name == "packed":
            value = packed(rest[0], rest[1], quick)
        elif name == "diag":
            value = diag(rest[0], rest[1], quick)
        elif name == "scored":
            value = scored(rest[0], rest[1], quick)
        elif name == "startup":
            value = startup(rest[0], rest[1], quick)
        elif name == "svc":
            value = svc(rest[0], rest[1], quick)
        elif name == "where":
            value = where(rest[0], rest[1], quick)
        elif name == "calls":
            value = calls(rest[0], rest[1], quick, int(rest[2]))
        else:
            value = hand(rest[0], rest[1], rest[2], rest[3], int(rest[4]), int(rest[5]))
        print(json.dumps(value))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        choices=("setup", "loop", "diag", "scored", "large", "where", "calls"),
        required=True,
    )
    parser.add_argument("--media", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--old", default="")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--heights", default="720,1080", help="the loop part's inputs")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="the loop and large parts' runs, by name")
    parser.add_argument("--py-spy", default="", help="the where part: py-spy's path")
    args = parser.parse_args()
    study = Study(args)
    if args.part == "calls":
        study.step("clip720", lambda: str(study.clip(720)))
        study.step("calls", lambda: helper("calls", str(study.clip(720)), study.model("nano"),
                                           str(args.rounds), *study.flag(), show=True))  # fmt: skip
    elif args.part == "where":
        study.step("clip720", lambda: str(study.clip(720)))
        study.step("where", lambda: helper("where", str(study.clip(720)), study.model("nano"),
                                           *study.flag(), show=True))  # fmt: skip
        if args.py_spy:
            study.step("gil", lambda: gil_profiles(study, args.py_spy))
    elif args.part in ("diag", "scored"):
        study.step("clip720", lambda: str(study.clip(720)))
        nano = study.model("nano")
        study.step("startup", lambda: helper("startup", nano, str(study.clip(720)),
                                             *study.flag()))  # fmt: skip
        study.step(args.part, lambda: helper(args.part, str(study.clip(720)), nano,
                                             *study.flag()))  # fmt: skip
    elif args.part == "large":
        study.large()
    else:
        study.setup() if args.part == "setup" else study.loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
