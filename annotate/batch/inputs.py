"""What ``annotate batch`` reads: INPUT arguments → one job per video or image folder, each
with the output names it will write under OUTDIR."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from annotate.errors import OutputPathError, SourceNotFoundError, UsageError
from annotate.sources import is_image

#: Files a directory walk takes as videos. A file named on the command line is tried as a
#: video whatever its extension (cameras write .dav, .h264, …).
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
     ".wmv", ".flv", ".3gp", ".ogv", ".h264", ".h265", ".hevc"}
)  # fmt: skip
#: The JSON Lines file of an image folder, beside its annotated images.
IMAGES_JSON = "images.jsonl"
#: Outputs are written under a name starting with this and renamed when complete.
PARTIAL = ".annotate-partial-"
#: What each ``--export`` format writes beside a job's video, by suffix (the first is the
#: file ``--export`` names; Label Studio writes its labelling config beside it; YOLO's is a
#: dataset folder).
EXPORTS = {
    "cvat": (".cvat.xml",),
    "labelstudio": (".labelstudio.json", ".labelstudio.config.xml"),
    "coco": (".coco.json",),
    "yolo": (".yolo",),
}


@dataclass(frozen=True)
class Job:
    """One unit of work: a video, or the images directly inside one folder (an image set).

    ``relative`` places the outputs under OUTDIR: for a video, its path relative to the
    directory it was found in, without the extension (``cam1/0800``); for an image set, the
    folder's relative path (``""`` for the folder given itself).
    """

    index: int
    source: Path
    relative: PurePath
    images: tuple[Path, ...] = ()

    @property
    def image_set(self) -> bool:
        return bool(self.images)

    @property
    def inputs(self) -> tuple[Path, ...]:
        return self.images or (self.source,)

    @property
    def name(self) -> str:
        """How the job is shown: its input as relative to where it was found."""
        if self.image_set:
            return f"{self.source}{os.sep} ({len(self.images)} image{'s' * (len(self.images) > 1)})"
        return str(self.source)

    def outputs(
        self, outdir: Path, video: bool, json: bool, exports: Sequence[str] = ()
    ) -> list[Path]:
        """The final output files: the video (or images, for an image set) first, then each
        export's (:meth:`export_paths`), the JSON Lines last."""
        if self.image_set:
            folder = outdir / self.relative
            paths = [folder / p.name for p in self.images] if video else []
            stem = folder / "images"
            json_path = folder / IMAGES_JSON
        else:
            stem = outdir / self.relative
            paths = [stem.with_name(stem.name + ".mp4")] if video else []
            json_path = stem.with_name(stem.name + ".jsonl")
        for fmt in exports:
            paths += [stem.with_name(stem.name + suffix) for suffix in EXPORTS[fmt]]
        return paths + ([json_path] if json else [])

    def export_paths(self, outdir: Path, exports: Sequence[str]) -> list[tuple[str, Path]]:
        """``(format, file)`` for each export: the file ``--export FORMAT=`` writes (Label
        Studio's config beside it is its second output)."""
        finals = self.outputs(outdir, False, False, exports)
        found = []
        for fmt in exports:
            suffix = EXPORTS[fmt][0]
            found.append((fmt, next(p for p in finals if p.name.endswith(suffix))))
        return found


def find_jobs(specs: Sequence[str], outdir: Path) -> list[Job]:
    """Expand INPUT arguments: files, directories (searched recursively; hidden entries and
    OUTDIR itself are skipped), globs (``**`` included) and ``@list.txt`` (one input per
    line, relative to the list's folder; ``#`` starts a comment).

    A file or folder reached twice is one job. Raises before any work for a missing input,
    an empty result, or two inputs whose outputs would share a name.
    """
    found: dict[Path, tuple[Path, PurePath]] = {}  # real path → (path as found, relative)
    for spec in specs:
        if not spec.strip():  # Path("") is the current directory: never what was meant
            raise UsageError("an INPUT is empty; name video files, directories, globs or @list.txt")
        for path, relative in _expand(spec, outdir.resolve()):
            found.setdefault(path.resolve(), (path, relative))
    if not found:
        raise SourceNotFoundError(f"no videos or images found in {' '.join(specs)}")
    videos: list[tuple[Path, PurePath]] = []
    image_sets: dict[PurePath, list[Path]] = {}
    for path, relative in found.values():
        if is_image(path):
            image_sets.setdefault(relative.parent, []).append(path)
        else:
            videos.append((path, relative.with_suffix("") if relative.suffix else relative))
    items: list[tuple[Path, PurePath, tuple[Path, ...]]] = [(p, r, ()) for p, r in videos]
    for folder, images in image_sets.items():
        images.sort(key=lambda p: p.name)
        items.append((images[0].parent, folder, tuple(images)))
    items.sort(key=lambda item: str(item[1]))
    return [Job(i, source, relative, images) for i, (source, relative, images) in enumerate(items)]


def check_outputs(
    jobs: Iterable[Job], outdir: Path, video: bool, json: bool, exports: Sequence[str] = ()
) -> None:
    """No two jobs may write the same file, and no output may be an input."""
    owner: dict[Path, Job] = {}
    inputs = {p.resolve(): p for job in jobs for p in job.inputs}
    for job in jobs:
        for out in job.outputs(outdir, video, json, exports):
            key = out.resolve()
            if key in inputs:
                raise OutputPathError(
                    f"{out} would overwrite the input {inputs[key]}; choose "
                    "another output directory"
                )
            other = owner.setdefault(key, job)
            if other is not job:
                raise UsageError(
                    f"{_shown(other)} and {_shown(job)} would both write {out}; "
                    "rename one or run them in separate batches"
                )


def _shown(job: Job) -> str:
    return f"the images in {job.source}" if job.image_set else str(job.source)


def _expand(spec: str, outdir: Path) -> Iterable[tuple[Path, PurePath]]:
    if spec.startswith("@"):
        yield from _from_list(Path(spec[1:]), outdir)
        return
    path = Path(spec)
    if path.is_dir():
        yield from _walk(path, PurePath(), outdir)
    elif path.exists():
        if not path.is_file():
            raise SourceNotFoundError(f"input {spec} is not a regular file or a directory")
        yield path, PurePath(path.name)
    elif glob.has_magic(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        if not matches:
            raise SourceNotFoundError(f"no files match {spec}")
        root = _glob_root(spec)
        for match in map(Path, matches):
            relative = PurePath(os.path.relpath(match, root))
            if match.is_dir():
                yield from _walk(match, relative, outdir)
            elif match.is_file() and (is_image(match) or _is_video(match)):
                yield match, relative
    else:
        raise SourceNotFoundError(f"input {spec} does not exist")


def _from_list(listing: Path, outdir: Path) -> Iterable[tuple[Path, PurePath]]:
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SourceNotFoundError(f"list file {listing} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise SourceNotFoundError(f"cannot read list file {listing}: {why}") from None
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("@"):
            raise UsageError(f"{listing} names another list ({entry}); lists do not nest")
        yield from _expand(str(listing.parent / entry), outdir)


def _walk(folder: Path, relative: PurePath, outdir: Path) -> Iterable[tuple[Path, PurePath]]:
    """Videos and images under ``folder``, sorted, skipping hidden entries and OUTDIR."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        here = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and (here / d).resolve() != outdir
        )
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or not (is_image(path) or _is_video(path)):
                continue
            yield path, relative / path.relative_to(folder)


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _glob_root(spec: str) -> Path:
    """The folder a glob's matches are relative to: its parts before the first wildcard."""
    parts = Path(spec).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path()
