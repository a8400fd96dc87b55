"""Finding model files by name or path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annotate.errors import ModelNotFoundError, UsageError

DEFAULT_MODEL = "yolox-nano"


@dataclass(frozen=True)
class KnownModel:
    name: str
    filename: str
    url: str
    licence: str


KNOWN: dict[str, KnownModel] = {
    "yolox-nano": KnownModel(
        "yolox-nano",
        "yolox_nano.onnx",
        "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx",
        "Apache-2.0",
    ),
}


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("annotate", appauthor=False)) / "models"


def search_dirs(cwd: Path | None = None) -> list[Path]:
    """Where a named model is looked for: ``./models`` first, then the user cache."""
    return [(Path.cwd() if cwd is None else cwd) / "models", cache_dir()]


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".onnx") or "/" in spec or "\\" in spec or Path(spec).exists()


def find_model(spec: str, origin: str | None = None, cwd: Path | None = None) -> Path:
    """Turn ``--model`` (a path or a known name) into an existing file.

    Raises:
        ModelNotFoundError: the file is not there; the message says where to put it.
        UsageError: the name is neither a path nor a known model.
    """
    where = f" (from {origin})" if origin else ""
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if path.is_dir():
            raise UsageError(f"model path {spec}{where} is a directory; give the .onnx file")
        if not path.is_file():
            raise ModelNotFoundError(f"model file {spec}{where} does not exist")
        return path
    known = KNOWN.get(spec.lower())
    if known is None:
        raise UsageError(
            f"unknown model '{spec}'{where}; give a path to an .onnx file or one of: "
            + ", ".join(KNOWN)
        )
    dirs = search_dirs(cwd)
    for d in dirs:
        if (d / known.filename).is_file():
            return d / known.filename
    raise ModelNotFoundError(
        f"model '{known.name}' not found: put {known.filename} (from {known.url}) in "
        f"{dirs[0]} or {dirs[1]}, or pass --model PATH"
    )
