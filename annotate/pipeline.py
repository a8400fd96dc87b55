"""sources → detector → annotators → sinks, with one ExitStack that closes everything."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from annotate.annotators import Annotator, default_annotators
from annotate.detector import Detector
from annotate.errors import Interrupted, OutputPathError, StopRequested, UsageError
from annotate.providers import Resolution
from annotate.sinks import Sink
from annotate.sources import Source, input_paths, is_image, open_source
from annotate.stats import RollingFps

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
    threads: int | None = None


@dataclass
class RunSummary:
    frames: int = 0
    wall_s: float = 0.0
    inference_s: float = 0.0
    provider: str = ""
    outputs: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the run ended early: "window closed", "SIGINT", ...
    first_frame_s: float | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


def check_options(options: RunOptions) -> None:
    """Refuse bad combinations before opening anything, so nothing is half-written."""
    if options.max_frames is not None and options.max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {options.max_frames}")
    if options.fps_every < 1:
        raise UsageError(f"--fps-every must be at least 1, got {options.fps_every}")
    inputs = [p.resolve() for p in input_paths(options.source) if p.exists()]
    outputs = [Path(p) for p in (options.output, options.json_path) if p and str(p) != "-"]
    for out in outputs:
        if out.resolve() in inputs:
            raise OutputPathError(f"output {out} is the input; choose another file name")
        parent = out.resolve().parent
        if not parent.is_dir():
            raise OutputPathError(f"cannot write {out}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise OutputPathError(f"cannot write {out}: directory {parent} is not writable")
        if out.is_dir() and out != options.output:
            raise OutputPathError(f"cannot write {out}: it is a directory")
    out = options.output
    if out is not None and out.suffix and not is_image(out) and not out.is_dir():
        from annotate.sinks.video import check_video_path

        check_video_path(out)
    json_path = options.json_path
    if (
        out is not None
        and json_path not in (None, "-")
        and out.resolve() == Path(json_path).resolve()
    ):
        raise OutputPathError("-o and --json name the same file; choose two names")


def make_sinks(
    options: RunOptions, source: Source, labels: Sequence[str], stack: ExitStack
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

            sinks.append(stack.enter_context(VideoSink(out, source.info)))
    if options.json_path is not None:
        from annotate.sinks.jsonl import JsonLinesSink

        sinks.append(stack.enter_context(JsonLinesSink(options.json_path, labels)))
    if options.show:
        from annotate.sinks.window import WindowSink

        sinks.append(stack.enter_context(WindowSink(f"annotate - {source.name}")))
    return sinks


def run(options: RunOptions, annotators: Sequence[Annotator] | None = None) -> RunSummary:
    """Build the pipeline from ``options`` and run it to the end of the source.

    Ctrl-C, SIGTERM (as :class:`Interrupted`) or a closed window end the run early; every
    output is finalised either way and the summary says why it stopped.
    """
    check_options(options)
    started = time.perf_counter()
    summary = RunSummary(outputs=[str(p) for p in (options.output, options.json_path) if p])
    with ExitStack() as stack:
        source = stack.enter_context(open_source(options.source))
        detector = Detector.load(
            options.model, options.resolution, options.conf, options.iou, options.threads
        )
        summary.provider = detector.provider
        sinks = make_sinks(options, source, detector.labels, stack)
        if annotators is None:
            annotators = default_annotators(detector.labels)
        try:
            _loop(source, detector, annotators, sinks, options, summary, started)
        except StopRequested as e:
            summary.stopped = str(e)
        except KeyboardInterrupt:
            summary.stopped = "SIGINT"
        except Interrupted as e:
            summary.stopped = e.name
    summary.wall_s = time.perf_counter() - started
    return summary


def _loop(
    source: Source,
    detector: Detector,
    annotators: Sequence[Annotator],
    sinks: Sequence[Sink],
    options: RunOptions,
    summary: RunSummary,
    started: float,
) -> None:
    """The sequential loop: read → detect → draw (in place) → write, one frame at a time."""
    fps = RollingFps(options.fps_every)
    for frame in source:
        detections = detector(frame.image)
        image = frame.image
        for annotator in annotators:
            image = annotator.annotate(image, detections)
        for sink in sinks:
            sink.write(frame, image, detections)
        now = time.perf_counter()
        if summary.frames == 0:
            summary.first_frame_s = now - started
            log.debug("First annotated frame after %.2f s", summary.first_frame_s)
        summary.frames += 1
        summary.inference_s += detector.times.inference
        line = fps.update(now, detector.times.inference, len(detections))
        if line:
            log.info(line)
        if options.max_frames is not None and summary.frames >= options.max_frames:
            break
