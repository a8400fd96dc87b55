"""Many sources in one process: one model for every camera, each source's pipeline its own.

Each source runs the same pipeline as a single one (:func:`annotate.pipeline.build.run`) on
a thread of its own, with its own tracker, lines and zones, blur and outputs, so nothing
leaks from one to another. They share the one detector (one session: on a GPU, one context
and one inference service that batches frames from every source), and split the cores.

A source that fails (cannot open, or gives up reconnecting) is reported and the others go
on; Ctrl-C or SIGTERM stops every source, each finalising its outputs.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotate import defaults
from annotate.errors import AnnotateError, Interrupted, UsageError
from annotate.signals import raise_received

if TYPE_CHECKING:
    from annotate.models import KnownModel
    from annotate.pipeline.options import RunOptions
    from annotate.pipeline.summary import ProgressListener, RunSummary
    from annotate.sinks import SharedDisplay

log = logging.getLogger("annotate")

#: What a table of a sources file may set for its source alone, and the option it stands for.
PER_SOURCE = {
    "line": "--line",
    "zone": "--zone",
    "blur": "--blur",
    "detect_every": "--detect-every",
}


#: Each export's file (or, for YOLO, folder) in a directory given for several sources.
EXPORT_NAMES = {"cvat": ".xml", "labelstudio": "-labelstudio.json", "coco": "-coco.json",
                "yolo": ""}  # fmt: skip


@dataclass(frozen=True)
class SourceSpec:
    """One source of a multi-source run: where to read it, its name (``None``: from the
    address) and its own settings (:data:`PER_SOURCE`), as a sources file gives them."""

    url: str
    name: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class SourceResult:
    """How one source's run ended: its summary, or the one line that says why it failed."""

    name: str
    url: str
    summary: RunSummary | None = None
    error: str | None = None
    #: How many times it started: more than 1 where its Ray group was restarted
    #: (:mod:`annotate.pipeline.groups`), each start writing outputs of its own.
    parts: int = 1


def read_sources(path: Path) -> list[SourceSpec]:
    """A sources file: TOML, one ``[[source]]`` table per source with ``url`` and optionally
    ``name``, ``line``, ``zone``, ``blur`` and ``detect_every``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read --sources {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"--sources {path} is not valid TOML: {e}") from None
    tables = data.get("source")
    if not isinstance(tables, list) or not tables:
        raise UsageError(
            f"--sources {path} lists no sources; give each one a [[source]] table with a url"
        )
    specs = []
    for i, table in enumerate(tables, 1):
        where = f"--sources {path}, source {i}"
        if not isinstance(table, dict) or not isinstance(table.get("url"), str):
            raise UsageError(f'{where}: give it a url, e.g. url = "rtsp://camera/stream"')
        unknown = sorted(set(table) - {"url", "name", *PER_SOURCE})
        if unknown:
            allowed = ", ".join(["url", "name", *PER_SOURCE])
            raise UsageError(f"{where}: unknown key {unknown[0]!r} (allowed: {allowed})")
        name = table.get("name")
        if name is not None and (not isinstance(name, str) or not safe_name(name)):
            raise UsageError(f"{where}: name must be text of letters, digits, '-', '_' or '.'")
        settings = {k: v for k, v in table.items() if k in PER_SOURCE}
        specs.append(SourceSpec(table["url"], name, settings))
    return specs


def safe_name(text: str) -> str:
    """``text`` as a file name: runs of other characters become one ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")


def default_name(url: str) -> str:
    """A source's name where none is given: a file's stem, ``cameraN``, or a stream's host
    and path made safe for file names."""
    from annotate.sources import STREAM_SCHEMES, camera_index

    index = camera_index(url)
    if index is not None:
        return f"camera{index}"
    if url.lower().startswith(STREAM_SCHEMES):
        rest = url.split("://", 1)[1].split("?", 1)[0]
        rest = rest.rsplit("@", 1)[-1]  # no credentials in a file name
        return safe_name(rest) or "stream"
    return safe_name(Path(url).stem) or "source"


def unique_names(specs: Sequence[SourceSpec]) -> list[str]:
    """Each source's name; a name already taken gets ``-2``, ``-3`` …"""
    names: list[str] = []
    taken: set[str] = set()
    for spec in specs:
        base = spec.name or default_name(spec.url)
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        names.append(name)
    return names


def names_folder(template: Any) -> bool:
    """Whether an output option names a folder for a file per source: text ending in ``/``,
    or a path option with no file suffix (``-o rec/`` reaches the options as the path
    ``rec``, its slash dropped)."""
    if str(template).endswith(("/", "\\")):
        return True
    return isinstance(template, Path) and not template.suffix


def per_source(template: Any, name: str, suffix: str, flag: str) -> Any:
    """An output option for one source: ``{name}`` filled in, or the file ``NAME.suffix``
    in a directory (one that exists, or one named as a folder: :func:`names_folder`).
    ``-`` (standard output) is shared: each record names its source."""
    if template is None:
        return None
    text = str(template)
    if text == "-":
        return text
    if "{name}" in text:
        filled = text.replace("{name}", name)
        return Path(filled) if isinstance(template, Path) else filled
    if names_folder(template) or Path(text).is_dir():
        return Path(text) / f"{name}{suffix}"
    raise UsageError(
        f"{flag} {text}: with several sources, give a directory ({flag} out/) or a "
        f"template with {{name}} ({flag} 'out/{{name}}{suffix}')"
    )


def make_folders(base: RunOptions) -> None:
    """Create the folders that output options name (``-o rec/``, :func:`names_folder`): the
    user asked for a folder of files, one per source."""
    from annotate.errors import OutputPathError

    named = [base.output, base.json_path, base.mot, *(e.path for e in base.export_specs)]
    for template in named:
        text = str(template)
        if template is None or text == "-" or "{name}" in text or not names_folder(template):
            continue
        try:
            Path(text).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputPathError(f"cannot create the folder {text}: {e.strerror}") from None


def source_options(
    base: RunOptions, spec: SourceSpec, name: str, cores: int, part: int = 1
) -> RunOptions:
    """``base`` for one source: its address, name, outputs, share of the cores and its own
    settings. ``part`` > 1: the outputs of a source started again (a Ray stream group's
    restart) are files of their own, ``NAME.partN``, beside the first part's."""
    from annotate.pipeline.options import parse_detect_every

    overrides: dict[str, Any] = {}
    for key, value in spec.settings.items():
        flag = PER_SOURCE[key]
        if key in ("line", "zone"):
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise UsageError(f"source {name}: {key} takes text or a list of texts")
            overrides[f"{key}s"] = list(values)
        elif key == "blur":
            if value is True:
                value = ""
            if not isinstance(value, str):
                raise UsageError(f'source {name}: blur takes class names, e.g. "person,car"')
            from annotate import defaults

            classes = [c for c in value.split(",") if c.strip()]
            overrides["blur"] = classes or defaults.BLUR_CLASSES.split(",")
        else:
            overrides["detect_every"] = parse_detect_every(str(value))
        log.debug("Source %s: %s %s", name, flag, value)
    file = name if part == 1 else f"{name}.part{part}"
    exports = [
        f"{e.format}={per_source(e.path, file, EXPORT_NAMES[e.format], e.flag)}"
        for e in base.export_specs
    ]
    options = replace(
        base,
        source=spec.url,
        exports=exports,
        name=name,
        cores=cores,
        output=per_source(base.output, file, ".mp4", "-o"),
        json_path=per_source(base.json_path, file, ".jsonl", "--json"),
        mot=per_source(base.mot, file, ".txt", "--mot"),
        **overrides,
    )
    if options.tracker_flags and not options.track:
        options = replace(options, track=True)
    return options


def run_many(
    base: RunOptions,
    specs: Sequence[SourceSpec],
    download: Callable[[KnownModel], Path] | None = None,
    stop: threading.Event | None = None,
    cores: int | None = None,
    progress: Callable[[str], ProgressListener] | None = None,
    part: int = 1,
) -> list[SourceResult]:
    """Run every source at once through one detector; one result per source, in order.

    Every source's options are checked before any source opens. Ctrl-C or SIGTERM (in the
    main thread) stops all of them; each summary then says which signal. ``progress`` gives
    each source's pipeline its progress listener, by name. ``part``: see
    :func:`source_options`.
    """
    from annotate.pipeline.build import load_detector, make_tracker, run
    from annotate.pipeline.plan import cpu_cores, plan_threads
    from annotate.sources import STREAM_SCHEMES, camera_index

    if not specs:
        raise UsageError("no sources given")
    # Output options are templates here: each source's own are checked below.
    replace(base, output=None, json_path=None, mot=None, exports=[]).validate()
    make_folders(base)
    names = unique_names(specs)
    share = max(1, (cores or base.cores or cpu_cores()) // len(specs))
    options = [source_options(base, s, n, share, part) for s, n in zip(specs, names)]
    outputs: dict[str, str] = {}
    for o in options:
        o.validate()
        for _, path in o.outputs:
            if str(path) in outputs:
                raise UsageError(f"sources {outputs[str(path)]} and {o.name} both write {path}")
            outputs[str(path)] = str(o.name)
    # Only once every source's options are right: the model (fetched once, then found).
    options = [o.resolved(download) for o in options]
    live = any(camera_index(s.url) is not None or s.url.startswith(STREAM_SCHEMES) for s in specs)
    stop = stop or threading.Event()
    results = [SourceResult(n, s.url) for s, n in zip(specs, names)]
    # Each source says when it is done: before Python 3.13, a signal that interrupts
    # Thread.join can leave the thread taken for finished while it still runs.
    done = {r.name: threading.Event() for r in results}
    signalled: str | None = None
    with ExitStack() as stack:
        if len(specs) > 1:
            switch = sys.getswitchinterval()
            sys.setswitchinterval(min(switch, defaults.MANY_SOURCES_SWITCH_S))
            stack.callback(sys.setswitchinterval, switch)
        title = f"annotate - {len(specs)} sources"
        shared: list[SharedDisplay] = []
        window = None
        if base.show:  # one window, a tile per source, drawn by this (the main) thread
            from annotate.sinks.window import WindowGrid

            window = stack.enter_context(WindowGrid(title, len(specs)))
            shared.append(window)
        if base.serve is not None:  # one page, a tile per source
            from annotate.sinks.web import WebPreview

            host, port = base.serve
            shared.append(
                stack.enter_context(WebPreview(host, port, None, title, base.serve_hosts))
            )
        # A source that tracks needs the tracker's low boxes: the shared detector keeps them,
        # and the sources that do not track drop them again (build.make_stages).
        first = next((o for o in options if o.track), options[0])
        first = _loading(first, options)
        plan = plan_threads(first, share)
        detector = load_detector(first, plan, make_tracker(first), live)
        stack.callback(detector.close)
        if plan.service_batch and plan.workers:
            detector.serve(plan.service_batch)
        log.info(
            "%d sources, one %s session; %d core%s each",
            len(specs),
            detector.provider,
            share,
            "" if share == 1 else "s",
        )

        def one(result: SourceResult, opts: RunOptions) -> None:
            try:
                listener = progress(result.name) if progress is not None else None
                result.summary = run(
                    opts, detector=detector, stop=stop, progress=listener, shared=shared
                )
            except AnnotateError as e:
                result.error = str(e)
            except Exception as e:  # one source's bug must not take the others down
                log.debug("source %s failed", result.name, exc_info=True)
                result.error = f"{type(e).__name__}: {e}"
            finally:
                done[result.name].set()
            if result.error:
                log.error("%s: %s", result.name, result.error)

        started: list[str] = []
        try:
            for result, opts in zip(results, options):
                name = f"source {result.name}"
                threading.Thread(target=one, args=(result, opts), name=name, daemon=True).start()
                started.append(result.name)
        finally:
            for name in started:
                while not done[name].is_set():
                    try:
                        raise_received()  # a signal whose exception could not be raised
                        if window is not None:
                            window.show()  # waits for a key up to 30 ms
                            if window.stop_reason is not None:
                                stop.set()
                        else:
                            done[name].wait(timeout=0.2)
                    except (KeyboardInterrupt, Interrupted) as e:
                        signalled = signalled or getattr(e, "name", "SIGINT")
                        stop.set()
            stop.set()
    return mark_stopped(results, signalled or (window.stop_reason if window is not None else None))


def mark_stopped(results: list[SourceResult], reason: str | None) -> list[SourceResult]:
    """Every source's summary says ``reason``, what stopped them all, not how each heard."""
    for result in results:
        if reason and result.summary is not None:
            result.summary.stopped = reason
    return results


def exit_code(results: Sequence[SourceResult]) -> int:
    """128 + the signal that stopped the run, else 1 if any source failed, else 0."""
    import signal

    for result in results:
        stopped = result.summary.stopped if result.summary else None
        if stopped in ("SIGINT", "SIGTERM", "SIGHUP"):
            return 128 + int(getattr(signal, str(stopped)))
    return 1 if any(r.error for r in results) else 0


def _loading(first: RunOptions, options: list[RunOptions]) -> RunOptions:
    """The options the shared detector is loaded with: ``first``'s, finding faces too where
    any source wants them (one that asked for none drops them again: build.make_stages),
    and the object model unless no source needs it."""
    faces = next((o for o in options if o.wants_faces), None)
    if faces is None or all(o.faces_only for o in options):
        return first
    objects = first if not first.faces_only else next(o for o in options if not o.faces_only)
    return replace(
        objects,
        faces=True,
        boxes=True,
        face_model=faces.face_model,
        face_conf=faces.face_conf,
        face_size=faces.face_size,
    )
