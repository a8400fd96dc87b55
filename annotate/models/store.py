"""Downloading known models (verified by sha256, renamed into place atomically) and
registering local files for machines without internet."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from annotate.errors import ConfigError, ModelError, UsageError
from annotate.models import (
    KnownModel,
    cache_dir,
    registry,
    search_dirs,
    user_registry,
    user_registry_path,
)

log = logging.getLogger("annotate")

MIRROR_ENV = "ANNOTATE_MODEL_MIRROR"
#: What ``models add --name`` takes: a name that reads the same in TOML, shells and messages.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
CHUNK = 1 << 16
TIMEOUT_S = 30  # per connection attempt and per read: a stalled server fails, not hangs

#: progress(done_bytes, total_bytes_or_None)
DownloadProgress = Callable[[int, int | None], None]


def download_url(entry: KnownModel, environ: dict[str, str] | None = None) -> str:
    """The official URL, or the mirror's (same file name) when ``ANNOTATE_MODEL_MIRROR`` is set."""
    mirror = (os.environ if environ is None else environ).get(MIRROR_ENV, "").strip()
    if not entry.url:
        raise UsageError(
            f"model '{entry.name}' has no download URL; add it with 'annotate models add FILE'"
        )
    if mirror:
        if not mirror.lower().startswith(("http://", "https://")):
            raise ConfigError(f"{MIRROR_ENV} must be an http:// or https:// URL, got {mirror!r}")
        return f"{mirror.rstrip('/')}/{entry.url.rsplit('/', 1)[-1]}"
    return entry.url


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def pull(
    entry: KnownModel, progress: DownloadProgress | None = None, dest: Path | None = None
) -> Path:
    """Download ``entry`` into the cache; the file appears only once its sha256 is right.

    Raises:
        ModelError: unreachable, interrupted, or the wrong bytes (the partial file is deleted).
    """
    dest = dest or cache_dir()
    url = download_url(entry)
    target = dest / entry.file
    dest.mkdir(parents=True, exist_ok=True)
    part = dest / f".{entry.file}.{os.getpid()}.part"
    offline = (
        f"; offline? put {entry.file} in {search_dirs()[0]} or {dest}, register it with "
        "'annotate models add FILE', or pass --model PATH"
    )
    log.info("Downloading %s from %s", entry.name, url)
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, part.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else entry.size
            # Never more than the registry says the file is: a server that sends an endless
            # (or wrong) body is stopped at the known size instead of filling the disk.
            limit = entry.size if entry.size else None
            while block := response.read(CHUNK):
                if limit is not None and done + len(block) > limit:
                    raise ModelError(
                        f"download of {entry.name} from {url} sent more than the "
                        f"expected {limit} bytes; the file was deleted"
                    )
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if total is not None and done != total:
            raise ModelError(
                f"download of {entry.name} from {url} stopped at {done} of {total} bytes; try again"
            )
        actual = digest.hexdigest()
        if entry.sha256 and actual != entry.sha256:
            raise ModelError(
                f"download of {entry.name} from {url} has sha256 {actual}, expected "
                f"{entry.sha256}; the file was deleted"
            )
        os.replace(part, target)
        if not entry.sha256:
            trust(replace(entry, sha256=actual, size=done))
    except urllib.error.HTTPError as e:
        raise ModelError(
            f"cannot download {entry.name} from {url}: HTTP {e.code}{offline}"
        ) from None
    except (
        urllib.error.URLError,
        TimeoutError,
        ConnectionError,
        http.client.HTTPException,
        OSError,
        ValueError,
    ) as e:
        reason = getattr(e, "reason", None) or e
        reason = getattr(reason, "strerror", None) or reason
        if isinstance(e, http.client.IncompleteRead):
            reason = f"the connection closed after {done} bytes"
        raise ModelError(f"cannot download {entry.name} from {url}: {reason}{offline}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    checked = "sha256 verified" if entry.sha256 else "trusted on first download"
    log.info("Saved %s (%d bytes, %s) to %s", entry.name, done, checked, target)
    return target


def trust(entry: KnownModel) -> None:
    """Record the hash of a model first downloaded without one to check against (the
    registry could not list it: its publisher gives none, and it could not be fetched to
    hash offline). Later downloads must match it, as for a model with a published hash."""
    log.warning(
        "%s: no published sha256 to check it against, so this first download is trusted "
        "as it is (sha256 %s); recorded in %s, later downloads must match it",
        entry.name,
        entry.sha256,
        user_registry_path(),
    )
    _save_user_entry(entry)


def add(path: Path, name: str | None = None) -> KnownModel:
    """Register a local file. A file that is a known model (same sha256) is copied into the
    cache under that name; any other file is registered by name, where it is."""
    if not path.is_file():
        raise UsageError(f"{path} is not a file")
    if name is not None and not NAME.fullmatch(name.lower()):
        raise UsageError(
            f"model name {name!r} must be letters, digits, '.', '_' or '-' (and "
            "start with a letter or digit)"
        )
    digest = sha256_of(path)
    known = registry()
    match = next((e for e in known.values() if e.sha256 == digest), None)
    if match and (name is None or name.lower() == match.name):
        dest = cache_dir()
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / match.file)
        log.info("%s is %s (sha256 matches); copied to %s", path, match.name, dest / match.file)
        return match
    name = (name or path.stem).lower().replace("_", "-")
    previous = known.get(name)
    if previous is not None and previous.sha256 and previous.sha256 != digest:
        log.warning(
            "%s differs from the known %s (sha256 %s, expected %s); registered as given",
            path,
            name,
            digest,
            previous.sha256,
        )
    entry = KnownModel(
        name=name,
        file=path.name,
        sha256=digest,
        size=path.stat().st_size,
        licence=previous.licence if previous else "unknown",
        family=previous.family if previous else "auto",
        path=path.resolve(),
    )
    _save_user_entry(entry)
    return entry


def _save_user_entry(entry: KnownModel) -> None:
    """Add or replace one name in the user's registry: the file is read as TOML, changed as
    data and written whole to a temporary file that replaces it, so a hand-edited table of
    the same name is replaced (never duplicated) and a crash leaves the old file."""
    import tomli_w

    target = user_registry_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    data = user_registry()
    fields = {
        "file": entry.file,
        "url": entry.url,
        "sha256": entry.sha256,
        "size": entry.size,
        "licence": entry.licence,
        "family": entry.family,
        "input": entry.input,
        "path": str(entry.path) if entry.path is not None else None,
    }
    data = {k: v for k, v in data.items() if k.lower() != entry.name}
    data[entry.name] = {k: v for k, v in fields.items() if v is not None}
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    os.replace(tmp, target)
