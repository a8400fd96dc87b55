"""Choosing ONNX Runtime execution providers.

Resolution is a pure function of (request, platform, available providers) so it can be tested
for macOS, Linux and Windows on any machine; only :func:`available_providers` touches ONNX
Runtime.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass

from annotate.errors import ProviderError

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
) -> Resolution:
    """Decide which providers to use.

    Args:
        requested: a provider name from the user, or ``None`` for auto.
        origin: where ``requested`` came from, used in messages and the start-up log.
        plat: the operating system and machine.
        available: ``onnxruntime.get_available_providers()`` of this build.

    Raises:
        ProviderError: the requested name is unknown or not in this build.
    """
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
    chosen = tuple(p for p in preferred if p in offered)
    notes: tuple[str, ...] = ()
    if not chosen and preferred:
        notes = (
            f"no accelerator in this onnxruntime build for {plat} "
            f"(looked for {', '.join(short_name(p) for p in preferred)}); using {CPU}",
        )
    chain = (*chosen, CPU)
    return Resolution(chain, f"auto: {plat}", None, notes)


def available_providers() -> list[str]:
    """This onnxruntime build's providers (the only call here that loads ONNX Runtime)."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def resolve_here(requested: str | None, origin: str | None) -> Resolution:
    return resolve(requested, origin, PlatformInfo.current(), available_providers())


def describe(plat: PlatformInfo, available: Sequence[str]) -> list[tuple[str, str, str]]:
    """Rows for ``annotate providers``: (provider, short name, status here)."""
    offered = usable(available)
    auto = resolve(None, None, plat, available)
    order = (*AUTO_ORDER.get(plat.system, ()), CPU)
    names = list(dict.fromkeys([*order, *offered]))
    rows = []
    for name in names:
        if name == auto.preferred:
            status = "auto picks this"
        elif name in auto.providers:
            status = "auto fallback"
        elif name in offered:
            status = "available (use --provider)"
        else:
            extra = EXTRAS.get(name)
            status = "not in this build" + (f" (extra '{extra}')" if extra else "")
        rows.append((name, short_name(name), status))
    return rows
