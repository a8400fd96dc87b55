"""An ONNX Runtime session on the resolved providers, verified after it starts.

:class:`SessionSettings` lives in :mod:`annotate.providers` (the ``--help`` of the CLI reads
its declarations without loading numpy); it is imported here for the session's callers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from annotate.errors import ModelError
from annotate.providers import CPU, Resolution, SessionSettings
from annotate.signals import signals_held

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


def ort_errors() -> tuple[type[BaseException], ...]:
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
    settings: SessionSettings | None = None,
    free_size: bool = False,
) -> tuple[onnxruntime.InferenceSession, SessionInfo]:
    """Create the session, then log which provider really runs it and warn on fallback.

    ``free_size``: let the model take inputs of other heights and widths (a fitted canvas)
    where the CPU provider runs it; accelerators keep the fixed size they compile for.
    """
    import onnxruntime as ort

    settings = settings or SessionSettings()
    # A provider that cannot start prints its own multi-line error before falling back; the
    # fallback is reported below in one line instead.
    ort.set_default_logger_severity(4)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's own warnings are noise for users; we report below
    if settings.threads:
        options.intra_op_num_threads = settings.threads
    if settings.spinning is not None:
        spin = "1" if settings.spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        # Spinning threads only wait for work inside a run; between runs they would burn a
        # core each (docs/performance.md, "Spinning per mode").
        options.add_session_config_entry("session.force_spinning_stop", spin)
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = {
        "disable": level.ORT_DISABLE_ALL,
        "basic": level.ORT_ENABLE_BASIC,
        "extended": level.ORT_ENABLE_EXTENDED,
        "all": level.ORT_ENABLE_ALL,
    }[settings.graph_opt]
    providers = [(p, settings.provider_options(p)) for p in resolution.providers]
    started = time.perf_counter()
    session = None
    if free_size and resolution.providers[0] == CPU:
        from annotate.detector.canvas import free_size_model

        with signals_held():  # protobuf's bare excepts would swallow a KeyboardInterrupt
            freed = free_size_model(model)
        if freed is not None:
            try:
                session = ort.InferenceSession(freed, sess_options=options, providers=providers)
            except ort_errors() as e:  # as the file it is, below
                log.debug("%s with a free input size does not load (%s)", model, e)
    try:
        if session is None:
            session = ort.InferenceSession(str(model), sess_options=options, providers=providers)
    except ort_errors() as e:
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
