"""Annotated video out through PyAV's own FFmpeg (OpenCV's pip wheels cannot write H.264)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from annotate.compat import import_av, open_input
from annotate.errors import OutputError, OutputPathError, UsageError
from annotate.sinks import SinkBase
from annotate.sinks.audio import CarriedStreams, copy_tags
from annotate.sinks.encoding import EncodeOptions
from annotate.types import Detections, Frame, SourceInfo, as_image

log = logging.getLogger("annotate")

#: Containers we write, by extension.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
#: Codec names users type → FFmpeg encoders, with their CRF range and default.
ENCODERS = {
    "h264": ("libx264", 51, 23),
    "hevc": ("libx265", 51, 28),
    "vp9": ("libvpx-vp9", 63, 32),
    "av1": ("libsvtav1", 63, 35),
    # NVIDIA's encoder chip (NVENC): GeForce/RTX, T4, L4, L40, A10… have it; the compute
    # GPUs A100, H100 and H200 do not. --crf is its constant-quality level (cq).
    "h264_nvenc": ("h264_nvenc", 51, 23),
    "hevc_nvenc": ("hevc_nvenc", 51, 28),
    "av1_nvenc": ("av1_nvenc", 51, 32),
}
#: What each encoder writes, as containers name it.
WRITES = {
    "libx264": "h264",
    "libx265": "hevc",
    "libvpx-vp9": "vp9",
    "libsvtav1": "av1",
    "h264_nvenc": "h264",
    "hevc_nvenc": "hevc",
    "av1_nvenc": "av1",
}
NVENC = tuple(name for name in ENCODERS if name.endswith("_nvenc"))
#: NVENC's speed preset: p1 is its fastest, p7 its best; p2 keeps up with the GPU's detector
#: at a quality near x264 veryfast's.
NVENC_PRESET = "p2"
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")  # fmt: skip
#: The fastest preset whose files are not several times larger: encoding is a small share of
#: a frame next to inference (docs/performance.md, "Encoder preset").
DEFAULT_PRESET = "veryfast"
#: x264 keeps each lookahead frame at full size plus a half-size copy for its analysis (~3
#: bytes per pixel): 10 frames (veryfast's rc-lookahead) take ~60 MB at 1080p. With the
#: default preset the lookahead is capped to this budget: 4 frames at 1080p, 3 above, and
#: veryfast's 10 up to 720p, for about 2 % more bits at equal quality (docs/performance.md,
#: "Memory").
#: A chosen --preset is left alone.
LOOKAHEAD_BUDGET = 28 * 2**20
VERYFAST_LOOKAHEAD = 10
DEFAULT_TIME_BASE = Fraction(1, 90_000)
KEYFRAME_EVERY_S = 2  # a fragment per keyframe: a crash loses at most this much video
#: While recording, MP4/MOV are fragmented so a killed process still leaves a playable file.
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"


def container_for(path: Path) -> str:
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise OutputPathError(
            f"cannot write video to {path}: unsupported extension "
            f"'{path.suffix or '(none)'}'; use one of {', '.join(CONTAINERS)}"
        )
    return fmt


#: ``--codec auto`` in a container that cannot hold H.264: what it holds and browsers play
#: (FFmpeg's own choice for the container, too).
AUTO_CODEC = {"webm": "vp9"}


def auto_codec(fmt: str) -> str:
    """The codec ``--codec auto`` writes in the container ``fmt`` (NVENC's is H.264 too)."""
    return AUTO_CODEC.get(fmt, "h264")


def check_encoding(path: Path, options: EncodeOptions) -> None:
    """Refuse an impossible codec/container/option combination before any work starts."""
    av = import_av()

    fmt = container_for(path)
    codec = auto_codec(fmt) if options.codec == "auto" else options.codec
    if codec not in ENCODERS:
        raise UsageError(f"unknown codec '{options.codec}'; use one of auto, {', '.join(ENCODERS)}")
    encoder, max_crf, _ = ENCODERS[codec]
    if encoder not in av.codecs_available:
        raise UsageError(f"this PyAV build has no {codec} encoder ({encoder})")
    with av.open(os.devnull, "w", format=fmt) as probe:
        supported = probe.supported_codecs
    if WRITES[encoder] not in supported:
        raise UsageError(
            f"{path.suffix} files cannot hold {options.codec} video; use .mkv or another codec"
        )
    if options.crf is not None and not 0 <= options.crf <= max_crf:
        raise UsageError(f"--crf for {codec} must be 0–{max_crf}, got {options.crf}")
    if options.preset is not None:
        if codec not in ("h264", "hevc"):
            raise UsageError(f"--preset applies to h264 and hevc, not {codec}")
        if options.preset not in X26X_PRESETS:
            raise UsageError(
                f"unknown --preset '{options.preset}'; use one of {', '.join(X26X_PRESETS)}"
            )


@functools.cache
def cannot_open(encoder: str) -> str | None:
    """Why ``encoder`` does not open on this machine (``None``: it does). A hardware
    encoder is in the wheel whether or not the machine has the chip; opening one tells."""
    av = import_av()

    if encoder not in av.codecs_available:
        return "not in this PyAV build"
    context = av.CodecContext.create(encoder, "w")
    context.width, context.height, context.pix_fmt = 256, 144, "yuv420p"
    context.time_base = Fraction(1, 30)
    try:
        context.open()
    except (av.FFmpegError, OSError, ValueError) as e:
        return str(getattr(e, "strerror", None) or e)
    finally:
        with contextlib.suppress(Exception):
            context.close()
    return None


def pick_codec(options: EncodeOptions, nvidia: bool, fmt: str = "mp4") -> EncodeOptions:
    """``--codec auto``: NVENC's H.264 where the run's model is on an NVIDIA GPU and NVENC
    opens, x264 everywhere else, saying why where NVENC was wanted but does not open (a
    ``--preset``, which is x264's, keeps x264); in a container without H.264 (``fmt``
    WebM), its own codec. A named codec is taken as it is, and an NVENC one that does not
    open here is an error before any output exists."""
    if options.codec in NVENC:
        why = cannot_open(ENCODERS[options.codec][0])
        if why is not None:
            raise OutputError(
                f"--codec {options.codec} cannot open here ({why}): NVENC is on GeForce/RTX, "
                "T4, L4, L40 and A10 cards, not on A100, H100 or H200; use --codec h264"
            )
        return options
    if options.codec != "auto":
        return options
    if fmt in AUTO_CODEC:
        return replace(options, codec=auto_codec(fmt))
    if nvidia and options.preset is None:
        why = cannot_open("h264_nvenc")
        if why is None:
            log.info("--codec auto: encoding on the GPU (h264_nvenc)")
            return replace(options, codec="h264_nvenc")
        log.info(
            "--codec auto: NVENC does not open here (%s; A100, H100 and H200 have no "
            "NVENC); encoding with x264",
            why,
        )
    return replace(options, codec="h264")


def to_i420(
    image: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8] | None = None
) -> npt.NDArray[np.uint8]:
    """BGR → planar YUV 4:2:0 (BT.601, limited range: what swscale produces too), into
    ``out`` when given (``(height * 3 // 2, width)``).

    OpenCV's SIMD conversion takes 0.7 ms for a 1080p frame where PyAV's swscale path from
    ``bgr24`` takes 10.7 ms: a quarter of the per-frame CPU budget at 1080p.
    """
    import cv2

    return as_image(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420, dst=out))


class I420Frames:
    """BGR images → PyAV frames over one reused I420 buffer, for an encoder's thread.

    ``VideoFrame.from_ndarray`` copies the pixels holding the GIL; where the encoder's
    thread is what bounds a run (a GPU box), that copy is time no other thread's Python can
    run (docs/performance.md, "The encoder's frame points at a reused buffer"). Here OpenCV
    converts into a buffer allocated once (no allocation takes the GIL either) and the frame
    only points at it: FFmpeg copies a frame it does not own inside ``avcodec_send_frame``,
    which PyAV calls without the GIL, so the buffer is free again once ``encode`` returns.
    A frame from :meth:`frame` must be encoded before the next call.
    """

    def __init__(self, width: int, height: int) -> None:
        self._buffer = np.empty((height * 3 // 2, width), np.uint8)
        self._wrap = import_av().VideoFrame.from_numpy_buffer

    def frame(self, image: npt.NDArray[np.uint8]) -> Any:
        return self._wrap(to_i420(image, self._buffer), format="yuv420p")


def lookahead(width: int, height: int) -> int:
    """Frames of x264 lookahead that fit :data:`LOOKAHEAD_BUDGET` (3 to veryfast's 10)."""
    return max(3, min(VERYFAST_LOOKAHEAD, LOOKAHEAD_BUDGET // (3 * width * height)))


def even_size(width: int, height: int) -> tuple[int, int]:
    """4:2:0 chroma needs even dimensions; odd sizes get one pixel of edge padding."""
    return width + width % 2, height + height % 2


class VideoSink(SinkBase):
    """Writes annotated video (H.264/yuv420p by default) at the source's size and rate.

    - Each frame keeps its source timestamp, shifted so the output starts at 0: non-integer
      and variable frame rates and real camera timing survive.
    - Odd sizes are padded by one edge pixel on the right/bottom; boxes stay in source pixels.
    - ``audio_from``: a file whose audio tracks are carried over, cut to the video's span.
    - MP4/MOV are written fragmented while recording (a killed process leaves a playable
      file), then rewritten with the index at the front on close, for browsers.
    """

    def __init__(
        self,
        path: Path,
        info: SourceInfo,
        options: EncodeOptions | None = None,
        audio_from: str | None = None,
    ) -> None:
        av = import_av()

        self.options = options or EncodeOptions()
        check_encoding(path, self.options)
        self.format = container_for(path)
        if self.options.codec == "auto":  # the pipeline picks; a sink made alone gets x264
            self.options = replace(self.options, codec=auto_codec(self.format))
        self.path = path
        self.info = info
        self.frames = 0
        self._last_pts = -1
        self._last_time = 0.0
        self._video_muxed = False  # audio waits for it: the muxer's timing starts there
        self._closed = False
        self.time_base = info.time_base or DEFAULT_TIME_BASE
        # flush_packets: each fragment reaches the OS whole, not 32 KiB at a time.
        options_ = {"flush_packets": "1"}
        if self.format in ("mp4", "mov"):
            options_["movflags"] = FRAGMENTED
        try:
            self.container: Any = av.open(str(path), "w", format=self.format, options=options_)
        except (OSError, av.FFmpegError) as e:
            raise OutputError(f"cannot write {path}: {getattr(e, 'strerror', None) or e}") from None
        try:
            self._add_video_stream()
            self.audio = None
            if audio_from:
                zero = info.time_offset + info.start
                self.audio = CarriedStreams(
                    audio_from, self.container, zero, audio=self.options.audio
                )
        except BaseException:
            self.container.close()
            raise

    def _add_video_stream(self) -> None:
        encoder, _max_crf, default_crf = ENCODERS[self.options.codec]
        self.width, self.height = even_size(self.info.width, self.info.height)
        if (self.width, self.height) != (self.info.width, self.info.height):
            log.info(
                "Padding output to %dx%d: 4:2:0 video needs even dimensions",
                self.width,
                self.height,
            )
        stream = self.container.add_stream(encoder, rate=self.info.fps)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = self.time_base
        stream.codec_context.gop_size = max(1, round(KEYFRAME_EVERY_S * float(self.info.fps)))
        stream.codec_context.thread_count = self.options.threads
        # Slice threads split each frame, so encode() returns with that frame done and holds
        # no extra frames. Frame threads are faster but hold a frame per thread: memory over
        # the 2-core budget, and a frame of delay per thread in recordings (docs/performance.md,
        # "Memory"); the plan asks for them where x264 is what binds (a file on a GPU).
        stream.codec_context.thread_type = "FRAME" if self.options.frame_threads else "SLICE"
        crf = str(self.options.crf if self.options.crf is not None else default_crf)
        no_bframes = self.format in ("mp4", "mov")
        if self.options.codec in NVENC:
            # Constant quality, as --crf is for x264; no B-frames in fragmented MP4 (below).
            stream.options = {"preset": NVENC_PRESET, "rc": "vbr", "cq": crf, "b": "0"}
            if no_bframes:
                stream.options["bf"] = "0"
        elif self.options.codec in ("h264", "hevc"):
            stream.options = {"crf": crf, "preset": self.options.preset or DEFAULT_PRESET}
            if self.options.codec == "h264" and self.options.preset is None:
                stream.options["rc-lookahead"] = str(lookahead(self.width, self.height))
            # Fragmented MP4 has no edit list to hide B-frame delay: the video would start
            # late against the audio. Without B-frames decode order is display order.
            if self.options.codec == "h264" and no_bframes:
                stream.options["bf"] = "0"
            if self.options.codec == "hevc":
                stream.codec_tag = "hvc1"  # what Apple players need to play HEVC in MP4
                params = "log-level=error" + (":bframes=0" if no_bframes else "")
                stream.options["x265-params"] = params
        elif self.options.codec == "vp9":
            stream.options = {
                "crf": crf,
                "b": "0",
                "deadline": "realtime",
                "cpu-used": "8",
                "row-mt": "1",
            }
        else:
            stream.options = {"crf": crf, "preset": "10"}
        self.stream = stream
        self._i420 = I420Frames(self.width, self.height)

    def _pts(self, frame: Frame) -> int:
        seconds = frame.time if frame.time is not None else frame.index / float(self.info.fps)
        seconds -= self.info.start
        pts = round(Fraction(seconds) / self.time_base)
        # Timestamps must rise strictly. A damaged file can repeat or go back in time: such a
        # frame is placed one nominal frame after the previous one.
        if pts <= self._last_pts:
            step = max(1, round(1 / (self.info.fps * self.time_base)))
            pts = self._last_pts + step
        self._last_pts = pts
        self._last_time = float(pts * self.time_base)
        return pts

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        image = annotated
        h, w = image.shape[:2]
        if (w, h) != (self.width, self.height):
            if w > self.width or h > self.height:
                raise OutputError(
                    f"frame {frame.index} is {w}x{h} but {self.path} was opened at "
                    f"{self.width}x{self.height}; the source changed size mid-stream"
                )
            image = np.pad(image, ((0, self.height - h), (0, self.width - w), (0, 0)), mode="edge")
        out = self._i420.frame(image)
        out.pts = self._pts(frame)
        out.time_base = self.time_base
        try:
            self._mux_video(self.stream.encode(out))
            if self.audio and self._video_muxed:
                # Audio up to this frame only: the video's end is not known yet, and audio
                # must not run past it when the run is cut short.
                self.audio.write_until(self._last_time)
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.frames += 1

    def _mux_video(self, packets: list[Any]) -> None:
        for packet in packets:
            self.container.mux(packet)
            self._video_muxed = True

    def close(self) -> None:
        """Flush, finalise and (for MP4/MOV) move the index to the front; safe to call twice.

        If finalising is interrupted, the fragmented file stays: it is complete and playable.
        FFmpeg can lose a write error (a full disk) without telling its caller, so when the
        file system is full the frames are counted back: a file that holds fewer than were
        written is an error that says how much of it is good.
        """
        if self._closed:
            return
        self._closed = True
        error = None
        try:
            try:
                self._mux_video(self.stream.encode(None))
                if self.audio and self._video_muxed:
                    self.audio.finish(self._last_time + 1 / float(self.info.fps))
            finally:
                self.container.close()
        except OSError as e:
            error = e.strerror or str(e)
        if self.frames and (error or _nearly_full(self.path)):
            if error and not self.path.exists():  # FFmpeg opens the file at the first packet
                raise OutputError(f"cannot write {self.path}: {error}")
            readable = video_packets(self.path)
            if error or readable < self.frames:
                reason = error or "no space left on device"
                raise OutputError(
                    f"{self.path} is incomplete ({reason}): about {readable} of "
                    f"{self.frames} frames are readable"
                )
        if self.format in ("mp4", "mov") and self.frames:
            defragment(self.path, self.format)


def _nearly_full(path: Path) -> bool:
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 1 << 20


def video_packets(path: Path) -> int:
    """How many video frames a written file holds that a player can reach (packets with a
    timestamp, counted by demuxing only, up to the first damage)."""
    count = 0
    try:
        with open_input(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                count += packet.pts is not None and packet.size > 0
    except (OSError, IndexError, ValueError):
        pass
    return count


def defragment(path: Path, fmt: str) -> None:
    """Rewrite a fragmented MP4/MOV as a regular one with ``+faststart``, atomically."""
    av = import_av()

    tmp = path.with_name(f".{path.name}.finalising")
    try:
        with (
            open_input(str(path)) as src,
            av.open(str(tmp), "w", format=fmt, options={"movflags": "+faststart"}) as dst,
        ):
            streams = [s for s in src.streams if s.type in ("video", "audio", "subtitle")]
            mapping = {s.index: dst.add_stream_from_template(s) for s in streams}
            for stream in streams:
                copy_tags(stream, mapping[stream.index])  # add_stream_from_template does not
            for packet in src.demux(*streams):
                if packet.dts is None:
                    continue
                packet.stream = mapping[packet.stream.index]
                dst.mux(packet)
        os.replace(tmp, path)
    except av.FFmpegError as e:
        log.warning("Could not finalise %s (%s); it is kept as fragmented MP4", path, e)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
