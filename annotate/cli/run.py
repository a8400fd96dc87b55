"""``annotate run``: one source through the pipeline."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from annotate import defaults
from annotate.cli import console
from annotate.cli import options as o
from annotate.cli.app import app
from annotate.config import Config
from annotate.errors import UsageError

if TYPE_CHECKING:
    from annotate.pipeline import RunSummary

log = logging.getLogger("annotate")


@app.command()
def run(
    ctx: typer.Context,
    source_arg: Annotated[
        str | None,
        typer.Argument(
            metavar="SOURCE",
            help="Video file, URL, camera (camera, camera:N or N), image, image directory or glob.",
            show_default=False,
        ),
    ] = None,
    source: o.Source = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            show_default=False,
            help="Annotated H.264 video (.mp4, .mkv, .mov); for images, a directory.",
        ),
    ] = None,
    json_path: Annotated[
        str | None,
        typer.Option(
            "--json",
            show_default=False,
            help="Detections as JSON Lines, one record per frame ('-' for stdout).",
        ),
    ] = None,
    model: o.Model = None,
    provider: o.Provider = None,
    conf: o.Conf = None,
    iou: o.Iou = None,
    show: Annotated[
        bool | None,
        typer.Option(
            "--show/--no-show",
            show_default=False,
            help="Show a window [default: on for cameras when a display exists].",
        ),
    ] = None,
    max_frames: Annotated[
        int | None, typer.Option(help="Stop after this many frames.", show_default=False)
    ] = None,
    fps_every: Annotated[
        int | None,
        typer.Option(
            help=f"Print the rolling FPS line every N frames [default {defaults.FPS_EVERY}].",
            show_default=False,
        ),
    ] = None,
    threads: o.Threads = None,
    codec: o.Codec = defaults.CODEC,
    crf: o.Crf = None,
    preset: o.Preset = None,
    audio: o.Audio = True,
    start: Annotated[
        str | None,
        typer.Option(help="Start at this time: seconds or [HH:]MM:SS[.ms].", show_default=False),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(help="Process this long (seconds or [HH:]MM:SS).", show_default=False),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Stop at this time (seconds or [HH:]MM:SS).", show_default=False),
    ] = None,
    reconnect: Annotated[
        int, typer.Option(help="Times to reopen a dropped stream, waiting longer each time.")
    ] = defaults.RECONNECT,
    family: o.Family = "auto",
    canvas: o.Canvas = "auto",
    labels: o.Labels = None,
    classes: o.Classes = None,
    min_area: o.MinArea = 0,
    max_det: o.MaxDet = defaults.MAX_DET,
    track: o.Track = False,
    track_buffer: o.TrackBuffer = defaults.TRACK_BUFFER_S,
    trails: o.Trails = 0,
    mot: o.Mot = None,
    detect_every: o.DetectEvery = "1",
    line: o.Line = None,
    zone: o.Zone = None,
    anchor: o.Anchor = defaults.ANCHOR,
    line_frames: o.LineFrames = defaults.LINE_FRAMES,
    blur: o.Blur = None,
    blur_style: o.BlurStyle = defaults.BLUR_STYLE,
    blur_shape: o.BlurShape = defaults.BLUR_SHAPE,
    accept_blur_gaps: o.AcceptBlurGaps = False,
    boxes: o.Boxes = True,
    serve: Annotated[
        str | None,
        typer.Option(
            help="Web preview at [HOST:]PORT (host 127.0.0.1 unless given), e.g. 8000.",
            show_default=False,
        ),
    ] = None,
    serve_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Another name the web preview answers to (a reverse proxy's, say); repeatable.",
            show_default=False,
        ),
    ] = None,
    sequential: o.Sequential = False,
    workers: o.Workers = None,
    batch: o.Batch = 1,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
) -> None:
    """Detect objects in SOURCE, draw them, and write video, images and/or JSON Lines."""
    from annotate.pipeline import run as run_pipeline
    from annotate.sources import camera_index, check_exists

    console.setup_logging(quiet, verbose)
    if source_arg and source and source_arg != source:
        raise UsageError("give the source once, either as SOURCE or as --source")
    spec = source_arg or source
    if not spec:
        raise UsageError("no source given; try 'annotate run video.mp4' or "
                         "'annotate run --source camera'")  # fmt: skip
    check_exists(spec)
    options = o.run_options(spec, ctx.params, Config.load())
    o.check_needed(ctx, options)
    options.validate()
    wants_window = show if show is not None else camera_index(spec) is not None
    if wants_window:
        from annotate.sinks.window import display_problem

        problem = display_problem()
        if problem:
            log.info("Not showing a window: %s", problem)
        options.show = problem is None
    bar = console.FrameProgressBar() if not quiet and console.stderr_console().is_terminal else None
    summary = run_pipeline(options, progress=bar, download=console.download)
    report(summary, spec, quiet)


def report(summary: RunSummary, spec: str, quiet: bool) -> None:
    """The closing lines; a signal or an empty source becomes the exit code."""
    if summary.frames:
        detected = summary.detected or 1
        extra = "" if summary.detected == summary.frames else f", {summary.detected} detected"
        if summary.tracks is not None:
            extra += f", {summary.tracks} track{'s' * (summary.tracks != 1)}"
        log.info(
            "Done: %d frames in %.1f s (%.1f FPS mean, inference %.1f ms mean) on %s%s",
            summary.frames, summary.wall_s, summary.fps,
            1000 * summary.inference_s / detected, summary.provider, extra,
        )  # fmt: skip
    else:
        log.warning("no frames were read from %s", spec)
    if summary.counts and not quiet:
        console.print_counts(summary.counts)
    if summary.outputs:
        log.info("Wrote %s", ", ".join(summary.outputs))
    signalled = summary.stopped in ("SIGINT", "SIGTERM", "SIGHUP")
    if summary.stopped and not signalled:
        log.info("Stopped early: %s", summary.stopped)
    if signalled:
        log.warning("stopped by %s; outputs hold every frame processed", summary.stopped)
        raise typer.Exit(128 + getattr(signal, str(summary.stopped)))
    if summary.frames == 0:
        raise typer.Exit(1)
