"""Video files and network streams, decoded by FFmpeg through PyAV."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from annotate.errors import SourceError, SourceNotFoundError
from annotate.sources import SourceBase
from annotate.types import Frame, VideoInfo

log = logging.getLogger("annotate")

DEFAULT_FPS = Fraction(30)


class VideoSource(SourceBase):
    """Decodes the first video stream; timestamps come from the container, not ``index / fps``.

    A packet that fails to decode is skipped and the rest of the file is still read, so a
    damaged file yields every frame that can be decoded.
    """

    def __init__(self, url: str) -> None:
        import av

        self.name = url
        try:
            self.container: Any = av.open(
                url, options={"rw_timeout": "10000000"} if "://" in url else None
            )
        except FileNotFoundError:
            raise SourceNotFoundError(f"input {url} does not exist") from None
        except PermissionError:
            raise SourceError(f"cannot read {url}: permission denied") from None
        except av.FFmpegError as e:
            raise SourceError(f"{url} is not a video or image file ({_reason(e)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise SourceError(f"{url} has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        cc = self.stream.codec_context
        if not cc.width or not cc.height:
            self.container.close()
            raise SourceError(f"{url}: cannot read the video size; the file may be damaged")
        fps = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.info = VideoInfo(
            width=cc.width,
            height=cc.height,
            fps=Fraction(fps) if fps else DEFAULT_FPS,
            frames=self.stream.frames or None,  # Matroska headers often say 0
            time_base=self.stream.time_base,
            live="://" in url,
        )

    def __iter__(self) -> Iterator[Frame]:
        import av

        time_base = self.stream.time_base
        start = self.stream.start_time
        index = 0
        try:
            for packet in self.container.demux(self.stream):
                try:
                    decoded = packet.decode()
                except av.FFmpegError as e:
                    log.debug("skipping undecodable packet at %s: %s", packet.pts, e)
                    continue
                for frame in decoded:
                    if start is None and frame.pts is not None:
                        start = frame.pts
                    if frame.pts is None or time_base is None:
                        seconds = index / float(self.info.fps)
                    else:
                        seconds = float((frame.pts - (start or 0)) * time_base)
                    yield Frame(index, seconds, frame.to_ndarray(format="bgr24"), self.name)
                    index += 1
        except av.FFmpegError as e:
            if index == 0:
                raise SourceError(f"cannot decode {self.name}: {_reason(e)}") from None
            log.warning("Stopped reading %s after %d frames: %s", self.name, index, _reason(e))

    def close(self) -> None:
        self.container.close()


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)
