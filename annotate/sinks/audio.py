"""Carrying a source's audio and subtitle tracks into the annotated output, cut and shifted
to match, with their language tags; what cannot be carried is said once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from annotate.compat import import_av, open_input

log = logging.getLogger("annotate")

#: Stream tags worth keeping: a player shows them to pick a track.
TAGS = ("language", "title")
#: Codec to re-encode to when the output container cannot carry the source's audio as is.
REENCODE = {"webm": "libopus"}
DEFAULT_REENCODE = "aac"


def adts_into_mp4(stream: Any, container: str) -> bool:
    """Whether ``stream`` is AAC without its config (so in ADTS frames, as MPEG-TS and AVI
    carry it) going into MP4/MOV, which take raw AAC frames only: FFmpeg refuses the first
    packet ("Malformed AAC bitstream") when the header is written up front, as ours is."""
    context = stream.codec_context
    return container in ("mp4", "mov") and context.name == "aac" and not context.extradata


def copy_tags(source: Any, target: Any) -> None:
    for key in TAGS:
        value = source.metadata.get(key)
        if value:
            target.metadata[key] = value


class CarriedStreams:
    """Copies every audio stream of ``source`` into ``output``, and every subtitle stream the
    container can hold as it is (text subtitles into Matroska, mov_text into MP4/MOV).

    Audio packets are passed through untouched when the container accepts the codec, else
    decoded and re-encoded (AAC, or Opus for WebM). ``zero`` is the source-container time
    that becomes the output's time zero (the first video frame written); audio before it or
    after the video's end is dropped, so ``--start``/``--duration`` cut audio and video alike.
    """

    def __init__(self, source: str, output: Any, zero: float, audio: bool = True) -> None:
        self.input: Any = open_input(source)
        self.zero = zero
        self.tracks: list[tuple[Any, Any, bool]] = []  # (input stream, output stream, copy?)
        supported = output.supported_codecs
        container = output.format.name.split(",")[0]
        dropped = [
            f"video stream #{s.index} (only the first video stream is annotated)"
            for s in self.input.streams.video[1:]
        ]
        for stream in self.input.streams.subtitles:
            name = stream.codec_context.name
            if name in supported:
                out = output.add_stream_from_template(stream)
                copy_tags(stream, out)
                self.tracks.append((stream, out, True))
            else:
                hint = "; .mkv keeps it" if container != "matroska" else ""
                dropped.append(
                    f"subtitle stream #{stream.index} ({name} cannot go in {container}{hint})"
                )
        dropped += [
            f"{s.type} stream #{s.index}"
            for s in self.input.streams
            if s.type not in ("video", "audio", "subtitle")
        ]
        if dropped:
            log.warning("Not kept in the output: %s", "; ".join(dropped))
        self._filters: dict[int, Any] = {}
        for stream in self.input.streams.audio if audio else ():
            if stream.codec_context.name in supported:
                out = output.add_stream_from_template(stream)
                copy = True
                if adts_into_mp4(stream, container):
                    self._filters[stream.index] = self._adts_filter(stream, output)
            else:
                codec = REENCODE.get(output.format.name.split(",")[0], DEFAULT_REENCODE)
                rate = stream.codec_context.sample_rate or 48_000
                out = output.add_stream(codec, rate=48_000 if codec == "libopus" else rate)
                layout = stream.codec_context.layout
                out.layout = layout.name if layout else "stereo"
                copy = False
                log.info(
                    "Re-encoding %s audio to %s for %s",
                    stream.codec_context.name,
                    codec,
                    output.format.name,
                )
            copy_tags(stream, out)
            self.tracks.append((stream, out, copy))
        self._by_index = {s.index: (s, o, c) for s, o, c in self.tracks}
        if not self.tracks:
            self.input.close()
            self._packets: Iterator[Any] = iter(())
            return
        if zero > 0:
            self.input.seek(int(zero * 1_000_000), backward=True, any_frame=False)
        self._packets = self.input.demux(*[s for s, _o, _c in self.tracks])
        self._pending: Any = None
        self.output = output

    def __bool__(self) -> bool:
        return bool(self.tracks)

    @staticmethod
    def _adts_filter(stream: Any, output: Any) -> Any:
        """AAC in ADTS frames (MPEG-TS, AVI) into MP4/MOV, as the muxer needs it: raw frames,
        with the AudioSpecificConfig that the filter reads from the first frame's header.
        The header (``moov``) waits for the first fragment, so that config is in it."""
        from av.bitstream import BitStreamFilterContext

        flags = output.options.get("movflags", "")
        if "delay_moov" not in flags:
            output.options["movflags"] = f"{flags}+delay_moov" if flags else "delay_moov"
        return BitStreamFilterContext("aac_adtstoasc", stream)

    def write_until(self, seconds: float, end: float | None = None) -> None:
        """Mux audio up to ``seconds`` on the output clock; nothing at or after ``end``."""
        av = import_av()

        while True:
            packet = self._pending
            self._pending = None
            if packet is None:
                try:
                    packet = next(self._packets)
                except (StopIteration, av.FFmpegError):
                    return
            if packet.pts is None or packet.dts is None:
                continue
            t = float(packet.pts * packet.time_base) - self.zero
            if t > seconds:
                self._pending = packet
                return
            if t < 0 or (end is not None and t >= end):
                continue
            self._emit(packet)

    def _emit(self, packet: Any) -> None:
        av = import_av()

        _stream, out, copy = self._by_index[packet.stream.index]
        shift = round(Fraction(self.zero) / packet.time_base)
        if copy:
            packet.pts -= shift
            packet.dts -= shift
            bsf = self._filters.get(packet.stream.index)
            for carried in bsf.filter(packet) if bsf is not None else (packet,):
                carried.stream = out
                self.output.mux(carried)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError:
            return
        for frame in frames:
            if frame.pts is not None:
                frame.pts -= shift
            for encoded in out.encode(frame):
                self.output.mux(encoded)

    def finish(self, end: float) -> None:
        """Mux what remains up to the video's end and flush re-encoders."""
        if not self.tracks:
            return
        try:
            self.write_until(end, end)
            for _stream, out, copy in self.tracks:
                if not copy:
                    for encoded in out.encode(None):
                        self.output.mux(encoded)
        finally:
            self.input.close()
