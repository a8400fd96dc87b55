"""The options ``run``, ``bench`` and ``batch`` share, declared once, and the one function that
turns parsed flags, environment and config into complete :class:`RunOptions`.

Precedence is flag > environment > ``annotate.toml`` > default (:meth:`Config.get`), for the
settings a config file may hold; every other flag's default is in :mod:`annotate.defaults`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from annotate import defaults
from annotate.config import Config
from annotate.errors import UsageError

if TYPE_CHECKING:
    from annotate.pipeline import RunOptions

log = logging.getLogger("annotate")

Model = Annotated[
    str | None,
    typer.Option("--model", "-m", show_default=False,
                 help=f"Model path or name [env ANNOTATE_MODEL; default {defaults.MODEL}]."),
]  # fmt: skip
Provider = Annotated[
    str | None,
    typer.Option("--provider", "-p", show_default=False,
                 help="Execution provider: auto, cpu, coreml, cuda, tensorrt, openvino, directml "
                      "or a full ONNX Runtime name [env ANNOTATE_PROVIDER]."),
]  # fmt: skip
Source = Annotated[
    str | None, typer.Option("--source", "-s", help="Same as SOURCE.", show_default=False)
]
Threads = Annotated[
    int | None,
    typer.Option(help="ONNX Runtime intra-op threads [default: from the thread plan].",
                 show_default=False),
]  # fmt: skip
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="More detail.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]

# What to detect
Conf = Annotated[
    float | None,
    typer.Option(help=f"Minimum score to keep a detection [default {defaults.CONF}].",
                 show_default=False),
]  # fmt: skip
Iou = Annotated[
    float | None,
    typer.Option(help=f"IoU above which same-class boxes merge [default {defaults.IOU}].",
                 show_default=False),
]  # fmt: skip
Family = Annotated[
    str, typer.Option(help="Model family: auto, yolox, yolov5, yolov8 (also YOLO11).")
]
Canvas = Annotated[
    str,
    typer.Option(help="Model input: 'fit' sizes it to the frame's shape (faster; 416x256 for "
                 "16:9), 'square' is the model's own; auto: fit for video, square for images."),
]  # fmt: skip
Labels = Annotated[
    Path | None,
    typer.Option(help="Class names, one per line [default: from the model, else COCO].",
                 show_default=False),
]  # fmt: skip
Classes = Annotated[
    str | None,
    typer.Option(help="Only these classes, names or ids: --classes person,car.",
                 show_default=False),
]  # fmt: skip
MinArea = Annotated[float, typer.Option(help="Drop boxes smaller than this (pixels²).")]
MaxDet = Annotated[int, typer.Option(help="At most this many detections per frame.")]

# Tracking, counting, privacy
Track = Annotated[
    bool, typer.Option(help="Give each object an identity that lasts across frames (ByteTrack).")
]
TrackBuffer = Annotated[
    float, typer.Option(help="Seconds of video a lost track waits to be found again.")
]
Trails = Annotated[int, typer.Option(help="Draw each track's last N centre points (with --track).")]
Mot = Annotated[
    Path | None,
    typer.Option(help="Write tracks as MOT Challenge text (frame,id,x,y,w,h,score,-1,-1,-1); "
                      "implies --track.", show_default=False),
]  # fmt: skip
DetectEvery = Annotated[
    str,
    typer.Option(help="Detect every Nth frame and let the tracker predict the rest; 'auto' "
                      "paces detection to a live source's frame rate. Implies --track."),
]  # fmt: skip
Line = Annotated[
    list[str] | None,
    typer.Option(help="Count tracks crossing [NAME=]x1,y1,x2,y2 (pixels, or all four as 0-1 "
                      "fractions of the frame); repeatable; implies --track.", show_default=False),
]  # fmt: skip
Zone = Annotated[
    list[str] | None,
    typer.Option(help="Count tracks inside the polygon [NAME=]x1,y1,x2,y2,x3,y3[,...]; "
                      "repeatable; implies --track.", show_default=False),
]  # fmt: skip
Anchor = Annotated[
    str, typer.Option(help="The point of a box that crosses lines: bottom or center.")
]
LineFrames = Annotated[
    int, typer.Option(help="Frames on the new side before a crossing or zone change counts.")
]
Blur = Annotated[
    str | None,
    typer.Option(help="Hide these classes (names or ids: --blur person,car; --blur alone, "
                      f"before another option or last: {defaults.BLUR_CLASSES}); implies --track.",
                 show_default=False),
]  # fmt: skip
BlurStyle = Annotated[str, typer.Option(help="How --blur hides: gaussian, pixelate or solid.")]
BlurShape = Annotated[str, typer.Option(help="The hidden region: box or ellipse.")]
AcceptBlurGaps = Annotated[
    bool,
    typer.Option(help="With --blur and --detect-every N: accept that whatever appears between "
                      "two detections shows unhidden, for up to N-1 frames.")
]  # fmt: skip
Boxes = Annotated[
    bool,
    typer.Option("--boxes/--no-boxes",
                 help="Draw boxes and labels (--no-boxes with --blur: a clean anonymised video)."),
]  # fmt: skip

# Encoding
Codec = Annotated[str, typer.Option(help="Video codec for -o: h264, hevc, vp9 or av1.")]
Crf = Annotated[
    int | None,
    typer.Option(help="Quality, lower is better [default: 23 h264, 28 hevc, 32 vp9].",
                 show_default=False),
]  # fmt: skip
Preset = Annotated[
    str | None,
    typer.Option(help="x264/x265 speed preset, ultrafast … veryslow [default: veryfast].",
                 show_default=False),
]  # fmt: skip
Audio = Annotated[
    bool, typer.Option("--audio/--no-audio", help="Carry the input's audio tracks into -o.")
]
# Speed
Workers = Annotated[
    int | None,
    typer.Option(help="Inference threads for video files, sharing one session "
                      "[default: from the core count].", show_default=False),
]  # fmt: skip
Batch = Annotated[
    int,
    typer.Option(help="Frames per inference call for video files, if the model takes a dynamic "
                      "batch (for GPUs; no faster on CPU)."),
]  # fmt: skip
Sequential = Annotated[
    bool, typer.Option(help="One frame at a time, no concurrent stages (for comparison).")
]


def _path(value: str | Path | None) -> Path | None:
    """A path option as a Path: older Typer leaves ``ctx.params`` as Click parsed it (text)."""
    return None if value is None else Path(value)


def _names(text: str | None) -> list[str] | None:
    return [c for c in text.split(",") if c.strip()] if text is not None else None


def run_options(source: str, params: Mapping[str, Any], config: Config) -> RunOptions:
    """Complete options from the parsed flags (``ctx.params``), environment and config.

    Parses only; :meth:`RunOptions.validate` checks the values before anything runs.
    """
    from annotate.detector import SessionSettings
    from annotate.pipeline import RunOptions
    from annotate.pipeline.options import parse_detect_every, time_span
    from annotate.sinks.video import EncodeOptions

    p = dict(params)
    model = config.get("model", p.get("model"), "--model", defaults.MODEL)
    provider = config.get("provider", p.get("provider"), "--provider")
    serve = None
    if p.get("serve") is not None:
        from annotate.sinks.web import parse_address

        serve = parse_address(p["serve"])
    start, end = time_span(p.get("start"), p.get("duration"), p.get("end"))
    family = (p.get("family") or "auto").lower()
    options = RunOptions(
        source=source,
        model=model.value,
        model_origin=model.origin,
        provider=provider.value,
        provider_origin=provider.origin,
        output=_path(p.get("output")),
        json_path=p.get("json_path"),
        conf=config.get("conf", p.get("conf"), "--conf", defaults.CONF).value,
        iou=config.get("iou", p.get("iou"), "--iou", defaults.IOU).value,
        max_frames=p.get("max_frames"),
        fps_every=config.get(
            "fps_every", p.get("fps_every"), "--fps-every", defaults.FPS_EVERY
        ).value,
        session=SessionSettings(threads=p.get("threads")),
        encode=EncodeOptions(
            p.get("codec", defaults.CODEC).lower(),
            p.get("crf"),
            p.get("preset"),
            p.get("audio", True),
        ),
        start=start,
        end=end,
        reconnect=p.get("reconnect", defaults.RECONNECT),
        sequential=p.get("sequential", False),
        workers=p.get("workers"),
        batch=p.get("batch", 1),
        serve=serve,
        serve_hosts=tuple(p.get("serve_host") or ()),
        family=None if family == "auto" else family,
        canvas=(p.get("canvas") or "auto").lower(),
        labels=_path(p.get("labels")),
        classes=_names(p.get("classes")) or None,
        min_area=p.get("min_area", 0.0),
        max_det=p.get("max_det", defaults.MAX_DET),
        track=bool(p.get("track")),
        track_buffer=p.get("track_buffer", defaults.TRACK_BUFFER_S),
        trails=p.get("trails", 0),
        mot=_path(p.get("mot")),
        detect_every=parse_detect_every(str(p.get("detect_every", "1"))),
        lines=list(p.get("line") or []),
        zones=list(p.get("zone") or []),
        anchor=p.get("anchor", defaults.ANCHOR).lower(),
        line_frames=p.get("line_frames", defaults.LINE_FRAMES),
        blur=_names(p.get("blur")),
        blur_style=p.get("blur_style", defaults.BLUR_STYLE).lower(),
        blur_shape=p.get("blur_shape", defaults.BLUR_SHAPE).lower(),
        boxes=p.get("boxes", True),
        accept_blur_gaps=bool(p.get("accept_blur_gaps")),
    )
    implied = options.tracker_flags
    if implied and not options.track:
        log.info("Tracking is on for %s", " and ".join(implied))
        options = replace(options, track=True)
    return options


#: Options that only change what another option does: (parameter, its flag, what it does,
#: the option(s) it needs, whether the options have them).
_NEEDS: tuple[tuple[str, str, str, str, Callable[[RunOptions], bool]], ...] = (
    ("blur_style", "--blur-style", "sets how --blur hides", "--blur", lambda o: o.blur is not None),
    ("blur_shape", "--blur-shape", "sets how --blur hides", "--blur", lambda o: o.blur is not None),
    ("accept_blur_gaps", "--accept-blur-gaps", "is for --blur with --detect-every", "them",
     lambda o: o.blur is not None and o.detect_every != 1),
    ("anchor", "--anchor", "places boxes on lines and zones", "--line or --zone",
     lambda o: bool(o.lines or o.zones)),
    ("line_frames", "--line-frames", "counts crossings of lines and zones", "--line or --zone",
     lambda o: bool(o.lines or o.zones)),
    ("track_buffer", "--track-buffer", "keeps lost tracks", "--track", lambda o: o.track),
)  # fmt: skip


def check_needed(ctx: typer.Context, options: RunOptions) -> None:
    """An option typed on the command line whose partner is missing is a usage error, not
    silently ignored (as ``--trails`` without ``--track`` already was)."""
    for name, flag, does, needs, has in _NEEDS:
        # By name: Typer may bring its own copy of Click, with its own ParameterSource enum.
        source = getattr(ctx.get_parameter_source(name), "name", None)
        if source == "COMMANDLINE" and not has(options):
            raise UsageError(f"{flag} {does}: add {needs}")


def optional_values(argv: list[str]) -> list[str]:
    """Options whose value may be left out get their default value inserted: ``--blur``
    with no classes after it (last, or before another option) means people; ``--ray`` with
    no address after it (``auto``, ``local``, ``ray://…`` or ``HOST:PORT``) a local Ray; an
    empty one (``--ray ''``) stays, to be refused as an address."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if arg == "--blur" and (following is None or following.startswith("-")):
            out.append(defaults.BLUR_CLASSES)
        elif arg == "--ray" and (following is None or (not _ray_address(following) and following)):
            out.append("local")
    return out


def _ray_address(text: str) -> bool:
    return (
        text in ("auto", "local") or "://" in text or re.fullmatch(r"[\w.-]+:\d+", text) is not None
    )
