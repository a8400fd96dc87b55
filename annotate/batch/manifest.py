"""``OUTDIR/manifest.jsonl``: one record per input, appended as each finishes, so a killed
batch still says what it finished and ``--resume`` knows what to skip."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotate.batch.inputs import Job
from annotate.errors import OutputError, OutputPathError

if TYPE_CHECKING:
    from annotate.pipeline import RunOptions

log = logging.getLogger("annotate")

MANIFEST = "manifest.jsonl"
STATUSES = ("done", "failed", "skipped")


@dataclass
class Record:
    """What the manifest says about one input (one JSON line)."""

    input: str
    status: str  # done, failed or skipped
    outputs: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    error: str | None = None  # one line, for failed and skipped
    warnings: list[str] = field(default_factory=list)
    identity: dict[str, Any] = field(default_factory=dict)  # see identity()
    settings_id: str = ""
    provider: str = ""
    host: str = field(default_factory=socket.gethostname)
    finished: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def to_json(self, settings: dict[str, Any]) -> str:
        return json.dumps({**asdict(self), "settings": settings}, ensure_ascii=False)


def identity(job: Job) -> dict[str, Any]:
    """What tells an input apart from an edited or replaced one: size and modification time
    (for an image set: how many images, their total size and the latest time)."""
    stats = [p.stat() for p in job.inputs]
    identity: dict[str, Any] = {
        "size": sum(s.st_size for s in stats),
        "mtime": datetime.fromtimestamp(max(s.st_mtime for s in stats), timezone.utc).isoformat(),
    }
    if job.image_set:
        identity["images"] = len(stats)
    return identity


def settings(options: RunOptions, model_sha256: str, video: bool, json_: bool) -> dict[str, Any]:
    """The settings that change what a job writes (not how fast: threads, provider): every
    setting declared with ``outputs`` (:mod:`annotate.settings`), the model, and what the
    batch writes."""
    from annotate.pipeline.options import RunOptions
    from annotate.settings import declared, plain, value_at

    chosen = {
        d.name: plain(value_at(options, d.path)) for d in declared(RunOptions) if d.setting.outputs
    }
    chosen["model"] = Path(options.model).name  # the file's bytes are model_sha256
    return {**chosen, "model_sha256": model_sha256, "video": video, "json": json_}


def settings_id(settings: dict[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Manifest:
    """Appends one line per record, each written whole with one ``write`` and flushed to
    disk, so a crash leaves at most a torn last line (skipped when read back)."""

    def __init__(self, outdir: Path) -> None:
        self.path = outdir / MANIFEST

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last record for each input; lines that are not records (a line torn by a
        crash, bytes written over the file) are skipped with a warning."""
        records: dict[str, dict[str, Any]] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return records
        except OSError as e:
            raise OutputError(f"cannot read {self.path}: {e.strerror}") from None
        bad = 0
        for line in data.splitlines():
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                bad += bool(line.strip())
                continue
            if isinstance(record, dict) and isinstance(record.get("input"), str):
                records[record["input"]] = record
            else:
                bad += 1
        if bad:
            what = "line that is not a record" if bad == 1 else "lines that are not records"
            log.warning("%s: skipped %d %s (cut short or damaged)", self.path, bad, what)
        return records

    def append(self, line: str) -> None:
        """One record, on a line of its own even after a torn last line."""
        data = (line + "\n").encode()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size and not self._ends_a_line(fd):
                    log.warning(
                        "%s ended in a line cut short; the next record starts a new line", self.path
                    )
                    data = b"\n" + data
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror}") from None

    @staticmethod
    def _ends_a_line(fd: int) -> bool:
        os.lseek(fd, -1, os.SEEK_END)
        return os.read(fd, 1) == b"\n"


def check_manifest_path(outdir: Path, jobs: Sequence[Job]) -> None:
    """The manifest is appended to: it must be a file of its own, never a link (to an input,
    or to anything else) nor an input under another name."""
    path = outdir / MANIFEST
    if path.is_symlink():
        raise OutputPathError(
            f"{path} is a symbolic link (to {os.readlink(path)}); the batch "
            "appends its records there: remove the link"
        )
    if path.exists() and not path.is_file():
        raise OutputPathError(f"{path} is not a file; the batch writes its records there")
    for job in jobs:
        for source in job.inputs:
            if path.exists() and os.path.samefile(path, source):
                raise OutputPathError(
                    f"{path} is the input {source} (a hard link); the batch "
                    "appends its records there: remove it"
                )


def is_done(record: dict[str, Any] | None, job: Job, outputs: list[Path], wanted: str) -> bool:
    """Whether ``--resume`` may skip ``job``: done before, with the same input and settings,
    and every output still there."""
    return (
        record is not None
        and record.get("status") == "done"
        and record.get("settings_id") == wanted
        and record.get("identity") == identity(job)
        and all(p.exists() for p in outputs)  # files, and a YOLO export's folder
    )
