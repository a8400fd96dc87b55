"""Choosing ONNX Runtime execution providers.

Resolution is a pure function of (request, platform, available providers) so it can be tested
for macOS, Linux and Windows on any machine; only :func:`available_providers` touches ONNX
Runtime.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotate.errors import ProviderError
from annotate.settings import RUN_ONLY, SPEED, setting

CPU = "CPUExecutionProvider"
AZURE = "AzureExecutionProvider"

#: Short names users type, mapped to ONNX Runtime's names.
SHORT_NAMES: dict[str, str] = {
    "cpu": CPU,
    "coreml": "CoreMLExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
}

#: Accelerators that get the process's one batching inference service
#: (:mod:`annotate.detector.service`): one session, batches from every worker, the model's
#: batch axis freed and its input packed. The CPU provider keeps its workers' own calls, which
#: measure better there (docs/performance.md); CoreML and OpenVINO keep the fixed graphs they
#: compile.
BATCHING = frozenset(
    {
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
        "ROCMExecutionProvider",
        "MIGraphXExecutionProvider",
        "DmlExecutionProvider",
    }
)

#: Which pip extra brings a provider, for error messages.
EXTRAS: dict[str, str] = {
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "cuda",
    "OpenVINOExecutionProvider": "openvino",
    "DmlExecutionProvider": "directml",
}

#: Auto preference per operating system (``platform.system()``), best first. CPU always ends it.
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "Darwin": ("CoreMLExecutionProvider",),
    "Linux": (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "MIGraphXExecutionProvider",
        "ROCMExecutionProvider",
        "OpenVINOExecutionProvider",
    ),
    "Windows": (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "DmlExecutionProvider",
        "OpenVINOExecutionProvider",
    ),
}

_OS_NAMES = {"Darwin": "macOS"}


@dataclass(frozen=True)
class PlatformInfo:
    system: str
    machine: str

    @classmethod
    def current(cls) -> PlatformInfo:
        return cls(platform.system(), platform.machine())

    def __str__(self) -> str:
        return f"{_OS_NAMES.get(self.system, self.system)} {self.machine}"


@dataclass(frozen=True)
class Resolution:
    """The providers to ask ONNX Runtime for, best first, and why.

    ``origin`` is ``None`` for auto, else where the request came from (``--provider``,
    ``ANNOTATE_PROVIDER``, ``annotate.toml``). ``notes`` explain auto's fallbacks.
    """

    providers: tuple[str, ...]
    reason: str
    origin: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def preferred(self) -> str:
        return self.providers[0]


def usable(available: Sequence[str]) -> list[str]:
    """Providers worth offering: Azure runs models remotely, never what a user here wants."""
    return [p for p in available if p != AZURE]


def canonical_name(name: str) -> str | None:
    """Map a short or full provider name, in any case, to ONNX Runtime's spelling."""
    key = name.strip().lower()
    if key in SHORT_NAMES:
        return SHORT_NAMES[key]
    full = {v.lower(): v for v in SHORT_NAMES.values()}
    if key in full:
        return full[key]
    if key.endswith("executionprovider"):
        return name.strip()
    return None


def short_name(provider: str) -> str:
    for short, full in SHORT_NAMES.items():
        if full == provider:
            return short
    return provider


def resolve(
    requested: str | None,
    origin: str | None,
    plat: PlatformInfo,
    available: Sequence[str],
    broken: Mapping[str, str] | None = None,
) -> Resolution:
    """Decide which providers to use.

    Args:
        requested: a provider name from the user, or ``None`` for auto.
        origin: where ``requested`` came from, used in messages and the start-up log.
        plat: the operating system and machine.
        available: ``onnxruntime.get_available_providers()`` of this build.
        broken: providers of this build that cannot start here, and why
            (:func:`cannot_start`): auto passes them over; asked for by name, they are
            tried (ONNX Runtime then falls back, and the run says so).

    Raises:
        ProviderError: the requested name is unknown or not in this build.
    """
    broken = broken or {}
    offered = usable(available)
    if requested is not None and requested.strip().lower() != "auto":
        name = canonical_name(requested)
        where = f" (from {origin})" if origin else ""
        if name is None:
            known = ", ".join(sorted(set(SHORT_NAMES) - {"dml"}))
            raise ProviderError(
                f"unknown execution provider '{requested}'{where}; use one of: {known}, auto, "
                "or a full ONNX Runtime name"
            )
        if name not in offered:
            extra = EXTRAS.get(name)
            hint = f"; install the '{extra}' extra" if extra else ""
            raise ProviderError(
                f"execution provider '{requested}' ({name}){where} is not available in this "
                f"onnxruntime build; available: {', '.join(offered)}{hint}"
            )
        chain = (name,) if name == CPU else (name, CPU)
        return Resolution(chain, f"from {origin}" if origin else "requested", origin)

    preferred = AUTO_ORDER.get(plat.system, ())
    chosen = tuple(p for p in preferred if p in offered and p not in broken)
    passed = [p for p in preferred if p in offered and p in broken]
    notes = tuple(
        f"{short_name(p)} is in this onnxruntime build but cannot start here ({broken[p]}); "
        f"auto uses {short_name((*chosen, CPU)[0])}"
        for p in passed
    )
    if not chosen and preferred and not passed:
        notes = (
            f"no accelerator in this onnxruntime build for {plat} "
            f"(looked for {', '.join(short_name(p) for p in preferred)}); using {CPU}",
        )
    return Resolution((*chosen, CPU), f"auto: {plat}", None, notes)


#: Libraries a provider loads only once a session asks for it, by file name per system: a
#: build lists the provider whether or not they are installed. TensorRT's are not among the
#: CUDA libraries the onnxruntime-gpu wheel brings or finds, so a CUDA box without TensorRT
#: lists it, and a session asking for it waits seconds before falling back.
NEEDS: dict[str, dict[str, tuple[str, ...]]] = {
    "TensorrtExecutionProvider": {
        "Linux": ("libnvinfer.so.10", "libnvinfer_plugin.so.10"),
        "Windows": ("nvinfer_10.dll", "nvinfer_plugin_10.dll"),
    },
}


def cannot_start(
    available: Sequence[str],
    system: str,
    load: Callable[[str], object] | None = None,
) -> dict[str, str]:
    """Providers of this build whose own libraries do not load here, and why. ``load``
    opens a library by name, raising ``OSError`` where it cannot (``ctypes.CDLL``)."""
    if load is None:
        import ctypes

        load = ctypes.CDLL
    broken = {}
    for provider, systems in NEEDS.items():
        if provider not in available:
            continue
        for library in systems.get(system, ()):
            try:
                load(library)
            except OSError:
                broken[provider] = f"{library} does not load"
                break
    return broken


def available_providers() -> list[str]:
    """This onnxruntime build's providers (the only call here that loads ONNX Runtime)."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def resolve_here(requested: str | None, origin: str | None) -> Resolution:
    plat, available = PlatformInfo.current(), available_providers()
    return resolve(requested, origin, plat, available, cannot_start(available, plat.system))


def describe(
    plat: PlatformInfo, available: Sequence[str], broken: Mapping[str, str] | None = None
) -> list[tuple[str, str, str]]:
    """Rows for ``annotate providers``: (provider, short name, status here)."""
    offered = usable(available)
    broken = broken or {}
    auto = resolve(None, None, plat, available, broken)
    order = (*AUTO_ORDER.get(plat.system, ()), CPU)
    names = list(dict.fromkeys([*order, *offered]))
    rows = []
    for name in names:
        if name == auto.preferred:
            status = "auto picks this"
        elif name in auto.providers:
            status = "auto fallback"
        elif name in broken:
            status = f"in this build, cannot start: {broken[name]}"
        elif name in offered:
            status = "available (use --provider)"
        else:
            extra = EXTRAS.get(name)
            status = "not in this build" + (f" (extra '{extra}')" if extra else "")
        rows.append((name, short_name(name), status))
    return rows


# --- Session settings: the knobs users tune, per provider ---------------------------------

GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
COREML_FORMATS = ("MLProgram", "NeuralNetwork")
COREML_UNITS = ("ALL", "CPUAndNeuralEngine", "CPUAndGPU", "CPUOnly")
OPENVINO_PRECISIONS = ("FP32", "FP16", "ACCURACY")
CUDNN_SEARCHES = ("heuristic", "exhaustive", "default")
CUDA_DEPTHWISE = ("dense", "grouped")


def provider_cache_dir(name: str) -> Path:
    """Where a provider keeps what it compiled, for the next run's start-up."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("annotate", appauthor=False)) / name


def coreml_cache_dir() -> Path:
    return provider_cache_dir("coreml")


@dataclass(frozen=True)
class SessionSettings:
    """The knobs users tune, shown in ``annotate bench`` reports.

    CoreML defaults: ``MLProgram`` (the newer format, more operators, FP16 on the Neural
    Engine), every compute unit, and a compiled-model cache so the second start is fast.
    """

    threads: int | None = setting(
        None,
        flags=("--threads",),
        commands=RUN_ONLY,
        detector=True,
        example=2,
        panel=SPEED,
        show_default=False,
        help="ONNX Runtime intra-op threads [default: from the thread plan]",
    )
    graph_opt: str = "all"
    coreml_format: str = "MLProgram"
    coreml_units: str = "ALL"
    coreml_cache: Path | None = None
    openvino_device: str | None = None  # CPU, GPU, NPU, AUTO:GPU,CPU …; None: OpenVINO's
    openvino_precision: str | None = None  # FP32, FP16, ACCURACY; None: the device's default
    #: Whether intra-op threads spin between the parallel steps of a ``run`` (``True``:
    #: they stop as soon as it returns, so they do not take the cores that decoding and
    #: encoding need between runs); ``None`` leaves ONNX Runtime's default, spinning for a
    #: while after each run too. The pipeline chooses per mode (``plan.spinning_for``).
    spinning: bool | None = None
    #: How cuDNN picks each convolution's algorithm on CUDA. ``exhaustive`` (ONNX Runtime's
    #: default) times every candidate for each new input shape, and the inference service
    #: runs up to six batch shapes; ``heuristic`` asks cuDNN's heuristics at no cost.
    cudnn_search: str = setting(
        "heuristic",
        flags=("--cudnn-search",),
        parse=str.lower,
        commands=RUN_ONLY,
        detector=True,
        example="exhaustive",
        panel=SPEED,
        help="How cuDNN picks convolution algorithms on CUDA: heuristic (starts at once), "
        "exhaustive (times each for every batch shape first), default",
    )
    #: How CUDA runs a detector's depthwise convolutions (YOLOX-Nano's). ``dense``: each
    #: made the dense convolution it equals (:mod:`annotate.detector.graph`), for which cuDNN
    #: has kernels ready; ``grouped``: as exported, for which cuDNN compiles kernels at every
    #: process start, for seconds (docs/performance.md, "GPU").
    cuda_depthwise: str = setting(
        "dense",
        flags=("--cuda-depthwise",),
        parse=str.lower,
        commands=RUN_ONLY,
        detector=True,
        example="grouped",
        panel=SPEED,
        help="How CUDA runs a detector's depthwise convolutions: dense (kernels cuDNN has "
        "ready; starts seconds sooner) or grouped (as exported; cuDNN compiles them at every "
        "start)",
    )
    #: On a batching accelerator, a CPU session detects the first frames while the
    #: accelerator's own session starts (seconds on CUDA, minutes for TensorRT's engines).
    #: ``None``: for live sources, where the first frame is what counts, and for a file
    #: with a light model (``defaults.STAND_IN_MAX_BYTES``): its first frame comes at once
    #: and the run ends sooner; a heavy model's waits (docs/performance.md, "GPU").
    cpu_start: bool | None = setting(
        None,
        flags=("--cpu-start/--no-cpu-start",),
        commands=RUN_ONLY,
        detector=True,
        cli_type=bool,
        cli_default=None,
        show_default=False,
        example=True,
        panel=SPEED,
        help="On a GPU, detect on the CPU until the GPU's session is ready, so the first "
        "frames come at once [default: for cameras and streams, and for files with a light "
        "model]",
    )

    def check(self) -> None:
        from annotate.errors import UsageError, check_at_least

        if self.threads is not None:
            check_at_least("--threads", self.threads, 1)
        for value, allowed, flag in (
            (self.graph_opt, GRAPH_OPT_LEVELS, "--graph-opt"),
            (self.coreml_format, COREML_FORMATS, "--coreml-format"),
            (self.coreml_units, COREML_UNITS, "--coreml-units"),
            (self.openvino_precision or "FP32", OPENVINO_PRECISIONS, "--openvino-precision"),
            (self.cudnn_search, CUDNN_SEARCHES, "--cudnn-search"),
            (self.cuda_depthwise, CUDA_DEPTHWISE, "--cuda-depthwise"),
        ):
            if value not in allowed:
                raise UsageError(f"{flag} must be one of {', '.join(allowed)}, got '{value}'")

    def provider_options(self, provider: str) -> dict[str, str]:
        if provider == "OpenVINOExecutionProvider":
            chosen = (("device_type", self.openvino_device), ("precision", self.openvino_precision))
            return {key: value for key, value in chosen if value}
        if provider == "CUDAExecutionProvider":
            # Never ``fuse_conv_bias``: it starts YOLOX-Nano a second sooner, but its outputs
            # are wrong and grow with every call (docs/performance.md, "GPU").
            return {"cudnn_conv_algo_search": self.cudnn_search.upper()}
        if provider == "TensorrtExecutionProvider":
            # Building an engine takes from seconds to minutes: kept for the next run.
            engines = provider_cache_dir("tensorrt")
            engines.mkdir(parents=True, exist_ok=True)
            return {
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(engines),
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": str(engines),
            }
        if provider != "CoreMLExecutionProvider":
            return {}
        cache = self.coreml_cache or coreml_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        return {
            "ModelFormat": self.coreml_format,
            "MLComputeUnits": self.coreml_units,
            "ModelCacheDirectory": str(cache),
        }

    def describe(self) -> dict[str, Any]:
        spinning = "default" if self.spinning is None else "during runs" if self.spinning else "off"
        return {
            "threads": self.threads or "default",
            "spinning": spinning,
            "graph_opt": self.graph_opt,
            "coreml_format": self.coreml_format,
            "coreml_units": self.coreml_units,
            "coreml_cache": str(self.coreml_cache or coreml_cache_dir()),
            "openvino_device": self.openvino_device or "default",
            "openvino_precision": self.openvino_precision or "default",
            "cudnn_search": self.cudnn_search,
            "cuda_depthwise": self.cuda_depthwise,
            "cpu_start": "auto" if self.cpu_start is None else self.cpu_start,
        }
