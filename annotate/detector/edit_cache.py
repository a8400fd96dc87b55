"""Edited graphs kept between runs, in the user cache directory.

Editing a model needs the ``onnx`` package, whose import (with its ``ml_dtypes`` dependency)
can take longer than the rest of a run's start-up together, and a large model's parse and
serialisation more still. The first run with a model pays that once; later runs read the
edited bytes back. An entry is found by the model's content, the edits asked for and the
editing code itself, so a changed model or a newer ``annotate`` never gets a stale graph.
Anything wrong with the cache (unwritable, damaged, full disk) only means editing again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from annotate.detector.graph import Made

log = logging.getLogger("annotate")

#: Entries kept; the least recently used go first.
KEEP = 16
#: The modules whose code decides what an edit makes.
EDITING_CODE = ("graph.py", "__init__.py", "families.py")


def cache_dir() -> Path:
    from annotate.providers import provider_cache_dir

    return provider_cache_dir("graphs")


@functools.lru_cache(maxsize=1)
def _code_digest() -> bytes:
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in EDITING_CODE:
        digest.update((here / name).read_bytes())
    return digest.digest()


def entry_key(model: Path, recipe: str) -> str | None:
    """The entry's name for this model file's content and ``recipe``; ``None`` where the
    file cannot be read (loading it reports why)."""
    digest = hashlib.sha256()
    try:
        with open(model, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    digest.update(recipe.encode())
    digest.update(_code_digest())
    return digest.hexdigest()[:40]


def _read(folder: Path, key: str) -> Made | None:
    try:
        notes = json.loads((folder / f"{key}.json").read_text())
        done = [str(n) for n in notes["done"]]
        data = (folder / f"{key}.onnx").read_bytes() if done else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if data is not None and len(data) != notes.get("bytes"):
        return None  # cut short
    os.utime(folder / f"{key}.json")  # recently used
    return Made(data, done)


def _write(folder: Path, key: str, edited: Made) -> None:
    data, done = edited
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Bytes first, then the notes that make the entry count: a reader never sees half.
        if data is not None:
            _atomic(folder / f"{key}.onnx", data)
        notes = {"done": done, "bytes": None if data is None else len(data)}
        _atomic(folder / f"{key}.json", json.dumps(notes).encode())
        _prune(folder)
    except OSError as e:
        log.debug("cannot keep the edited graph in %s (%s)", folder, e)


def _atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prune(folder: Path) -> None:
    notes = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in notes[KEEP:]:
        for path in (old, old.with_suffix(".onnx")):
            path.unlink(missing_ok=True)


def cached_edit(model: Path, recipe: str, make: Callable[[], Made | None]) -> Made | None:
    """``make()``'s result for this model and recipe, from the cache when an earlier run
    made it. ``make()`` returning ``None`` (the model could not be looked at) is not kept."""
    key = entry_key(model, recipe)
    if key is None:
        return make()
    folder = cache_dir()
    kept = _read(folder, key)
    if kept is not None:
        log.debug("Edited graph read from %s", folder)
        return kept
    edited = make()
    if edited is not None:
        _write(folder, key, edited)
    return edited
