"""The ``annotate`` command: parses options, builds the pipeline, maps errors to exit codes."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from annotate import __version__
from annotate.config import Config
from annotate.errors import AnnotateError, Interrupted, ModelNotFoundError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from annotate.bench import BenchReport
    from annotate.models import KnownModel

app = typer.Typer(
    name="annotate",
    help="Run an object detector over camera, video or image frames and draw what it finds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
log = logging.getLogger("annotate")

EXIT_INTERRUPTED = 130


_console: Console | None = None


def _stderr_console() -> Console:
    """One stderr console for logs and the progress bar, so lines print above the bar."""
    global _console
    from rich.console import Console

    # While the bar is live, Rich stands a proxy in for sys.stderr; the console behind the bar
    # must still be the one that prints, or lines land in the middle of the bar.
    stderr = getattr(sys.stderr, "rich_proxied_file", sys.stderr)
    if _console is None or _console.file is not stderr:
        _console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _console


class RichProgress:
    """The progress bar for terminals: frames, FPS and ETA, or a counter if the length is
    unknown. Not used when stderr is not a terminal, so CI logs stay clean."""

    def start(self, total: int | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,  # fmt: skip
            TimeRemainingColumn,
        )

        counter = [BarColumn(), MofNCompleteColumn()] if total else [TextColumn("{task.completed}")]
        eta = [TextColumn("ETA"), TimeRemainingColumn()] if total else []
        self._bar = Progress(
            TextColumn("frames"), *counter, TextColumn("{task.fields[fps]} FPS"),
            TimeElapsedColumn(), *eta, console=_stderr_console(), transient=True,
        )  # fmt: skip
        self._task = self._bar.add_task("annotating", total=total, fps="-")
        self._started = time.perf_counter()
        self._bar.start()

    def update(self, frames: int) -> None:
        fps = frames / max(time.perf_counter() - self._started, 1e-9)
        self._bar.update(self._task, completed=frames, fps=f"{fps:.1f}")

    def stop(self) -> None:
        self._bar.stop()


def download(entry: KnownModel) -> Path:
    """Fetch a known model on first use, with a progress bar on terminals."""
    from annotate.models.store import pull

    console = _stderr_console()
    if not console.is_terminal:
        return pull(entry)
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,  # fmt: skip
    )

    with Progress(TextColumn(entry.name), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=True) as bar:  # fmt: skip
        task = bar.add_task("download", total=entry.size)
        return pull(entry, lambda done, total: bar.update(task, completed=done, total=total))


def parse_time(text: str, option: str) -> float:
    """``90``, ``1.5``, ``01:30`` or ``1:02:03.5`` → seconds."""
    try:
        parts = [float(p) for p in text.strip().split(":")]
    except ValueError:
        raise UsageError(f"{option} takes seconds or [HH:]MM:SS, got '{text}'") from None
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise UsageError(f"{option} takes seconds or [HH:]MM:SS, got '{text}'")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def time_span(
    start: str | None, duration: str | None, end: str | None
) -> tuple[float | None, float | None]:
    if duration is not None and end is not None:
        raise UsageError("give --duration or --end, not both")
    first = parse_time(start, "--start") if start is not None else None
    if duration is not None:
        length = parse_time(duration, "--duration")
        if length <= 0:
            raise UsageError(f"--duration must be positive, got '{duration}'")
        return first, (first or 0.0) + length
    return first, parse_time(end, "--end") if end is not None else None


def printable(text: str) -> str:
    """Control characters (a file name can hold ESC sequences) shown as escapes, never sent to
    the terminal; Rich itself passes ESC through."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConsoleHandler(logging.Handler):
    """Diagnostics to stderr: plain lines, warnings marked. Text goes through ``rich.Text`` so
    control characters in file names cannot reach the terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        console = _stderr_console()
        message = printable(record.getMessage())
        if record.levelno >= logging.ERROR:
            console.print(Text("Error: ", style="bold red") + Text(message))
        elif record.levelno >= logging.WARNING:
            console.print(Text("Warning: ", style="yellow") + Text(message))
        else:
            console.print(Text(message))


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    log.handlers[:] = [ConsoleHandler()]
    log.setLevel(level)
    log.propagate = False


def fail(message: str, code: int) -> NoReturn:
    from rich.text import Text

    _stderr_console().print(Text("Error: ", style="bold red") + Text(printable(message)))
    raise typer.Exit(code)


def print_counts(counts: dict) -> None:
    """The lines' and zones' final counts as a table on stderr."""
    from rich.table import Table

    table = Table(title="Counts", title_justify="left")
    for column in ("line / zone", "in / now", "out / entered", "by class"):
        table.add_column(column)
    for name, c in counts["lines"].items():
        by_class = ", ".join(f"{k} {v['in']} in, {v['out']} out" for k, v in c["by_class"].items())
        table.add_row(printable(name), str(c["in"]), str(c["out"]), printable(by_class) or "–")
    for name, c in counts["zones"].items():
        by_class = ", ".join(f"{k} {v}" for k, v in c["by_class"]["entered"].items())
        table.add_row(printable(name), f"{c['now']} now", f"{c['entered']} entered",
                      printable(by_class) or "–")  # fmt: skip
    _stderr_console().print(table)


def blur_default(argv: list[str]) -> list[str]:
    """``--blur`` with no classes after it (last, or before another option) means people."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--blur" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append("person")
    return out


def parse_detect_every(value: str) -> int | None:
    """``N`` (a whole number) or ``auto`` (``None``)."""
    if value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--detect-every takes a whole number or 'auto', got {value!r}") from None


def _terminated(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    raise Interrupted(name, 128 + signum)


def _version(value: bool) -> None:
    if value:
        print(f"annotate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Run an object detector over camera, video or image frames and draw what it finds."""


@app.command()
def run(
    source_arg: Annotated[
        str | None,
        typer.Argument(
            metavar="SOURCE",
            help="Video file, URL, camera (camera, camera:N or N), image, image directory or glob.",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", "-s", help="Same as SOURCE.", show_default=False)
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Annotated H.264 video (.mp4, .mkv, .mov); for images, a directory.",
            show_default=False,
        ),
    ] = None,
    json_path: Annotated[
        str | None,
        typer.Option(
            "--json",
            help="Detections as JSON Lines, one record per frame ('-' for stdout).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model path or name [env ANNOTATE_MODEL; default yolox-nano].",
            show_default=False,
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            "-p",
            help="Execution provider: auto, cpu, coreml, cuda, tensorrt, openvino, directml "
            "or a full ONNX Runtime name [env ANNOTATE_PROVIDER].",
            show_default=False,
        ),
    ] = None,
    conf: Annotated[
        float | None,
        typer.Option(help="Minimum score to keep a detection [default 0.3].", show_default=False),
    ] = None,
    iou: Annotated[
        float | None,
        typer.Option(
            help="IoU above which same-class boxes merge [default 0.45].", show_default=False
        ),
    ] = None,
    show: Annotated[
        bool | None,
        typer.Option(
            "--show/--no-show",
            help="Show a window [default: on for cameras when a display exists].",
            show_default=False,
        ),
    ] = None,
    max_frames: Annotated[
        int | None, typer.Option(help="Stop after this many frames.", show_default=False)
    ] = None,
    fps_every: Annotated[
        int | None,
        typer.Option(
            help="Print the rolling FPS line every N frames [default 30].", show_default=False
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="ONNX Runtime intra-op threads [default: ONNX Runtime's].", show_default=False
        ),
    ] = None,
    codec: Annotated[
        str, typer.Option(help="Video codec for -o: h264, hevc, vp9 or av1.")
    ] = "h264",
    crf: Annotated[
        int | None,
        typer.Option(
            help="Quality, lower is better [default: 23 h264, 28 hevc, 32 vp9].", show_default=False
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="x264/x265 speed preset, ultrafast … veryslow [default: veryfast].",
            show_default=False,
        ),
    ] = None,
    audio: Annotated[
        bool, typer.Option("--audio/--no-audio", help="Carry the input's audio tracks into -o.")
    ] = True,
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
    ] = 5,
    family: Annotated[
        str, typer.Option(help="Model family: auto, yolox, yolov5, yolov8 (also YOLO11).")
    ] = "auto",
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Class names, one per line [default: from the model, else COCO].",
            show_default=False,
        ),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(
            help="Only these classes, names or ids: --classes person,car.", show_default=False
        ),
    ] = None,
    min_area: Annotated[float, typer.Option(help="Drop boxes smaller than this (pixels²).")] = 0,
    max_det: Annotated[int, typer.Option(help="At most this many detections per frame.")] = 300,
    track: Annotated[
        bool,
        typer.Option(help="Give each object an identity that lasts across frames (ByteTrack)."),
    ] = False,
    track_buffer: Annotated[
        float,
        typer.Option(help="Seconds of video a lost track waits to be found again."),
    ] = 1.0,
    trails: Annotated[
        int, typer.Option(help="Draw each track's last N centre points (with --track).")
    ] = 0,
    mot: Annotated[
        Path | None,
        typer.Option(
            help="Write tracks as MOT Challenge text (frame,id,x,y,w,h,score,-1,-1,-1); "
            "implies --track.",
            show_default=False,
        ),
    ] = None,
    detect_every: Annotated[
        str,
        typer.Option(
            help="Detect every Nth frame and let the tracker predict the rest; 'auto' paces "
            "detection to a live source's frame rate. Implies --track.",
        ),
    ] = "1",
    line: Annotated[
        list[str] | None,
        typer.Option(
            help="Count tracks crossing [NAME=]x1,y1,x2,y2 (pixels, or all four as 0-1 "
            "fractions of the frame); repeatable; implies --track.",
            show_default=False,
        ),
    ] = None,
    zone: Annotated[
        list[str] | None,
        typer.Option(
            help="Count tracks inside the polygon [NAME=]x1,y1,x2,y2,x3,y3[,...]; repeatable; "
            "implies --track.",
            show_default=False,
        ),
    ] = None,
    anchor: Annotated[
        str, typer.Option(help="The point of a box that crosses lines: bottom or center.")
    ] = "bottom",
    line_frames: Annotated[
        int, typer.Option(help="Frames on the new side before a crossing or zone change counts.")
    ] = 2,
    blur: Annotated[
        str | None,
        typer.Option(
            help="Hide these classes (names or ids: --blur person,car; --blur alone, before "
            "another option or last: person); implies --track.",
            show_default=False,
        ),
    ] = None,
    blur_style: Annotated[
        str, typer.Option(help="How --blur hides: gaussian, pixelate or solid.")
    ] = "gaussian",
    blur_shape: Annotated[str, typer.Option(help="The hidden region: box or ellipse.")] = "box",
    boxes: Annotated[
        bool,
        typer.Option(
            "--boxes/--no-boxes",
            help="Draw boxes and labels (--no-boxes with --blur: a clean anonymised video).",
        ),
    ] = True,
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
    sequential: Annotated[
        bool,
        typer.Option(help="One frame at a time, no concurrent stages (for comparison)."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Inference threads for video files, sharing one session "
            "[default: from the core count].",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[
        int,
        typer.Option(
            help="Frames per inference call for video files, if the model takes a dynamic "
            "batch (for GPUs; no faster on CPU).",
        ),
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail.")] = False,
) -> None:
    """Detect objects in SOURCE, draw them, and write video, images and/or JSON Lines."""
    from annotate.detector import SessionSettings
    from annotate.models import DEFAULT_MODEL, find_model
    from annotate.pipeline import RunOptions
    from annotate.pipeline import run as run_pipeline
    from annotate.providers import resolve_here
    from annotate.sinks.video import EncodeOptions
    from annotate.sinks.window import display_problem
    from annotate.sources import camera_index, check_exists

    setup_logging(quiet, verbose)
    if source_arg and source and source_arg != source:
        fail("give the source once, either as SOURCE or as --source", 2)
    spec = source_arg or source
    if not spec:
        fail("no source given; try 'annotate run video.mp4' or 'annotate run --source camera'", 2)
    try:
        check_exists(spec)
        config = Config.load()
        model_setting = config.get("model", model, "--model", DEFAULT_MODEL)
        provider_setting = config.get("provider", provider, "--provider")
        options = RunOptions(
            source=spec,
            model=find_model(model_setting.value, model_setting.origin, download=download),
            resolution=resolve_here(provider_setting.value, provider_setting.origin),
            output=output,
            json_path=json_path,
            conf=config.get("conf", conf, "--conf", 0.3).value,
            iou=config.get("iou", iou, "--iou", 0.45).value,
            max_frames=max_frames,
            fps_every=config.get("fps_every", fps_every, "--fps-every", 30).value,
            session=SessionSettings(threads=threads),
            encode=EncodeOptions(codec.lower(), crf, preset, audio),
            reconnect=reconnect,
            sequential=sequential,
            workers=workers,
            batch=batch,
        )
        if serve is not None:
            from annotate.sinks.web import parse_address

            options.serve = parse_address(serve)
            options.serve_hosts = tuple(serve_host or ())
        options.family = None if family.lower() == "auto" else family.lower()
        options.labels = labels
        options.classes = [c for c in classes.split(",") if c.strip()] if classes else None
        options.min_area, options.max_det = min_area, max_det
        options.detect_every = parse_detect_every(detect_every)
        options.track_buffer, options.trails, options.mot = track_buffer, trails, mot
        options.lines, options.zones = list(line or []), list(zone or [])
        options.anchor, options.line_frames = anchor.lower(), line_frames
        options.blur = [c for c in blur.split(",") if c.strip()] if blur is not None else None
        options.blur_style, options.blur_shape = blur_style.lower(), blur_shape.lower()
        options.boxes = boxes
        implied = [flag for flag, on in (("--mot", mot is not None),
                   ("--detect-every", options.detect_every != 1), ("--line", bool(line)),
                   ("--zone", bool(zone)), ("--blur", blur is not None)) if on]  # fmt: skip
        if implied and not track:
            log.info("Tracking is on for %s", " and ".join(implied))
        options.track = track or bool(implied)
        options.start, options.end = time_span(start, duration, end)
        from annotate.detector import check_thresholds

        check_thresholds(options.conf, options.iou)
        options.session.check()
        wants_window = show if show is not None else camera_index(spec) is not None
        if wants_window:
            problem = display_problem()
            if problem:
                log.info("Not showing a window: %s", problem)
            options.show = problem is None
        bar = RichProgress() if not quiet and _stderr_console().is_terminal else None
        summary = run_pipeline(options, progress=bar)
    except AnnotateError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except Interrupted as e:
        fail(f"interrupted by {e.name}", e.exit_code)

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
        print_counts(summary.counts)
    if summary.outputs:
        log.info("Wrote %s", ", ".join(summary.outputs))
    if summary.stopped and summary.stopped not in ("SIGINT", "SIGTERM", "SIGHUP"):
        log.info("Stopped early: %s", summary.stopped)
    if summary.stopped in ("SIGINT", "SIGTERM", "SIGHUP"):
        log.warning("stopped by %s; outputs hold every frame processed", summary.stopped)
        signum = getattr(signal, summary.stopped)
        raise typer.Exit(128 + signum)
    if summary.frames == 0:
        raise typer.Exit(1)


@app.command()
def bench(
    providers: Annotated[
        str, typer.Option(help="Comma-separated providers to compare, or 'all'.")
    ] = "all",
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model path or name.", show_default=False)
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            "-s",
            show_default=False,
            help="Image or video to time on [default: a bundled photo]; a video also "
            "runs the whole pipeline.",
        ),
    ] = None,
    iterations: Annotated[int, typer.Option(help="Timed inference runs per provider.")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed runs first.")] = 5,
    frames: Annotated[int, typer.Option(help="Frames for the end-to-end run.")] = 100,
    threads: Annotated[
        int | None, typer.Option(help="ONNX Runtime intra-op threads.", show_default=False)
    ] = None,
    graph_opt: Annotated[
        str, typer.Option(help="Graph optimisation: disable, basic, extended, all.")
    ] = "all",
    coreml_format: Annotated[
        str, typer.Option(help="CoreML model format: MLProgram or NeuralNetwork.")
    ] = "MLProgram",
    coreml_units: Annotated[
        str, typer.Option(help="CoreML compute units: ALL, CPUAndNeuralEngine, CPUAndGPU, CPUOnly.")
    ] = "ALL",
    coreml_cache: Annotated[
        Path | None,
        typer.Option(
            help="Where CoreML keeps compiled models [default: user cache].", show_default=False
        ),
    ] = None,
    openvino_device: Annotated[
        str | None,
        typer.Option(
            help="OpenVINO device: CPU, GPU, NPU or AUTO:… [default: OpenVINO's].",
            show_default=False,
        ),
    ] = None,
    openvino_precision: Annotated[
        str | None,
        typer.Option(
            help="OpenVINO precision: FP32, FP16 or ACCURACY [default: the device's].",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail.")] = False,
) -> None:
    """Compare execution providers: inference alone and (with a video) end to end."""
    import json

    from annotate.bench import BenchConfig, run_bench
    from annotate.detector import SessionSettings
    from annotate.models import DEFAULT_MODEL, find_model

    setup_logging(quiet=not verbose, verbose=verbose)
    try:
        config = Config.load()
        model_setting = config.get("model", model, "--model", DEFAULT_MODEL)
        settings = SessionSettings(
            threads,
            graph_opt,
            coreml_format,
            coreml_units,
            coreml_cache,
            openvino_device,
            openvino_precision.upper() if openvino_precision else None,
        )
        bench_config = BenchConfig(
            model=find_model(model_setting.value, model_setting.origin, download=download),
            providers=[p for p in providers.split(",") if p.strip()],
            iterations=iterations, warmup=warmup, source=source, frames=frames,
            session=settings,
        )  # fmt: skip
        bench_config.check()
        if source is not None:
            from annotate.sources import input_paths

            if not any(p.exists() for p in input_paths(source)):
                raise UsageError(f"--source {source} does not exist")
        progress = None if json_out else (lambda text: _stderr_console().print(text))
        report = run_bench(bench_config, on_progress=progress)
    except AnnotateError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    if json_out:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_bench(report)


def print_bench(report: BenchReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    m = report.machine
    console.print(f"{m['cpu']} ({m['cores']} cores), {m['system']}, "
                  f"onnxruntime {m['onnxruntime']}")  # fmt: skip
    console.print(f"Model {report.model}; input {report.input['image']} "
                  f"{report.input['size'][0]}x{report.input['size'][1]}; "
                  f"{report.warmup} warm-up + {report.iterations} timed runs")  # fmt: skip
    console.print("Settings: " + ", ".join(f"{k}={v}" for k, v in report.settings.items()))
    for r in report.results:
        if r.status != "ran":
            console.print(f"[yellow]{r.provider}: skipped[/] — {r.reason}")
            continue
        table = Table(title=f"{r.provider}", title_justify="left")
        table.add_column("stage")
        columns = ("mean", "median", "p90", "min", "max")
        for col in columns:
            table.add_column(f"{col} ms", justify="right")
        rows = [(name, getattr(r, name)) for name in ("preprocess", "inference", "postprocess")]
        as_run = ""
        if r.pipeline_inference:
            rows.append(("inference as run", r.pipeline_inference))
            as_run = f" · as run: {r.pipeline_settings}"
        for name, st in rows:
            table.add_row(name, *(f"{getattr(st, c):.2f}" for c in columns))
        table.caption = (f"inference {r.fps:.1f} FPS with ONNX Runtime's defaults{as_run} · "
                         f"session start-up {r.startup_s:.2f} s · speed-up {r.speedup:.2f}× vs "
                         f"{report.baseline}")  # fmt: skip
        console.print(table)
        for label, e in (("end to end", r.end_to_end), ("sequential", r.sequential)):
            if e is None:
                continue
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in e.cpu_ms.items())
            console.print(f"  {label}: [bold]{e.fps:.1f} FPS[/] over {e.frames} frames as "
                          f"annotate run reports it ({e.loop_fps:.1f} FPS after the first frame, "
                          f"which took {e.first_frame_s:.2f} s); {e.mode}")  # fmt: skip
            console.print(f"    CPU time per frame, ms (stages overlap when concurrent): {cpu}")
    console.print(f"[bold]{report.recommendation}[/]")


@app.command()
def providers() -> None:
    """List the execution providers this ONNX Runtime build offers and what auto picks here."""
    from rich.console import Console
    from rich.table import Table

    from annotate.providers import PlatformInfo, available_providers, describe, resolve

    setup_logging()
    plat = PlatformInfo.current()
    available = available_providers()
    config = Config.load()
    try:
        setting = config.get("provider", None, "--provider")
        chosen = resolve(setting.value, setting.origin, plat, available)
    except AnnotateError as e:
        fail(str(e), e.exit_code)
    auto = resolve(None, None, plat, available)
    table = Table(title=f"Execution providers on {plat}")
    table.add_column("Provider")
    table.add_column("--provider")
    table.add_column("Here")
    for name, short, status in describe(plat, available):
        table.add_row(name, short, status)
    console = Console()
    console.print(table)
    console.print(f"auto: {' → '.join(auto.providers)} ({auto.reason})", highlight=False)
    for note in auto.notes:
        console.print(f"  {note}", highlight=False)
    if chosen.origin:
        console.print(
            f"annotate run will use {chosen.preferred} ({chosen.reason})", highlight=False
        )
    console.print(
        "Precedence: --provider > ANNOTATE_PROVIDER > annotate.toml > auto", highlight=False
    )


models_app = typer.Typer(help="Known models: list, download, locate, register.",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Known model names with size, licence, input size and whether they are here."""
    from rich.console import Console
    from rich.table import Table

    from annotate.models import local_path, registry

    setup_logging()
    try:
        known = registry()
    except AnnotateError as e:
        fail(str(e), e.exit_code)
    table = Table()
    for column in ("name", "family", "input", "size", "licence", "here"):
        table.add_column(column)
    for entry in known.values():
        path = local_path(entry)
        size = f"{entry.size / 1e6:.1f} MB" if entry.size else "?"
        here = str(path) if path else f"no (annotate models pull {entry.name})"
        table.add_row(entry.name, entry.family, str(entry.input or "auto"), size, entry.licence,
                      here)  # fmt: skip
    Console(highlight=False).print(table)


@models_app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="A known model name.")]) -> None:
    """Download a known model into the user cache, verified by sha256."""
    from annotate.models import registry

    setup_logging()
    try:
        entry = registry().get(name.lower())
        if entry is None:
            raise UsageError(f"unknown model '{name}'; see 'annotate models list'")
        print(download(entry))
    except AnnotateError as e:
        fail(str(e), e.exit_code)


@models_app.command("path")
def models_path(name: Annotated[str, typer.Argument(help="A known model name.")]) -> None:
    """Print where a known model is on disk (exit 1 if it is not there yet)."""
    from annotate.models import find_model

    setup_logging()
    try:
        print(find_model(name))
    except ModelNotFoundError as e:
        fail(str(e), 1)
    except AnnotateError as e:
        fail(str(e), e.exit_code)


@models_app.command("add")
def models_add(
    file: Annotated[Path, typer.Argument(help="An .onnx file on this machine.")],
    name: Annotated[
        str | None,
        typer.Option(help="Name to use it by [default: from the file name].", show_default=False),
    ] = None,
) -> None:
    """Register a local model file (for machines without internet)."""
    from annotate.models.store import add

    setup_logging()
    try:
        entry = add(file, name)
    except AnnotateError as e:
        fail(str(e), e.exit_code)
    print(f"{entry.name}: {entry.path or file}")


@models_app.command("quantize")
def models_quantize(
    name: Annotated[str, typer.Argument(help="A known model name or an .onnx path.")],
    int8: Annotated[bool, typer.Option("--int8", help="INT8, calibrated on real frames.")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="FP16 (for CoreML and GPUs).")] = False,
    calibration: Annotated[
        list[str] | None,
        typer.Option(
            help="Images or videos to calibrate INT8 on [default: the bundled photo].",
            show_default=False,
        ),
    ] = None,
    frames: Annotated[int, typer.Option(help="Calibration frames.")] = 64,
) -> None:
    """Make an INT8 or FP16 variant and register it as NAME-int8 / NAME-fp16."""
    from annotate.bench import default_image_path
    from annotate.models import cache_dir, find_model, registry
    from annotate.models.store import add
    from annotate.models.variants import convert_fp16, quantize_int8

    setup_logging()
    try:
        if int8 == fp16:
            raise UsageError("give exactly one of --int8 and --fp16")
        model = find_model(name, download=download)
        kind = "int8" if int8 else "fp16"
        base = registry().get(name.lower())
        stem = base.name if base else model.stem
        cache_dir().mkdir(parents=True, exist_ok=True)
        target = cache_dir() / f"{model.stem}.{kind}.onnx"
        if int8:
            sources = calibration or [str(default_image_path())]
            quantize_int8(model, target, sources, frames)
        else:
            convert_fp16(model, target)
        entry = add(target, f"{stem}-{kind}")
    except AnnotateError as e:
        fail(str(e), e.exit_code)
    print(f"{entry.name}: {target}")


def _usage_error_class() -> type[Exception]:
    """Click's UsageError, whether Typer uses Click or its own vendored copy."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: usage errors become one ``Error:`` line and exit 2."""
    if threading.current_thread() is threading.main_thread():
        # From the first moment, so a SIGTERM during start-up ends with 143 like one mid-run.
        signal.signal(signal.SIGTERM, _terminated)
    command = typer.main.get_command(app)
    usage_error = _usage_error_class()
    argv = blur_default(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=argv, prog_name="annotate", standalone_mode=False)
    except usage_error as e:
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help(), file=sys.stderr)
            return 2
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        print(printable(f"Error: {e.format_message()}{hint}"), file=sys.stderr)  # type: ignore[attr-defined]
        return 2
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    except Interrupted as e:
        print(f"Error: interrupted by {e.name}", file=sys.stderr)
        return e.exit_code
    return result if isinstance(result, int) else 0
