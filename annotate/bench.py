"""Comparing execution providers on the real model: inference alone, and the whole pipeline.

Each provider gets its own session; after it starts, ``get_providers()`` is read back and a
provider that ONNX Runtime silently replaced with the CPU is reported, never timed as itself.
"""

from __future__ import annotations

import functools
import gc
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from annotate.detector import Detector, SessionSettings
from annotate.detector.canvas import size_text
from annotate.detector.session import NVIDIA, open_session
from annotate.errors import ProviderError, UsageError, check_at_least
from annotate.providers import BATCHING, CPU, Resolution, canonical_name, usable
from annotate.sources import is_image

#: A real photo shipped with the package (Grace Hopper, US Navy, public domain), so
#: ``annotate bench`` works with nothing else on disk.
DEFAULT_IMAGE = "grace_hopper.jpg"


def default_image_path() -> Path:
    return Path(str(files("annotate") / "data" / DEFAULT_IMAGE))


@dataclass(frozen=True)
class BenchConfig:
    model: Path
    providers: Sequence[str] | None = None  # None or ["all"]: every provider this build has
    iterations: int = 50
    warmup: int = 5
    source: str | None = None  # image or video for inference-only; a video enables end to end
    frames: int = 100  # end-to-end frames
    session: SessionSettings = field(default_factory=SessionSettings)
    #: Batch sizes to time inference at, with the model's batch freed as the inference
    #: service frees it; ``None``: :data:`GPU_BATCHES` on batching accelerators only.
    batches: Sequence[int] | None = None

    def check(self) -> None:
        check_at_least("--iterations", self.iterations, 1)
        check_at_least("--warmup", self.warmup, 0)
        check_at_least("--frames", self.frames, 1)
        for size in self.batches or ():
            check_at_least("--batches", size, 1)
        self.session.check()
        if self.source is not None:
            from annotate.sources import input_paths

            if not any(p.exists() for p in input_paths(self.source)):
                raise UsageError(f"--source {self.source} does not exist")


@dataclass(frozen=True)
class Stats:
    """Milliseconds over the timed iterations."""

    mean: float
    median: float
    p90: float
    min: float
    max: float
    samples: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Stats:
        ms = np.asarray(seconds, dtype=float) * 1000
        return cls(
            mean=float(ms.mean()),
            median=float(np.median(ms)),
            p90=float(np.percentile(ms, 90)),
            min=float(ms.min()),
            max=float(ms.max()),
            samples=len(ms),
        )


#: ``--batch`` of the inference service's end-to-end run on a GPU: of 4, 8 and 16 the best
#: for YOLOX-Nano on the H200 (docs/performance.md, "GPU").
SERVICE_BATCH = 4
#: The batch sizes ``bench`` times on a GPU: one frame, a service's usual batch, and the
#: most a GPU takes with gain for a small model.
GPU_BATCHES = (1, 8, 32)


@dataclass
class BatchTiming:
    """One inference call on ``size`` frames at once."""

    size: int
    call: Stats  # milliseconds per call
    images_per_s: float  # frames per second at the median call


@dataclass
class EndToEnd:
    """One real ``annotate run`` of the video (frames decoded, detected, drawn, encoded)."""

    mode: str  # the runner and thread plan, as ``annotate run -v`` prints it
    frames: int
    fps: float  # frames ÷ wall-clock seconds, start-up included: what ``annotate run`` prints
    loop_fps: float  # after the first frame: the steady rate, start-up excluded
    first_frame_s: float  # start-up: model load, opening input and output, first frame
    cpu_ms: dict[str, float]  # CPU time per frame in each stage (they overlap when concurrent)
    #: The inference service's batches (GPU runs): its mean batch is the effective batch.
    service: dict[str, float] | None = None
    gpu_util: float | None = None  # mean GPU utilisation, %, where nvidia-ml-py reads it


@dataclass
class ProviderResult:
    provider: str
    status: str  # "ran" or "skipped"
    reason: str = ""
    active: list[str] = field(default_factory=list)
    startup_s: float | None = None
    inference: Stats | None = None
    preprocess: Stats | None = None
    postprocess: Stats | None = None
    fps: float | None = None
    speedup: float | None = None
    #: Inference with the settings ``annotate run`` uses for files (its workers' threads,
    #: no spinning), when they differ from the fastest single-call settings timed above.
    pipeline_inference: Stats | None = None
    pipeline_settings: str = ""
    end_to_end: EndToEnd | None = None
    sequential: EndToEnd | None = None  # the same with ``--sequential``
    service: EndToEnd | None = None  # a GPU's: with the batching inference service
    batches: list[BatchTiming] = field(default_factory=list)
    batch_note: str = ""  # why no batch was timed, where none was


@dataclass
class BenchReport:
    machine: dict[str, Any]
    model: str
    input: dict[str, Any]
    settings: dict[str, Any]
    iterations: int
    warmup: int
    results: list[ProviderResult]
    baseline: str | None = None
    recommendation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine_info() -> dict[str, Any]:
    import os

    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def requested_providers(names: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Turn ``--providers`` into ONNX Runtime names; default/``all`` is every usable one."""
    if not names or [n.strip().lower() for n in names] == ["all"]:
        return usable(available)
    result = []
    for name in names:
        full = canonical_name(name)
        if full is None:
            raise ProviderError(f"unknown execution provider '{name}' in --providers")
        if full not in result:
            result.append(full)
    return result


def bench_image(source: str | None) -> tuple[np.ndarray, str]:
    """The frame to time inference on: an image, a video's first frame, or the bundled photo."""
    from annotate.sources import open_source

    if source is None:
        from annotate.sources.images import read_image

        path = default_image_path()
        return read_image(path), f"{DEFAULT_IMAGE} (bundled)"
    with open_source(source) as opened:
        frame = next(iter(opened))
    kind = "image" if is_image(Path(source)) else "first frame of"
    return frame.image, f"{kind} {source}"


SessionFactory = Callable[[Path, Resolution, SessionSettings], tuple[Any, Any]]


def _open(model: Path, resolution: Resolution, settings: SessionSettings) -> tuple[Any, Any]:
    return open_session(model, resolution, settings)


def run_bench(
    config: BenchConfig,
    available: Sequence[str] | None = None,
    session_factory: SessionFactory = _open,
    on_progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Time every requested provider; see the module docstring.

    ``available`` and ``session_factory`` default to the real ONNX Runtime; tests pass a
    stand-in for providers that cannot exist on the test machine.
    """
    from annotate.providers import available_providers

    config.check()
    available = list(available if available is not None else available_providers())
    wanted = requested_providers(config.providers, available)
    image, described = bench_image(config.source)
    video = config.source is not None and not is_image(Path(config.source))
    results = []
    for provider in wanted:
        if on_progress:
            on_progress(f"Benchmarking {provider}")
        if provider not in usable(available):
            results.append(
                ProviderResult(
                    provider,
                    "skipped",
                    f"not in this onnxruntime build (available: {', '.join(usable(available))})",
                )
            )
            continue
        chain = (provider,) if provider == CPU else (provider, CPU)
        resolution = Resolution(chain, "bench")
        result = _bench_provider(config, resolution, image, session_factory, video)
        gc.collect()  # the timing sessions' thread pools are gone before the real runs
        sizes = config.batches
        if sizes is None:
            sizes = GPU_BATCHES if provider in BATCHING else ()
        if result.status == "ran" and sizes:
            result.batches, result.batch_note = _batch_timings(config, resolution, image, sizes)
            gc.collect()
        if result.status == "ran" and video:
            result.end_to_end = _end_to_end(config, resolution, sequential=False)
            result.sequential = _end_to_end(config, resolution, sequential=True)
            if provider in BATCHING:
                result.service = _end_to_end(config, resolution, batch=SERVICE_BATCH)
        results.append(result)
    report = BenchReport(
        machine=machine_info(),
        model=str(config.model),
        input={
            "image": described,
            "size": [int(image.shape[1]), int(image.shape[0])],
            "video": config.source if video else None,
            "frames": config.frames if video else None,
        },
        settings=config.session.describe(),
        iterations=config.iterations,
        warmup=config.warmup,
        results=results,
    )
    _compare(report)
    return report


def _bench_provider(
    config: BenchConfig,
    resolution: Resolution,
    image: np.ndarray,
    factory: SessionFactory,
    video: bool = False,
) -> ProviderResult:
    """Inference with the settings that give this provider its lowest latency: ONNX
    Runtime's own defaults (all cores, idle threads spinning), unless the user set threads,
    on the model's own canvas; then, beside it, with the settings ``annotate run``'s
    concurrent runner uses, on the canvas it uses for a ``video``."""
    from annotate.pipeline.options import RunOptions
    from annotate.pipeline.plan import cpu_cores, plan_threads

    provider = resolution.preferred
    fastest = replace(config.session, spinning=None)
    started = time.perf_counter()
    session, info = factory(config.model, resolution, fastest)
    startup = time.perf_counter() - started
    active = list(session.get_providers())
    if not active or active[0] != provider:
        return ProviderResult(
            provider,
            "skipped",
            f"ONNX Runtime fell back to {active[0] if active else 'nothing'} (not timed as "
            f"{provider})",
            active,
            startup,
        )
    detector = Detector(session, info, name=str(config.model))
    blob, box = detector.preprocess(image)
    inference = _time_inference(session, {detector.input_name: blob}, config)
    output = session.run(None, {detector.input_name: blob})[0]
    # Each stage in its own loop: interleaving them would time session.run with caches that
    # pre/post-processing just flushed, which a bare session.run loop does not see.
    pre = _timed(config.iterations, lambda: detector.preprocess(image))
    post = _timed(config.iterations, lambda: detector.postprocess(output, box))
    result = ProviderResult(
        provider,
        "ran",
        "",
        active,
        startup,
        inference,
        Stats.of(pre),
        Stats.of(post),
        fps=1000 / inference.mean if inference.mean > 0 else None,
    )
    plan = plan_threads(
        RunOptions("", config.model, resolution, session=config.session), cpu_cores()
    )
    # Its spinning threads must not run beside what is timed next (the lambdas above hold
    # these names, so they are rebound rather than deleted).
    session = detector = None  # type: ignore[assignment]
    gc.collect()
    if plan.workers:
        used = replace(config.session, threads=plan.intra_op, spinning=False)
        canvas = ""
        if video and provider == CPU:  # the fitted canvas (annotate.detector.canvas)
            fitted = Detector.load(config.model, resolution, settings=used, free_size=True)
            fitted.fit = fitted.can_fit
            blob = fitted.preprocess(image)[0]
            pipeline: Any = fitted.session
            canvas = f", {size_text(blob.shape[2:])} canvas"
        elif used != fastest:
            pipeline, _ = factory(config.model, resolution, used)
        else:
            return result
        result.pipeline_inference = _time_inference(
            pipeline, {pipeline.get_inputs()[0].name: blob}, config
        )
        result.pipeline_settings = (
            f"{plan.workers} workers × {plan.intra_op} thread"
            f"{'s' * (plan.intra_op != 1)}, no spinning{canvas}"
        )
    return result


def _batch_timings(
    config: BenchConfig, resolution: Resolution, image: np.ndarray, sizes: Sequence[int]
) -> tuple[list[BatchTiming], str]:
    """Inference on ``sizes`` frames per call, through the model as the inference service
    runs it (batch freed, and packed on a batching accelerator; IO binding there)."""
    from annotate.detector.graph import Edits

    if resolution.preferred in BATCHING:  # the accelerator's own session, timed alone
        settings = replace(config.session, cpu_start=False)
        detector = Detector.load(config.model, resolution, settings=settings)
        run: Callable[[Any], Any] = detector.bound_run()
    else:  # the CPU: the batch freed alone
        session, info = open_session(config.model, resolution, config.session, Edits(batch=True))
        detector = Detector(session, info, name=str(config.model))
        run = detector._run_plain
    largest = max(sizes)
    limit, why = detector.batch_limit(largest)
    if limit < largest:
        return [], why
    canvas = detector.preprocess(image)[0]
    timings = []
    for size in sizes:
        blob = np.ascontiguousarray(np.repeat(canvas, size, axis=0))
        for _ in range(config.warmup):
            run(blob)
        call = Stats.of(_timed(config.iterations, functools.partial(run, blob)))
        timings.append(BatchTiming(size, call, 1000 * size / call.median))
    return timings, ""


def _time_inference(session: Any, feed: dict[str, Any], config: BenchConfig) -> Stats:
    for _ in range(config.warmup):
        session.run(None, feed)
    return Stats.of(_timed(config.iterations, lambda: session.run(None, feed)))


def _timed(n: int, call: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def _end_to_end(
    config: BenchConfig, resolution: Resolution, sequential: bool = False, batch: int | None = None
) -> EndToEnd:
    """The video through the real ``annotate run`` (the runner it would pick, or the
    sequential loop), encoding to a throw-away file; FPS by the wall clock, as run reports."""
    from annotate.pipeline import RunOptions, run
    from annotate.pipeline.summary import STAGES

    sampler = GpuSampler.start() if resolution.preferred in NVIDIA else None
    with tempfile.TemporaryDirectory(prefix="annotate-bench-") as tmp:
        options = RunOptions(
            source=str(config.source),
            model=config.model,
            resolution=resolution,
            output=Path(tmp) / "bench.mp4",
            max_frames=config.frames,
            fps_every=10**9,
            session=config.session,
            sequential=sequential,
            batch=batch,
        )
        try:
            summary = run(options)
        finally:
            util = sampler.stop() if sampler is not None else None
    frames = max(summary.frames, 1)
    return EndToEnd(
        mode=summary.mode,
        frames=summary.frames,
        fps=summary.fps,
        loop_fps=summary.loop_fps or 0.0,
        first_frame_s=summary.first_frame_s or 0.0,
        cpu_ms={s: 1000 * summary.stage_s[s] / frames for s in STAGES},
        service=summary.service,
        gpu_util=util,
    )


class GpuSampler:
    """The GPU's utilisation every 0.1 s while a run goes, through NVML (``nvidia-ml-py``,
    optional: without it, or without an NVIDIA driver, nothing is read)."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        import threading

        self.nvml, self.handle = nvml, handle
        self.samples: list[int] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, name="gpu-sampler", daemon=True)
        self.thread.start()

    @classmethod
    def start(cls, device: int = 0) -> GpuSampler | None:
        try:
            import pynvml

            pynvml.nvmlInit()
            return cls(pynvml, pynvml.nvmlDeviceGetHandleByIndex(device))
        except Exception:  # not installed, no driver, no such device: NVML's own errors
            return None

    def _sample(self) -> None:
        while not self.done.wait(0.1):
            try:
                self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
            except Exception:  # NVML errors end the sampling, never the run
                return

    def stop(self) -> float | None:
        self.done.set()
        self.thread.join(timeout=1)
        return float(np.mean(self.samples)) if self.samples else None


def _compare(report: BenchReport) -> None:
    ran = [r for r in report.results if r.status == "ran" and r.inference]
    if not ran:
        report.recommendation = "No provider could run here."
        return
    base = next((r for r in ran if r.provider == CPU), None)
    base = base or max(ran, key=lambda r: r.inference.mean)  # type: ignore[union-attr]
    report.baseline = base.provider
    for r in ran:
        r.speedup = base.inference.mean / r.inference.mean  # type: ignore[union-attr]
    best = min(ran, key=lambda r: r.inference.mean)  # type: ignore[union-attr]
    against = "CPU" if base.provider == CPU else base.provider
    if len(ran) == 1:
        report.recommendation = f"Use {best.provider}: the only provider that runs here."
    elif best is base:
        others = ", ".join(f"{r.provider} {r.speedup:.2f}×" for r in ran if r is not base)
        report.recommendation = f"Use {best.provider}: fastest on this model ({others})."
    else:
        report.recommendation = (
            f"Use {best.provider}: {best.speedup:.1f}× faster than {against} on this model."
        )
