"""Finding model files by name or path, and the registry of known models.

Known names come from ``registry.toml`` beside this file, plus the user's own registrations
(``annotate models add``) in ``models.toml`` under the user data directory. A named model is
looked for as ``./models/<file>``, then in the user cache; ``annotate models pull`` (or the
first ``annotate run``) downloads it there, verified by sha256.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from annotate.errors import ConfigError, ModelNotFoundError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


#: The family of the registry's face models (``--face-model``).
FACE_FAMILY = "centerface"


@dataclass(frozen=True)
class KnownModel:
    name: str
    file: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    licence: str = "unknown"
    family: str = "auto"
    input: int | None = None
    path: Path | None = None  # registered local file (``annotate models add``)


#: The TOML type of each registry field.
FIELD_TYPES: dict[str, type] = {
    "file": str, "url": str, "sha256": str, "size": int, "licence": str, "family": str,
    "input": int, "path": str,
}  # fmt: skip


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("annotate", appauthor=False)) / "models"


def user_registry_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("annotate", appauthor=False)) / "models.toml"


def _toml(text: str, where: str) -> dict[str, Any]:
    try:
        return dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where} is not valid TOML: {e}") from None


def user_registry() -> dict[str, Any]:
    """The user's registrations as TOML data (empty when there are none), for reading and
    for ``annotate models add`` to change and write back."""
    user = user_registry_path()
    if not user.is_file():
        return {}
    try:
        text = user.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{user} is not valid TOML: it is not UTF-8 text") from None
    return _toml(text, str(user))


def _entries(data: dict[str, Any], where: str) -> dict[str, KnownModel]:
    known = {}
    fields = set(KnownModel.__dataclass_fields__) - {"name"}
    for name, entry in data.items():
        if isinstance(entry, dict):  # older registrations wrote a "labels" key nothing read
            entry = {k: v for k, v in entry.items() if k != "labels"}
        if not isinstance(entry, dict) or "file" not in entry or set(entry) - fields:
            raise ConfigError(f"{where}: entry '{name}' needs 'file' and only known fields")
        for key, value in entry.items():
            kind = FIELD_TYPES[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                wanted = "whole number" if kind is int else "string"
                raise ConfigError(f"{where}: '{name}.{key}' must be a {wanted}, got {value!r}")
        if "path" in entry:
            entry = {**entry, "path": Path(entry["path"])}
        known[name.lower()] = KnownModel(name=name.lower(), **entry)
    return known


def registry() -> dict[str, KnownModel]:
    """Built-in names, overridden by the user's registrations."""
    builtin = (files("annotate.models") / "registry.toml").read_text(encoding="utf-8")
    known = _entries(_toml(builtin, "registry.toml"), "registry.toml")
    known.update(_entries(user_registry(), str(user_registry_path())))
    return known


def search_dirs(cwd: Path | None = None) -> list[Path]:
    """Where a named model is looked for: ``./models`` first, then the user cache."""
    return [(Path.cwd() if cwd is None else cwd) / "models", cache_dir()]


def local_path(entry: KnownModel, cwd: Path | None = None) -> Path | None:
    """Where this model already is on disk, if anywhere."""
    if entry.path is not None and entry.path.is_file():
        return entry.path
    for directory in search_dirs(cwd):
        if (directory / entry.file).is_file():
            return directory / entry.file
    return None


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".onnx") or "/" in spec or "\\" in spec or Path(spec).exists()


def find_model(
    spec: str,
    origin: str | None = None,
    cwd: Path | None = None,
    download: Callable[[KnownModel], Path] | None = None,
) -> Path:
    """Turn ``--model`` (a path or a known name) into an existing file.

    A known name that is not on disk is fetched with ``download`` when one is given.

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
    known = registry()
    faces = origin == "--face-model"
    # Face models answer to --face-model, object models to the rest.
    fitting = sorted(n for n, e in known.items() if (e.family == FACE_FAMILY) == faces)
    entry = known.get(spec.lower())
    if entry is None:
        raise UsageError(
            f"unknown model '{spec}'{where}; give a path to an .onnx file or one of: "
            + ", ".join(fitting)
        )
    if (entry.family == FACE_FAMILY) != faces:
        what = "a face model: give it to --face-model" if not faces else "not a face model"
        raise UsageError(f"model '{spec}'{where} is {what}; known: {', '.join(fitting)}")
    found = local_path(entry, cwd)
    if found is not None:
        return found
    if download is not None and entry.url:
        return download(entry)
    dirs = search_dirs(cwd)
    source = f" (from {entry.url})" if entry.url else ""
    raise ModelNotFoundError(
        f"model '{entry.name}' not found: put {entry.file}{source} in "
        f"{dirs[0]} or {dirs[1]}, or pass --model PATH"
    )
