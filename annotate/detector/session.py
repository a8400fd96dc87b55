"""An ONNX Runtime session on the resolved providers, verified after it starts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotate.errors import ModelError
from annotate.providers import Resolution

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger("annotate")


@dataclass(frozen=True)
class SessionInfo:
    """What ONNX Runtime really did, which can differ from what was asked."""

    requested: tuple[str, ...]
    active: tuple[str, ...]
    reason: str
    startup_s: float

    @property
    def provider(self) -> str:
        return self.active[0] if self.active else "none"

    @property
    def fell_back(self) -> bool:
        return self.provider != self.requested[0]


def _ort_errors() -> tuple[type[BaseException], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = (
        "InvalidProtobuf",
        "InvalidGraph",
        "Fail",
        "NoSuchFile",
        "InvalidArgument",
        "NotImplemented",
        "RuntimeException",
        "NoModel",
    )
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


def open_session(
    model: Path,
    resolution: Resolution,
    threads: int | None = None,
    provider_options: dict[str, dict[str, Any]] | None = None,
) -> tuple[onnxruntime.InferenceSession, SessionInfo]:
    """Create the session, then log which provider really runs it and warn on fallback."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's own warnings are noise for users; we report below
    if threads:
        options.intra_op_num_threads = threads
    provider_options = provider_options or {}
    providers = [(p, provider_options.get(p, {})) for p in resolution.providers]
    started = time.perf_counter()
    try:
        session = ort.InferenceSession(str(model), sess_options=options, providers=providers)
    except _ort_errors() as e:
        detail = str(e).split(":")[-1].strip() or type(e).__name__
        raise ModelError(f"cannot load {model} as an ONNX model: {detail}") from None
    info = SessionInfo(
        requested=resolution.providers,
        active=tuple(session.get_providers()),
        reason=resolution.reason,
        startup_s=time.perf_counter() - started,
    )
    for note in resolution.notes:
        log.info(note)
    log.info("Using execution provider: %s (%s)", info.provider, info.reason)
    if info.fell_back:
        log.warning(
            "ONNX Runtime could not start %s and fell back to %s",
            info.requested[0],
            info.provider,
        )
    return session, info
