"""Video files and network streams, decoded by FFmpeg through PyAV."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Generator, Iterator
from fractions import Fraction
from typing import Any

import numpy as np

from annotate.compat import import_av, open_input
from annotate.errors import SourceError, SourceNotFoundError
from annotate.sources.base import SourceBase
from annotate.types import Frame, SourceInfo

log = logging.getLogger("annotate")

DEFAULT_FPS = Fraction(30)
NETWORK_OPTIONS = {"rw_timeout": "10000000", "timeout": "10000000"}  # µs: a dead host fails in 10 s


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as PyAV reports it)."""
    import cv2

    turn = {
        90: cv2.ROTATE_90_COUNTERCLOCKWISE,
        -90: cv2.ROTATE_90_CLOCKWISE,
        270: cv2.ROTATE_90_CLOCKWISE,
        180: cv2.ROTATE_180,
        -180: cv2.ROTATE_180,
    }
    code = turn.get(rotation)
    return image if code is None else cv2.rotate(image, code)


#: ``--hwdec`` values: ``auto`` decodes on an NVIDIA GPU when the run's model is on one
#: (``cuda``, ``tensorrt``), ``cuda`` asks for it, ``none`` decodes on the CPU.
HWDEC = ("auto", "cuda", "none")


def hw(device: str) -> Any:
    """PyAV's hardware decoding for ``device`` (frames come back in system memory; a codec
    NVDEC cannot decode falls back to FFmpeg's software decoder)."""
    from av.codec.hwaccel import HWAccel

    return HWAccel(device, allow_software_fallback=True)


def reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


class BestEffortStamp:
    """The stamp to trust for each decoded frame, as FFmpeg's ``best_effort_timestamp``
    chooses it: count how often each of pts and dts went backwards, and use the steadier.

    An AVI stores decode order only; with B-frames, decoded frames carry their packets'
    stamps in decode order (0.1, 0.4, 0.3, 0.5, 0.2 s … on PETS09-S2L1), and a tracker fed
    those times predicts motion over nonsense gaps. Their dts still increases. Counting
    alone trusts pts until it first goes back, so the first frames came 0.1, 0.4, 0.5 s
    apart: ``decode_order`` (the AVI's case) takes dts from the start.
    """

    def __init__(self, decode_order: bool = False) -> None:
        self.last_pts: int | None = None
        self.last_dts: int | None = None
        self.bad_pts = self.bad_dts = 0
        if decode_order:  # an AVI's pts: dts from the first frame on, not from the first fault
            self.bad_pts = 1

    def __call__(self, pts: int | None, dts: int | None) -> int | None:
        if dts is not None:
            self.bad_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        if pts is not None:
            self.bad_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        if pts is not None and (dts is None or self.bad_pts <= self.bad_dts):
            return pts
        return dts


class VideoSource(SourceBase):
    """Decodes the first video stream.

    - ``time`` comes from the container's timestamps (seconds since the stream's start), not
      ``index / fps``, so variable frame rates are kept.
    - Frames tagged with a rotation (phone footage) are turned upright before anyone sees them.
    - ``start``/``end`` (seconds) seek to the keyframe before ``start`` instead of decoding
      from the beginning, then drop the frames before ``start``.
    - A packet that fails to decode is skipped, so a damaged file yields every readable frame.

    The first frame is decoded on open: it tells the rotation and proves the file decodes.
    """

    def __init__(
        self,
        url: str,
        start: float | None = None,
        end: float | None = None,
        threads: int = 0,
        hwdec: str = "none",
    ) -> None:
        av = import_av()

        self.name = url
        self.path = url
        self.start, self.end = start, end
        self.threads = threads  # decoder threads; 0: FFmpeg decides from the core count
        network = "://" in url
        options = NETWORK_OPTIONS if network else None
        self.hwdec = "none"  # what decodes: "cuda" once NVDEC opened
        gpu_error: str | None = None
        try:
            if hwdec != "none":
                try:
                    self.container: Any = open_input(url, options=options, hwaccel=hw(hwdec))
                    self.hwdec = hwdec
                except FileNotFoundError:
                    raise
                except (av.FFmpegError, OSError, ValueError, TypeError, ImportError) as e:
                    gpu_error = reason(e)  # no device, or a PyAV without HWAccel
            if self.hwdec == "none":
                # Damaged or foreign files carry tags that are not UTF-8: never fail on a tag.
                self.container = open_input(url, options=options)
        except FileNotFoundError:
            raise SourceNotFoundError(f"input {url} does not exist") from None
        except PermissionError:
            raise SourceError(f"cannot read {url}: permission denied") from None
        except (av.FFmpegError, OSError) as e:
            if network:
                raise SourceError(f"cannot open {url}: {reason(e)}") from None
            raise SourceError(f"{url} is not a video or image file ({reason(e)})") from None
        if gpu_error is not None:  # said once the file is known to open in software
            log.warning(
                "--hwdec %s: cannot decode on the GPU here (%s); decoding in software",
                hwdec,
                gpu_error,
            )
        try:
            self._setup()
        except BaseException:
            self.container.close()
            raise

    def _setup(self) -> None:
        if not self.container.streams.video:
            raise SourceError(f"{self.name} has no video stream")
        self.stream = self.container.streams.video[0]
        if self.stream.codec_context is None:  # a damaged header names no known codec
            raise SourceError(f"{self.name}: the video codec is unknown or the header is damaged")
        self.stream.thread_type = "AUTO"
        self.stream.codec_context.thread_count = self.threads
        self.time_base = self.stream.time_base
        # Each frame's seconds in float arithmetic: a Fraction's, on every frame, showed in
        # profiles of many sources in one process (int * float is off by under a nanosecond).
        self._tick = None if self.time_base is None else float(self.time_base)
        self._decode_order = self.container.format.name == "avi"
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.fps = Fraction(rate) if rate else DEFAULT_FPS
        if self.start:
            self._seek(self.start)
        self._read_from_here()
        first = next(self._pictures, None)
        if self.start and (first is None or first[1] > self.start + 1.5 / float(self.fps)):
            # The seek missed: MPEG-TS has no index, and FFmpeg's search for a keyframe
            # before the time can land past the stream's end or its first frames. Decode
            # from the start instead (PyAV's seek to 0, in its own units); the frames
            # before ``start`` are skipped.
            log.debug("seeking to %g s missed; decoding %s from its start", self.start, self.name)
            self.container.seek(0)
            self._read_from_here()
            first = next(self._pictures, None)
        if first is None:
            what = f"after {self.start:g} s" if self.start else "at all"
            raise SourceError(f"{self.name}: no video frame could be decoded {what}")
        self._first: Frame | None = self._to_frame(*first)
        height, width = self._first.image.shape[:2]
        duration = self.container.duration  # None for live streams
        self.info = SourceInfo(
            width=width,
            height=height,
            fps=self.fps,
            frames=self.stream.frames or None,  # Matroska headers often say 0
            time_base=self.time_base,
            live="://" in self.name and duration is None,
            start=self._first.time or 0.0,
            time_offset=float((self.stream.start_time or 0) * self.time_base),
        )

    def _seek(self, seconds: float) -> None:
        av = import_av()

        target = round(seconds / self.time_base) + (self.stream.start_time or 0)
        try:
            self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        except av.FFmpegError as e:  # unseekable input: decode from the start instead
            log.debug("seek failed (%s); decoding from the start", e)

    def _read_from_here(self) -> None:
        """Decode from the container's position, the frames' times counted afresh: a stream
        without a start time takes its first frame's stamp as time zero (:meth:`_seconds`),
        which a missed seek must not leave behind."""
        self.origin = self.stream.start_time  # pts of the stream's time zero
        self._stamp = BestEffortStamp(self._decode_order)
        self._previous: float | None = None  # the last frame's time
        self._step: float | None = None  # and the step to it from the one before
        self._pictures = self._decode()

    def _decode(self) -> Generator[tuple[int, float, Any], None, None]:
        """``(index, seconds, av.VideoFrame)`` still in the decoder's pixel format."""
        av = import_av()

        index = 0
        last_good = 0
        try:
            for packet in self.container.demux(self.stream):
                try:
                    decoded = packet.decode()
                except av.FFmpegError as e:
                    log.debug("skipping undecodable packet at %s: %s", packet.pts, e)
                    continue
                for frame in decoded:
                    seconds = self._seconds(frame, index)
                    if self.start is not None and seconds < self.start - 1e-6:
                        continue
                    if self.end is not None and seconds >= self.end - 1e-6:
                        return
                    yield index, seconds, frame
                    index += 1
                    last_good = index
            self._check_length(index)
        except av.FFmpegError as e:
            if last_good == 0:
                raise SourceError(f"cannot decode {self.name}: {reason(e)}") from None
            # A live stream's drop is reported (and retried) by StreamSource.
            report = log.debug if "://" in self.name else log.warning
            report("Stopped reading %s after %d frames: %s", self.name, index, reason(e))

    def _check_length(self, decoded: int) -> None:
        """Say so when a whole file ends well before the frame count its header gives (a file
        cut short keeps its index): the frames read are good, the rest are missing."""
        expected = self.stream.frames  # 0 where the header does not say
        whole = self.start is None and self.end is None and "://" not in self.name
        if whole and expected and decoded < expected * 0.99 - 1:
            log.warning(
                "%s ended early: %d of the %d frames its header lists could be read "
                "(the file is cut short or damaged)",
                self.name,
                decoded,
                expected,
            )

    def _seconds(self, frame: Any, index: int) -> float:
        stamp = self._stamp(frame.pts, frame.dts)
        if self._decode_order and frame.dts is None and self._previous is not None:
            # The AVI's last frames, flushed from the decoder, have only a reordered pts:
            # they follow at the last step between frames (an AVI's rate can be its clock's).
            self._previous += self._step or 1 / float(self.fps)
            return self._previous
        if stamp is None or self._tick is None:
            return index / float(self.fps)
        if self.origin is None:
            self.origin = stamp
        seconds: float = (stamp - self.origin) * self._tick
        if self._previous is not None and seconds <= self._previous:
            # Frames leave the decoder in display order: a stamp that goes back is wrong
            # (a B-frame flushed at the end of an AVI has only its reordered pts).
            seconds = self._previous + 1 / float(self.fps)
        if self._previous is not None:
            self._step = seconds - self._previous
        self._previous = seconds
        return seconds

    def _to_frame(self, index: int, seconds: float, picture: Any) -> Frame:
        image = upright(picture.to_ndarray(format="bgr24"), picture.rotation)
        return Frame(index, seconds, image, self.name)

    def __iter__(self) -> Iterator[Frame]:
        return (load() for load in self.deferred())

    def deferred(self) -> Iterator[Callable[[], Frame]]:
        """Frames whose conversion to BGR is left to the caller, on whichever thread it likes.

        A decoded 4:2:0 picture is half the size of its BGR image, so a runner that queues
        these instead of frames holds twice the frames in the same memory, and converts them
        on its worker threads instead of the decoder's.
        """
        if self._first is not None:
            first, self._first = self._first, None
            yield lambda: first
        for picture in self._pictures:
            yield functools.partial(self._to_frame, *picture)

    def close(self) -> None:
        self._pictures.close()
        self.container.close()
