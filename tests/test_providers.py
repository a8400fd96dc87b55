"""Provider resolution for every platform and precedence level, without those machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotate.config import Config
from annotate.errors import ConfigError, ProviderError
from annotate.providers import CPU, PlatformInfo, describe, resolve

MAC = PlatformInfo("Darwin", "arm64")
LINUX = PlatformInfo("Linux", "x86_64")
PI = PlatformInfo("Linux", "aarch64")
WINDOWS = PlatformInfo("Windows", "AMD64")
CPU_ONLY = ["AzureExecutionProvider", CPU]
MAC_BUILD = ["CoreMLExecutionProvider", "AzureExecutionProvider", CPU]
GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU]
WIN_BUILD = ["DmlExecutionProvider", CPU]


@pytest.mark.parametrize(
    ("plat", "available", "expected", "reason"),
    [
        (MAC, MAC_BUILD, ("CoreMLExecutionProvider", CPU), "auto: macOS arm64"),
        (MAC, CPU_ONLY, (CPU,), "auto: macOS arm64"),
        (LINUX, GPU_BUILD, ("TensorrtExecutionProvider", "CUDAExecutionProvider", CPU),
         "auto: Linux x86_64"),
        (LINUX, ["CUDAExecutionProvider", CPU], ("CUDAExecutionProvider", CPU),
         "auto: Linux x86_64"),
        (LINUX, ["OpenVINOExecutionProvider", CPU], ("OpenVINOExecutionProvider", CPU),
         "auto: Linux x86_64"),
        (LINUX, CPU_ONLY, (CPU,), "auto: Linux x86_64"),
        (PI, CPU_ONLY, (CPU,), "auto: Linux aarch64"),
        (WINDOWS, WIN_BUILD, ("DmlExecutionProvider", CPU), "auto: Windows AMD64"),
        (WINDOWS, ["CUDAExecutionProvider", "DmlExecutionProvider", CPU],
         ("CUDAExecutionProvider", "DmlExecutionProvider", CPU), "auto: Windows AMD64"),
        # CoreML is a macOS thing: on Linux auto never picks it even if listed.
        (LINUX, MAC_BUILD, (CPU,), "auto: Linux x86_64"),
    ],
)  # fmt: skip
def test_auto_order(plat, available, expected, reason):
    resolution = resolve(None, None, plat, available)
    assert resolution.providers == expected
    assert resolution.reason == reason
    assert "AzureExecutionProvider" not in resolution.providers


def test_auto_fallback_says_why():
    resolution = resolve(None, None, MAC, CPU_ONLY)
    assert resolution.notes == (
        "no accelerator in this onnxruntime build for macOS arm64 (looked for coreml); "
        "using CPUExecutionProvider",
    )
    assert resolve(None, None, MAC, MAC_BUILD).notes == ()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cpu", (CPU,)),
        ("CPU", (CPU,)),
        ("coreml", ("CoreMLExecutionProvider", CPU)),
        ("CoreML", ("CoreMLExecutionProvider", CPU)),
        ("CoreMLExecutionProvider", ("CoreMLExecutionProvider", CPU)),
        ("coremlexecutionprovider", ("CoreMLExecutionProvider", CPU)),
        ("auto", ("CoreMLExecutionProvider", CPU)),
    ],
)
def test_explicit_names(name, expected):
    assert resolve(name, "--provider", MAC, MAC_BUILD).providers == expected


@pytest.mark.parametrize(
    ("name", "available", "plat", "expected"),
    [
        ("cuda", GPU_BUILD, LINUX, "CUDAExecutionProvider"),
        ("tensorrt", GPU_BUILD, LINUX, "TensorrtExecutionProvider"),
        ("directml", WIN_BUILD, WINDOWS, "DmlExecutionProvider"),
        ("openvino", ["OpenVINOExecutionProvider", CPU], LINUX, "OpenVINOExecutionProvider"),
        # An explicit choice beats auto's order.
        ("cpu", GPU_BUILD, LINUX, CPU),
    ],
)
def test_explicit_choice_beats_auto(name, available, plat, expected):
    resolution = resolve(name, "ANNOTATE_PROVIDER", plat, available)
    assert resolution.preferred == expected
    assert resolution.reason == "from ANNOTATE_PROVIDER"


def test_unavailable_provider_names_it_and_the_available_ones():
    with pytest.raises(ProviderError) as info:
        resolve("coreml", "--provider", LINUX, CPU_ONLY)
    assert str(info.value) == (
        "execution provider 'coreml' (CoreMLExecutionProvider) (from --provider) is not "
        "available in this onnxruntime build; available: CPUExecutionProvider"
    )
    assert info.value.exit_code == 2


def test_unavailable_provider_suggests_the_extra():
    with pytest.raises(ProviderError, match="install the 'cuda' extra"):
        resolve("cuda", "--provider", LINUX, CPU_ONLY)


def test_azure_is_never_offered():
    with pytest.raises(ProviderError, match=r"available: CPUExecutionProvider$"):
        resolve("AzureExecutionProvider", "--provider", LINUX, CPU_ONLY)


def test_unknown_provider():
    with pytest.raises(
        ProviderError, match="unknown execution provider 'gpu' \\(from --provider\\)"
    ):
        resolve("gpu", "--provider", LINUX, CPU_ONLY)


def test_describe_marks_auto_choice():
    rows = {name: status for name, _short, status in describe(MAC, MAC_BUILD)}
    assert rows["CoreMLExecutionProvider"] == "auto picks this"
    assert rows[CPU] == "auto fallback"


# Precedence: flag > environment > config in the working directory > user config > auto.


def _config(tmp_path: Path, cwd_text: str | None, user_text: str | None) -> Config:
    cwd, user = tmp_path / "cwd", tmp_path / "user"
    cwd.mkdir()
    user.mkdir()
    if cwd_text is not None:
        (cwd / "annotate.toml").write_text(cwd_text)
    if user_text is not None:
        (user / "annotate.toml").write_text(user_text)
    return Config.load(cwd=cwd, user_dir=user)


@pytest.mark.parametrize(
    ("flag", "env", "cwd_text", "user_text", "value", "origin"),
    [
        ("cuda", "openvino", 'provider = "coreml"', 'provider = "cpu"', "cuda", "--provider"),
        (None, "openvino", 'provider = "coreml"', 'provider = "cpu"', "openvino",
         "ANNOTATE_PROVIDER"),
        (None, None, 'provider = "coreml"', 'provider = "cpu"', "coreml", "annotate.toml"),
        (None, None, None, 'provider = "cpu"', "cpu", "USER"),
        (None, None, None, None, None, None),
    ],
)  # fmt: skip
def test_precedence(tmp_path, flag, env, cwd_text, user_text, value, origin):
    config = _config(tmp_path, cwd_text, user_text)
    environ = {"ANNOTATE_PROVIDER": env} if env else {}
    setting = config.get("provider", flag, "--provider", environ=environ)
    assert setting.value == value
    if origin == "USER":
        origin = str(tmp_path / "user" / "annotate.toml")
    assert setting.origin == origin


def test_config_syntax_error(tmp_path):
    with pytest.raises(ConfigError, match=r"annotate\.toml is not valid TOML"):
        _config(tmp_path, 'provider = "cpu', None)


def test_config_unknown_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'provder'; known keys: provider, model"):
        _config(tmp_path, 'provder = "cpu"', None)


def test_config_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match="'conf' must be a float, got 'high'"):
        _config(tmp_path, 'conf = "high"', None)


@pytest.mark.shared
def test_real_onnxruntime_runs_what_auto_picks_here():
    """On this machine's real build: the session runs on the provider resolution chose."""
    from annotate.detector.session import open_session
    from annotate.providers import resolve_here
    from tests.helpers import MODEL

    session, info = open_session(MODEL, resolve_here(None, None))
    assert info.provider == session.get_providers()[0]
    assert not info.fell_back


def _loader(missing: set[str]):
    def load(name: str) -> object:
        if name in missing:
            raise OSError(f"{name}: cannot open shared object file")
        return object()

    return load


def test_auto_passes_over_tensorrt_when_its_libraries_do_not_load():
    """The GPU wheel lists TensorRT on a CUDA box without it; auto must not pick it (a
    session asking for it waits seconds before falling back)."""
    from annotate.providers import cannot_start

    broken = cannot_start(GPU_BUILD, "Linux", _loader({"libnvinfer.so.10"}))
    assert broken == {"TensorrtExecutionProvider": "libnvinfer.so.10 does not load"}
    auto = resolve(None, None, LINUX, GPU_BUILD, broken)
    assert auto.providers == ("CUDAExecutionProvider", CPU)
    assert auto.notes == (
        "tensorrt is in this onnxruntime build but cannot start here (libnvinfer.so.10 does "
        "not load); auto uses cuda",
    )
    rows = {name: status for name, _, status in describe(LINUX, GPU_BUILD, broken)}
    assert rows["TensorrtExecutionProvider"].startswith("in this build, cannot start")
    assert rows["CUDAExecutionProvider"] == "auto picks this"
    # Asked for by name it is still tried: ONNX Runtime falls back and the run says so.
    assert resolve("tensorrt", "--provider", LINUX, GPU_BUILD, broken).providers[0] == (
        "TensorrtExecutionProvider"
    )


def test_tensorrt_is_kept_where_its_libraries_load():
    from annotate.providers import cannot_start

    assert cannot_start(GPU_BUILD, "Linux", _loader(set())) == {}
    assert cannot_start(["CUDAExecutionProvider", CPU], "Linux", _loader({"x"})) == {}
    broken = cannot_start(GPU_BUILD, "Windows", _loader({"nvinfer_plugin_10.dll"}))
    assert broken == {"TensorrtExecutionProvider": "nvinfer_plugin_10.dll does not load"}


def test_this_machine_lacks_tensorrt_for_real():
    """The real loader here: no TensorRT on this machine, so a GPU build would pass it over."""
    import platform

    from annotate.providers import cannot_start

    if platform.system() != "Linux":
        pytest.skip("the check of a missing library is written for Linux here")
    assert "TensorrtExecutionProvider" in cannot_start(GPU_BUILD, "Linux")
