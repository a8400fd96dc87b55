"""An ONNX Runtime session on the resolved providers, verified after it starts.

:class:`SessionSettings` lives in :mod:`annotate.providers` (the ``--help`` of the CLI reads
its declarations without loading numpy); it is imported here for the session's callers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from annotate.errors import ModelError
from annotate.providers import Resolution, SessionSettings
from annotate.signals import signals_held

if TYPE_CHECKING:
    import onnxruntime

    from annotate.detector.graph import Edits, Made

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


NVIDIA = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider"})


def preload_cuda(ort: Any) -> None:
    """Load CUDA and cuDNN where the onnxruntime-gpu wheel finds them (the ``nvidia-*`` pip
    packages, or PyTorch's), as its documentation asks before a CUDA session; older builds
    have no such call and find them on the system's library path."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as e:  # a missing library shows as the provider's fallback, reported
        log.debug("onnxruntime.preload_dlls: %s", e)


def open_session(
    model: Path,
    resolution: Resolution,
    settings: SessionSettings | None = None,
    edits: Edits | None = None,
    *,
    prepared: bytes | None = None,
    announce: bool = True,
) -> tuple[onnxruntime.InferenceSession, SessionInfo]:
    """Create the session, then log which provider really runs it and warn on fallback.

    ``edits``: the graph edits to try (:mod:`annotate.detector.graph`); where the edited
    model does not load, the file is loaded as it is. ``prepared``: the edited model's bytes
    already made (:func:`edit`), for a second session of the same model. ``announce=False``
    keeps quiet about the provider: a stand-in session's caller says what it stands in for.
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
    if NVIDIA & set(resolution.providers):
        preload_cuda(ort)
    providers = [(p, settings.provider_options(p)) for p in resolution.providers]
    started = time.perf_counter()
    session = None
    if prepared is None:
        made = edit(model, edits)
        prepared = made.data if made is not None else None
    if prepared is not None:
        try:
            session = ort.InferenceSession(prepared, sess_options=options, providers=providers)
        except ort_errors() as e:  # as the file it is, below
            log.debug("%s edited does not load (%s)", model, e)
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
    if announce:
        announce_provider(info, resolution)
    return session, info


def announce_provider(info: SessionInfo, resolution: Resolution) -> None:
    """The start-up lines users read: which provider runs the model, and any fallback."""
    for note in resolution.notes:
        log.info(note)
    log.info("Using execution provider: %s (%s)", info.provider, info.reason)
    if info.fell_back:
        log.warning(
            "ONNX Runtime could not start %s and fell back to %s",
            info.requested[0],
            info.provider,
        )


def edit(model: Path, edits: Edits | None, family: str | None = None) -> Made | None:
    """The model with ``edits`` made (its ``data`` ``None``: load the file as it is), kept
    for later runs (:mod:`annotate.detector.edit_cache`); ``None`` where the model could not
    be looked at or nothing was asked."""
    if not edits:
        return None
    from annotate.detector.edit_cache import cached_edit
    from annotate.detector.graph import edit_model, recipe

    def make() -> Made | None:
        with signals_held():  # protobuf's bare excepts would swallow a KeyboardInterrupt
            return edit_model(model, edits)

    made = cached_edit(model, recipe(edits, family), make)
    if made is not None and made.done:
        log.debug("Model graph edited in memory: %s", ", ".join(made.done))
    return made


class BoundRun:
    """``session.run`` through an IO binding, into an output buffer reused per input shape.

    For accelerator providers: the input is copied once from the caller's (reused) host
    buffer, and the output lands in a buffer kept for that shape, so a call allocates
    nothing on the host. One output: the first, or the first of ``outputs``. With ``batch``
    every call runs that many images, a smaller batch padded with copies of its last image
    (whose outputs are dropped), so the accelerator only ever meets one shape.
    """

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        outputs: list[str] | None = None,
        batch: int | None = None,
    ) -> None:
        self.session = session
        self.batch = batch
        self.input_name = session.get_inputs()[0].name
        self.output_name = outputs[0] if outputs else session.get_outputs()[0].name
        self._outputs: dict[tuple[int, ...], tuple[Any, Any]] = {}
        self._padded: dict[tuple[int, ...], npt.NDArray[np.generic]] = {}

    def __call__(self, blob: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        n = blob.shape[0]
        if self.batch is not None and n < self.batch:
            key = (*blob.shape[1:], blob.dtype.num)
            padded = self._padded.get(key)
            if padded is None:
                padded = self._padded[key] = np.empty((self.batch, *blob.shape[1:]), blob.dtype)
            padded[:n] = blob
            padded[n:] = blob[n - 1]
            return self._call(padded)[:n]
        return self._call(blob)

    def _call(self, blob: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        import onnxruntime as ort

        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, blob)
        kept = self._outputs.get(blob.shape)
        if kept is None:
            binding.bind_output(self.output_name, "cpu")
        else:
            binding.bind_ortvalue_output(self.output_name, kept[1])
        self.session.run_with_iobinding(binding)
        if kept is None:
            output: npt.NDArray[np.float32] = binding.copy_outputs_to_cpu()[0]
            self._outputs[blob.shape] = (output, ort.OrtValue.ortvalue_from_numpy(output))
            return output
        result: npt.NDArray[np.float32] = kept[0]
        return result
