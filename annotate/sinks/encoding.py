"""How ``-o`` video is encoded, as the user sets it: its own module, free of numpy and PyAV,
because the CLI's ``--help`` reads these declarations."""

from __future__ import annotations

from dataclasses import dataclass

from annotate import defaults
from annotate.settings import ENCODE, setting


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = setting(
        defaults.CODEC,
        flags=("--codec",),
        parse=str.lower,
        outputs=True,
        example="hevc",
        panel=ENCODE,
        help="Video codec for -o: h264, hevc, vp9, av1, or NVIDIA's h264_nvenc, hevc_nvenc, "
        "av1_nvenc; auto: vp9 in .webm, else h264_nvenc when the model runs on an NVIDIA GPU "
        "with NVENC, else h264",
    )
    crf: int | None = setting(
        None,
        flags=("--crf",),
        outputs=True,
        example=18,
        panel=ENCODE,
        show_default=False,
        help="Quality, lower is better [default: 23 h264, 28 hevc, 32 vp9]",
    )
    preset: str | None = setting(
        None,
        flags=("--preset",),
        outputs=True,
        example="ultrafast",
        panel=ENCODE,
        show_default=False,
        help="x264/x265 speed preset, ultrafast … veryslow [default: veryfast]",
    )
    audio: bool = setting(
        True,
        flags=("--audio/--no-audio",),
        outputs=True,
        example=False,
        panel=ENCODE,
        help="Carry the input's audio tracks into -o",
    )
    threads: int = 0  # encoder threads; 0: the encoder decides from the core count
    frame_threads: bool = False  # frame threads (faster, a frame held each) over slices
