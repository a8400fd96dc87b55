"""Everything a run needs, with each default written once, and checked before any work."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from annotate import defaults
from annotate.analytics.geometry import ANCHORS, parse_shapes
from annotate.annotators import BLUR_SHAPES, BLUR_STYLES
from annotate.detector import check_thresholds
from annotate.detector.canvas import CANVASES
from annotate.detector.session import SessionSettings
from annotate.errors import OutputPathError, UsageError, check_at_least
from annotate.sinks.video import EncodeOptions
from annotate.sources import input_paths, is_image

if TYPE_CHECKING:
    from annotate.models import KnownModel
    from annotate.providers import Resolution


#: The longest trail (--trails) in points: many seconds of video at any frame rate.
MAX_TRAILS = 10_000


@dataclass
class RunOptions:
    """Everything ``annotate run`` needs, from flags, environment and config.

    ``model`` may be a name or path and ``provider`` a request (``cpu``, ``auto`` …):
    :meth:`resolved` turns them into a file and a :class:`Resolution`, after :meth:`validate`
    has refused bad combinations, so a typo never waits for a download.
    """

    source: str
    model: str | Path = defaults.MODEL
    resolution: Resolution | None = None  # None: resolved from ``provider`` here
    provider: str | None = None  # None: auto
    model_origin: str | None = None  # where ``model`` came from (--model, env, file), for messages
    provider_origin: str | None = None
    output: Path | None = None
    json_path: str | None = None
    show: bool = False
    conf: float = defaults.CONF
    iou: float = defaults.IOU
    max_frames: int | None = None
    fps_every: int = defaults.FPS_EVERY
    session: SessionSettings = field(default_factory=SessionSettings)
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    start: float | None = None
    end: float | None = None
    reconnect: int = defaults.RECONNECT
    sequential: bool = False
    workers: int | None = None  # inference threads for the concurrent runner; None: auto
    decode_threads: int = 0  # 0: planned (see plan_threads)
    #: The cores this run may use (``annotate batch`` gives each job its share); ``None``: all
    #: this process may run on.
    cores: int | None = None
    batch: int = 1  # frames per inference call in the concurrent runner, if the model allows
    serve: tuple[str, int] | None = None  # web preview address
    serve_hosts: tuple[str, ...] = ()  # more names the preview answers to (--serve-host)
    family: str | None = None  # None: detect from the model
    canvas: str = "auto"  # model input: fit, square or auto (annotate.detector.canvas)
    labels: Path | None = None
    classes: list[str] | None = None
    min_area: float = 0.0
    max_det: int = defaults.MAX_DET
    track: bool = False  # identities across frames (implied by mot and detect_every != 1)
    track_buffer: float = defaults.TRACK_BUFFER_S  # seconds a lost track waits to be found
    trails: int = 0  # draw each track's last N centre points
    mot: Path | None = None  # MOT Challenge text output
    detect_every: int | None = 1  # detect every Nth frame, predict the rest; None: auto
    lines: list[str] = field(default_factory=list)  # --line specs, [NAME=]x1,y1,x2,y2
    zones: list[str] = field(default_factory=list)  # --zone specs, [NAME=]x1,y1,x2,y2,x3,y3,…
    anchor: str = defaults.ANCHOR  # the point of a box that crosses lines and stands in zones
    line_frames: int = defaults.LINE_FRAMES  # frames on the new side before a crossing counts
    blur: list[str] | None = None  # classes to hide (names or ids); None: no blur
    blur_style: str = defaults.BLUR_STYLE
    blur_shape: str = defaults.BLUR_SHAPE
    boxes: bool = True  # draw boxes and labels (off: a clean anonymised video)
    #: --blur with --detect-every N > 1: the user accepts that what appears between two
    #: detections shows until the next one (a new object cannot be predicted).
    accept_blur_gaps: bool = False

    @property
    def tracker_flags(self) -> list[str]:
        """The options set here that work on tracks (the CLI turns tracking on for them)."""
        needs = (("--mot", self.mot is not None), ("--detect-every", self.detect_every != 1),
                 ("--line", bool(self.lines)), ("--zone", bool(self.zones)),
                 ("--blur", self.blur is not None))  # fmt: skip
        return [flag for flag, on in needs if on]

    @property
    def outputs(self) -> list[tuple[str, Path]]:
        """The named output files (not ``-`` for stdout), with the flag that names each."""
        named = (("-o", self.output), ("--json", self.json_path), ("--mot", self.mot))
        return [(flag, Path(p)) for flag, p in named if p and str(p) != "-"]

    def validate(self) -> None:
        """Refuse bad values and combinations before any model lookup or I/O, so nothing is
        downloaded for a run that cannot start and nothing is half-written."""
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
            raise UsageError("--mot, --detect-every, --line, --zone and --blur need the tracker: "
                             "add --track")  # fmt: skip
        self._check_blur()
        lines, zones = parse_shapes(self.lines, "line"), parse_shapes(self.zones, "zone")
        shared = sorted({s.name for s in lines} & {s.name for s in zones})
        if shared:
            raise UsageError(
                f"--line and --zone both use the name {shared[0]!r}; names must differ"
            )
        check_at_least("--line-frames", self.line_frames, 1)
        for flag, value, allowed in (("--canvas", self.canvas, CANVASES),
                                     ("--anchor", self.anchor, ANCHORS),
                                     ("--blur-style", self.blur_style, BLUR_STYLES),
                                     ("--blur-shape", self.blur_shape, BLUR_SHAPES)):  # fmt: skip
            if value not in allowed:
                raise UsageError(f"{flag} takes {', '.join(allowed)}; got {value!r}")
        for flag, value in (("--start", self.start), ("--end", self.end)):
            if value is not None and not math.isfinite(value):
                raise UsageError(f"{flag} must be a finite time, got {value}")
        if self.start is not None and self.start < 0:
            raise UsageError(f"--start must not be negative, got {self.start:g}")
        if self.end is not None and self.end <= (self.start or 0):
            raise UsageError("the time span is empty: --end must come after --start "
                             "(or --duration be positive)")  # fmt: skip
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

    def _check_outputs(self) -> None:
        """No output may replace an input (compared by file identity, so hard links and
        other spellings of a path count), and each must be writable where it is named."""
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
                    raise OutputPathError(f"cannot write {out}: directory {parent} does not "
                                          "exist")  # fmt: skip
                if not os.access(parent, os.W_OK):
                    raise OutputPathError(f"cannot write {out}: directory {parent} is not "
                                          "writable")  # fmt: skip
                is_dir = out.is_dir()
            except OSError as e:  # a name too long for the file system, say
                raise OutputPathError(f"cannot write {_short(out)}: {e.strerror}") from None
            if is_dir and (flag != "-o" or not images_in):
                raise OutputPathError(f"cannot write {out}: it is a directory")
            if flag == "-o" and images_in and (is_dir or not out.suffix):
                # One file per input image, under its own name: none may be an input.
                for image in inputs:
                    if any(_same_file(out / image.name, p) for p in inputs):
                        raise OutputPathError(
                            f"-o {out} would overwrite the input image {image}; choose "
                            "another directory"
                        )
        out = self.output
        if out is not None and out.suffix and not out.is_dir():
            if is_image(out):
                from annotate.sinks.images import check_image_type

                check_image_type(out)
            else:
                from annotate.sinks.video import check_encoding

                check_encoding(out, self.encode)
        for (flag_a, a), (flag_b, b) in itertools.combinations(named, 2):
            if _same_file(a, b):
                raise OutputPathError(f"{flag_a} and {flag_b} name the same file; choose two names")

    def resolved(self, download: Callable[[KnownModel], Path] | None = None) -> RunOptions:
        """These options with ``model`` as an existing file and the provider resolved here;
        a known model missing from disk is fetched with ``download`` when one is given."""
        model, resolution = self.model, self.resolution
        if not isinstance(model, Path):
            from annotate.models import find_model

            model = find_model(model, self.model_origin, download=download)
        if resolution is None:
            from annotate.providers import resolve_here

            resolution = resolve_here(self.provider, self.provider_origin)
        return replace(self, model=model, resolution=resolution)


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


def parse_detect_every(value: str) -> int | None:
    """``N`` (a whole number) or ``auto`` (``None``)."""
    if value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--detect-every takes a whole number or 'auto', got {value!r}") from None


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
