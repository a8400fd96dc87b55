"""sources → detector → annotators → sinks, with one ExitStack that closes everything."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from annotate.analytics.geometry import ANCHORS, parse_shapes
from annotate.annotators import (
    BLUR_SHAPES,
    BLUR_STYLES,
    Annotator,
    BlurAnnotator,
    CountAnnotator,
    default_annotators,
)
from annotate.detector import Detector, SessionSettings, class_filter, class_ids
from annotate.errors import (
    Interrupted,
    OutputPathError,
    StopRequested,
    UsageError,
    check_at_least,
)
from annotate.providers import Resolution
from annotate.runner import DetectEvery, Emitter, run_concurrent, run_sequential
from annotate.sinks import Sink
from annotate.sinks.video import EncodeOptions
from annotate.sources import Source, input_paths, is_image, open_source
from annotate.stats import LiveStats
from annotate.types import VideoInfo

if TYPE_CHECKING:
    from annotate.analytics.counting import Counter
    from annotate.tracking import Tracker

log = logging.getLogger("annotate")


@dataclass
class RunOptions:
    """Everything ``annotate run`` needs, already resolved from flags, env and config."""

    source: str
    model: Path
    resolution: Resolution
    output: Path | None = None
    json_path: str | None = None
    show: bool = False
    conf: float = 0.3
    iou: float = 0.45
    max_frames: int | None = None
    fps_every: int = 30
    session: SessionSettings = field(default_factory=SessionSettings)
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    start: float | None = None
    end: float | None = None
    reconnect: int = 5
    sequential: bool = False
    workers: int | None = None  # inference threads for the concurrent runner; None: auto
    decode_threads: int = 0  # 0: planned (see plan_threads)
    batch: int = 1  # frames per inference call in the concurrent runner, if the model allows
    serve: tuple[str, int] | None = None  # web preview address
    serve_hosts: tuple[str, ...] = ()  # more names the preview answers to (--serve-host)
    family: str | None = None  # None: detect from the model
    labels: Path | None = None
    classes: list[str] | None = None
    min_area: float = 0.0
    max_det: int = 300
    track: bool = False  # identities across frames (implied by mot and detect_every != 1)
    track_buffer: float = 1.0  # seconds of video a lost track waits to be found again
    trails: int = 0  # draw each track's last N centre points
    mot: Path | None = None  # MOT Challenge text output
    detect_every: int | None = 1  # detect every Nth frame, predict the rest; None: auto
    lines: list[str] = field(default_factory=list)  # --line specs, [NAME=]x1,y1,x2,y2
    zones: list[str] = field(default_factory=list)  # --zone specs, [NAME=]x1,y1,x2,y2,x3,y3,…
    anchor: str = "bottom"  # the point of a box that crosses lines and stands in zones
    line_frames: int = 2  # frames on the new side before a crossing or zone change counts
    blur: list[str] | None = None  # classes to hide (names or ids); None: no blur
    blur_style: str = "gaussian"
    blur_shape: str = "box"
    boxes: bool = True  # draw boxes and labels (off: a clean anonymised video)


STAGES = ("decode", "preprocess", "inference", "postprocess", "draw", "write")


@dataclass
class RunSummary:
    frames: int = 0
    detected: int = 0  # frames the detector saw (fewer than frames with --detect-every)
    wall_s: float = 0.0
    provider: str = ""
    outputs: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the run ended early: "window closed", "SIGINT", ...
    tracks: int | None = None  # identities handed out, when the run tracks
    counts: dict[str, Any] | None = None  # lines and zones, as in the JSON Lines records
    first_frame_s: float | None = None
    dropped: int = 0
    ages: list[float] = field(default_factory=list)  # live sources: capture → drawn, seconds
    mode: str = ""
    #: Seconds spent per stage over the run: decode, preprocess, inference, postprocess,
    #: draw, write (encode and other outputs).
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @property
    def inference_s(self) -> float:
        return self.stage_s["inference"]

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


class Progress(Protocol):
    """How far a run has got; the CLI draws it (a Rich bar), the library only reports."""

    def start(self, total: int | None) -> None: ...
    def update(self, frames: int) -> None: ...
    def stop(self) -> None: ...


def check_options(options: RunOptions) -> None:
    """Refuse bad combinations before opening anything, so nothing is half-written."""
    if options.max_frames is not None:
        check_at_least("--max-frames", options.max_frames, 1)
    if options.workers is not None:
        check_at_least("--workers", options.workers, 1)
    check_at_least("--fps-every", options.fps_every, 1)
    check_at_least("--batch", options.batch, 1)
    check_at_least("--reconnect", options.reconnect, 0)
    if options.detect_every is not None:
        check_at_least("--detect-every", options.detect_every, 1)
    if not options.track_buffer >= 0:  # also refuses nan
        raise UsageError(f"--track-buffer must be 0 seconds or more, got {options.track_buffer:g}")
    check_at_least("--trails", options.trails, 0)
    if options.trails and not options.track:
        raise UsageError("--trails draws the paths of tracks: add --track")
    if not options.track and (
        options.mot is not None
        or options.detect_every != 1
        or options.lines
        or options.zones
        or options.blur is not None
    ):
        raise UsageError("--mot, --detect-every, --line, --zone and --blur need the tracker: "
                         "add --track")  # fmt: skip
    parse_shapes(options.lines, "line")
    parse_shapes(options.zones, "zone")
    check_at_least("--line-frames", options.line_frames, 1)
    for flag, value, allowed in (("--anchor", options.anchor, ANCHORS),
                                 ("--blur-style", options.blur_style, BLUR_STYLES),
                                 ("--blur-shape", options.blur_shape, BLUR_SHAPES)):  # fmt: skip
        if value not in allowed:
            raise UsageError(f"{flag} takes {', '.join(allowed)}; got {value!r}")
    if options.start is not None and options.start < 0:
        raise UsageError(f"--start must not be negative, got {options.start:g}")
    if options.end is not None and options.end <= (options.start or 0):
        raise UsageError("the time span is empty: --end must come after --start "
                         "(or --duration be positive)")  # fmt: skip
    inputs = [p.resolve() for p in input_paths(options.source) if p.exists()]
    named = [(flag, Path(p)) for flag, p in
             (("-o", options.output), ("--json", options.json_path), ("--mot", options.mot))
             if p and str(p) != "-"]  # fmt: skip
    for flag, out in named:
        if out.resolve() in inputs:
            raise OutputPathError(f"output {out} is the input; choose another file name")
        parent = out.resolve().parent
        if not parent.is_dir():
            raise OutputPathError(f"cannot write {out}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise OutputPathError(f"cannot write {out}: directory {parent} is not writable")
        if out.is_dir() and flag != "-o":
            raise OutputPathError(f"cannot write {out}: it is a directory")
    out = options.output
    if out is not None and out.suffix and not is_image(out) and not out.is_dir():
        from annotate.sinks.video import check_encoding

        check_encoding(out, options.encode)
    for (flag_a, a), (flag_b, b) in itertools.combinations(named, 2):
        if a.resolve() == b.resolve():
            raise OutputPathError(f"{flag_a} and {flag_b} name the same file; choose two names")


def make_sinks(
    options: RunOptions,
    source: Source,
    labels: Sequence[str],
    stack: ExitStack,
    live: LiveStats | None = None,
    record_extra: Callable[[], dict[str, Any]] | None = None,
) -> list[Sink]:
    """Open each output, registering it on ``stack`` at once so a later failure closes it."""
    sinks: list[Sink] = []
    if options.output is not None:
        out = options.output
        if source.info.still:
            from annotate.sinks.images import ImageSink

            single = source.info.frames == 1 and is_image(out) and not out.is_dir()
            if not single and out.suffix and not out.is_dir():
                raise OutputPathError(
                    f"cannot write {out}: an image source writes images; give -o a directory "
                    "(or an image file name for a single image)"
                )
            sinks.append(stack.enter_context(ImageSink(out, single_file=single)))
        else:
            from annotate.sinks.video import VideoSink

            audio_from = getattr(source, "path", None) if not source.info.live else None
            sink = VideoSink(out, source.info, options.encode, audio_from=audio_from)
            sinks.append(stack.enter_context(sink))
    if options.json_path is not None:
        from annotate.sinks.jsonl import JsonLinesSink

        sinks.append(stack.enter_context(JsonLinesSink(options.json_path, labels, record_extra)))
    if options.mot is not None:
        from annotate.sinks.mot import MotSink

        sinks.append(stack.enter_context(MotSink(options.mot)))
    if options.show:
        from annotate.sinks.window import WindowSink

        sinks.append(stack.enter_context(WindowSink(f"annotate - {source.name}", live)))
    if options.serve is not None:
        from annotate.sinks.web import WebPreview

        host, port = options.serve
        preview = WebPreview(host, port, live or LiveStats(), f"annotate - {source.name}",
                             options.serve_hosts)  # fmt: skip
        sinks.append(stack.enter_context(preview))
    return sinks


def expected_frames(info: VideoInfo, options: RunOptions) -> int | None:
    """How many frames the run will take, for a progress bar; ``None`` if unknowable."""
    if info.live:
        return options.max_frames
    total = info.frames
    if total is not None and (options.start or options.end is not None):
        fps = float(info.fps)
        last = total if options.end is None else min(total, round(options.end * fps))
        total = max(0, last - round((options.start or 0) * fps))
    if options.max_frames is not None:
        total = options.max_frames if total is None else min(total, options.max_frames)
    return total


def run(
    options: RunOptions,
    annotators: Sequence[Annotator] | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Build the pipeline from ``options`` and run it to the end of the source.

    Ctrl-C, SIGTERM (as :class:`Interrupted`) or a closed window end the run early; every
    output is finalised either way and the summary says why it stopped.
    """
    check_options(options)
    started = time.perf_counter()
    outputs = (options.output, options.json_path, options.mot)
    summary = RunSummary(outputs=[str(p) for p in outputs if p])
    with ExitStack() as stack:
        cores = cpu_cores()
        plan = plan_threads(options, cores)
        opened = open_source(options.source, options.start, options.end, options.reconnect,
                             plan.decode)  # fmt: skip
        source = stack.enter_context(opened)
        if plan.workers and (source.info.live or source.info.still):
            # The sequential plan, but the decoder's threads are fixed once it is open.
            sequential = plan_threads(replace(options, sequential=True), cores)
            plan = replace(sequential, decode=plan.decode)
        if plan.opencv is not None:
            import cv2

            stack.callback(cv2.setNumThreads, cv2.getNumThreads())
            cv2.setNumThreads(plan.opencv)
        spinning = options.session.spinning
        if spinning is None:
            spinning = spinning_for(plan, source.info.live, recording=options.output is not None)
        log.debug("ONNX Runtime's idle threads %s", "spin" if spinning else "sleep")
        settings = replace(options.session, threads=plan.intra_op, spinning=spinning)
        tracker = make_tracker(options)
        # The tracker's second round keeps tracks alive on boxes below --conf (ByteTrack).
        conf = min(options.conf, tracker.settings.low) if tracker else options.conf
        detector = Detector.load(options.model, options.resolution, conf, options.iou,
                                 settings, family=options.family,
                                 labels_file=options.labels)  # fmt: skip
        detector.keep = class_filter(detector.labels, options.classes, options.min_area,
                                     options.max_det)  # fmt: skip
        summary.provider = detector.provider
        batch = batch_size(options, plan, detector)
        summary.mode = plan.describe() + (f", batches of up to {batch}" if batch > 1 else "")
        log.debug("Runner: %s", summary.mode)
        live = LiveStats(source.name, detector.provider)
        stack.callback(live.finish)
        encode = replace(options.encode, threads=plan.encode)
        counter = make_counter(options)
        if annotators is None:  # before any output exists: an unknown --blur class stops here
            annotators = run_annotators(options, detector.labels, tracker, counter)
        sinks = make_sinks(replace(options, encode=encode), source, detector.labels, stack, live,
                           counter.record if counter else None)  # fmt: skip
        if progress is not None:
            progress.start(expected_frames(source.info, options))
            stack.callback(progress.stop)
        emitter = Emitter(annotators, sinks, summary, source, options.fps_every,
                          options.max_frames, progress, started, live,
                          detector.labels, tracker, counter)  # fmt: skip
        every = options.detect_every
        if every is None and not source.info.live:
            log.info("--detect-every auto paces detection to a live source's frame rate; "
                     "a file is read as fast as it goes, so every frame is detected")  # fmt: skip
            every = 1
        try:
            if plan.workers:
                run_concurrent(source, detector, emitter, plan.workers, batch=batch,
                               every=every or 1)  # fmt: skip
            else:
                interval = 1 / float(source.info.fps) if source.info.fps else 0.0
                run_sequential(source, detector, emitter, DetectEvery(every, interval))
        except StopRequested as e:
            summary.stopped = str(e)
        except KeyboardInterrupt:
            summary.stopped = "SIGINT"
        except Interrupted as e:
            summary.stopped = e.name
        finally:
            summary.tracks = tracker.confirmed if tracker else None
            summary.counts = counter.as_json() if counter else None
    summary.wall_s = time.perf_counter() - started
    return summary


def make_counter(options: RunOptions) -> Counter | None:
    if not options.lines and not options.zones:
        return None
    from annotate.analytics.counting import Counter

    return Counter(parse_shapes(options.lines, "line"), parse_shapes(options.zones, "zone"),
                   options.anchor, options.line_frames)  # fmt: skip


def run_annotators(
    options: RunOptions,
    labels: Sequence[str],
    tracker: Tracker | None,
    counter: Counter | None,
) -> list[Annotator]:
    """Blur first (nothing drawn is hidden by it), then the boxes, then lines and zones on
    top, so their counts are never covered by a label."""
    annotators: list[Annotator] = []
    if options.blur is not None:
        ids = class_ids(labels, options.blur, "--blur")
        annotators.append(BlurAnnotator(ids, options.blur_style, options.blur_shape,
                                        tracker.lost_boxes if tracker else None))  # fmt: skip
    if options.boxes:
        annotators += default_annotators(labels, options.trails)
    if counter is not None:
        annotators.append(CountAnnotator(counter))
    return annotators


def make_tracker(options: RunOptions) -> Tracker | None:
    if not options.track:
        return None
    from annotate.tracking import Tracker, TrackerSettings

    return Tracker(TrackerSettings(high=options.conf, low=min(options.conf, TrackerSettings.low),
                                   buffer_s=options.track_buffer))  # fmt: skip


def batch_size(options: RunOptions, plan: ThreadPlan, detector: Detector) -> int:
    """``--batch`` if this run and model can take it; otherwise say why and use 1.

    Measured on CPU (``scripts/batching.py``): with one intra-op thread, as each worker has on
    2 cores, batches bring nothing, so the default stays 1; with two, a batch of 4 gave 1.26×.
    They are for GPUs and many-core machines.
    """
    if options.batch == 1:
        return 1
    if not plan.workers:
        log.info("--batch %d ignored: batches are for video files in the concurrent runner; "
                 "this run takes one frame at a time", options.batch)  # fmt: skip
        return 1
    batch, why = detector.batch_limit(options.batch)
    if batch < options.batch:
        log.info("--batch %d ignored: %s; one frame per inference", options.batch, why)
    return batch


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadPlan:
    """Who gets the cores: inference workers, and threads for ONNX Runtime, decoder, encoder.

    ``workers`` threads share one session (ONNX Runtime's ``run`` is thread-safe; a second
    session would only hold a second copy of the weights and arena, ~14 MB); 0 means the
    sequential loop. ``None``/0 thread counts leave the choice to the library.
    """

    workers: int
    intra_op: int | None
    decode: int
    encode: int
    opencv: int | None = None  # OpenCV's own threads for resize/convert/draw calls

    def describe(self) -> str:
        if not self.workers:
            return "sequential"
        return (f"concurrent: {self.workers} inference worker{'s' * (self.workers > 1)} × "
                f"{self.intra_op} ONNX Runtime thread{'s' * (self.intra_op != 1)}, decoder "
                f"{self.decode or 'auto'} thread{'s' * (self.decode != 1)}, encoder "
                f"{self.encode or 'auto'} thread{'s' * (self.encode != 1)}, OpenCV "
                f"{self.opencv or 'auto'} thread{'s' * (self.opencv != 1)}")  # fmt: skip


def spinning_for(plan: ThreadPlan, live: bool, recording: bool = False) -> bool:
    """Whether ONNX Runtime's idle threads spin, by mode (``scripts/spinning.py``, README).

    Live sources are latency-bound: a frame's age when drawn is about one inference, and
    spinning threads start the next one sooner (on 2 cores, a 30 FPS 720p camera: median age
    14.6 against 17.2 ms, p90 19.6 against 24.8 ms). While recording, x264 needs those cores:
    spinning lowered the age only a little (21.2 against 22.1 ms) and dropped more frames
    (9 against 6 of 300), and a recording should lose none, so it is off. Files are
    throughput-bound: the sequential loop ran 0.87-0.94× as fast with spinning, and the
    concurrent runner's workers sleep for the same reason.
    """
    return live and not recording and not plan.workers


def plan_threads(options: RunOptions, cores: int) -> ThreadPlan:
    """The thread budget for this run; explicit options always win.

    Measured on 2 cores at 1080p (``scripts/throughput.py``):
    - one core: the concurrent runner is ~30 % slower than the plain loop (threads only add
      switching), so it runs sequentially with each library's own defaults;
    - two inference workers of one intra-op thread each beat one of two threads;
    - the decoder already runs on its own thread, so FFmpeg's frame threads only add memory
      (~20 MB at 1080p) and compete with inference: one decoder thread (H.264 1080p decodes
      at ~190 FPS on one core, far above what inference allows);
    - x264 gets one thread per core instead of its default 1.5 per core;
    - OpenCV's calls (resize, colour conversion) run on their calling thread: the stages are
      already parallel, and OpenCV's own pool only added switching (48.0 against 45.6 FPS).
    With more cores (not measured here), the workers split what the decoder leaves.
    Live and still sources switch to the sequential loop once opened (see :func:`run`).
    """
    session, encode = options.session, options.encode
    if options.sequential or (cores == 1 and options.workers is None):
        return ThreadPlan(0, session.threads, options.decode_threads, encode.threads)
    workers = options.workers or 2
    intra_op = session.threads or max(1, (cores - 1) // workers)
    return ThreadPlan(workers, intra_op, options.decode_threads or 1, encode.threads or cores, 1)
