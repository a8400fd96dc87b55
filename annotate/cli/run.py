"""``annotate run``: one source through the pipeline."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from annotate.cli import console
from annotate.cli import options as o
from annotate.cli.app import app
from annotate.config import Config
from annotate.errors import UsageError
from annotate.settings import OUTPUT

if TYPE_CHECKING:
    from annotate.pipeline import RunOptions, RunSummary

log = logging.getLogger("annotate")


@app.command()
@o.with_settings("run")
def run(
    ctx: typer.Context,
    source_args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SOURCE",
            help="Video file, URL, camera (camera, camera:N or N), image, image directory or "
            "glob; several run at once through one model.",
            show_default=False,
        ),
    ] = None,
    source: o.Source = None,
    sources_file: Annotated[
        Path | None,
        typer.Option(
            "--sources",
            help="A TOML file of sources, one [[source]] table each: url, and optionally "
            "name, line, zone, blur, detect_every.",
            show_default=False,
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            metavar="[ADDRESS]",
            help="Several sources on Ray, in groups of --group, each a long-lived actor that "
            "Ray restarts if it dies: alone, a local Ray; 'auto' or ray://HOST:10001, a cluster.",
            show_default=False,
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    group: Annotated[
        int,
        typer.Option(
            "--group",
            help="Sources per Ray actor (one GPU, or this many cores, each)",
            rich_help_panel=OUTPUT,
        ),
    ] = 8,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            help="Several sources split over this many processes on this machine, a model "
            "each: where one process's CPU work binds before the GPU does. Default: on a "
            "GPU with more than 8 sources, a process per 8 sources (up to one per 4 cores), "
            "each batching its sources; elsewhere 1",
            show_default=False,
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    duration: o.Duration = None,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    **settings: Any,
) -> None:
    """Detect objects in SOURCE, draw them, and write video, images and/or JSON Lines."""
    from annotate.pipeline import run as run_pipeline
    from annotate.sources import camera_index, check_exists

    console.setup_logging(quiet, verbose)
    given = list(source_args or [])
    if source and given and given != [source]:
        raise UsageError("give the source once, either as SOURCE or as --source")
    if sources_file is not None or len(given) > 1 or ray is not None:
        run_several(ctx, given, sources_file, quiet, (ray, group), processes, verbose)
        return
    if processes not in (None, 1):
        raise UsageError("--processes splits several sources; give more than one")
    spec = given[0] if given else source
    if not spec:
        raise UsageError(
            "no source given; try 'annotate run video.mp4' or 'annotate run --source camera'"
        )
    check_exists(spec)
    options = o.run_options(spec, ctx.params, Config.load())
    o.check_needed(ctx, options)
    options.validate()
    show = ctx.params["show"]
    wants_window = show if show is not None else camera_index(spec) is not None
    if wants_window:
        from annotate.sinks.window import display_problem

        problem = display_problem()
        if problem:
            log.info("Not showing a window: %s", problem)
        options.show = problem is None
    bar = console.FrameProgressBar() if not quiet and console.stderr_console().is_terminal else None
    summary = run_pipeline(options, progress=bar, download=console.download)
    report(summary, spec, quiet)


def run_several(
    ctx: typer.Context,
    given: list[str],
    sources_file: Path | None,
    quiet: bool,
    ray: tuple[str | None, int] = (None, 8),
    processes: int | None = None,
    verbose: bool = False,
) -> None:
    """Several sources through one model (:mod:`annotate.pipeline.many`), or in groups on
    Ray (``ray``: its address and the sources per group; :mod:`annotate.pipeline.groups`)."""
    from annotate.pipeline.many import SourceSpec, exit_code, read_sources, run_many

    specs = read_sources(sources_file) if sources_file is not None else []
    specs += [SourceSpec(url) for url in given]
    if not specs:
        raise UsageError("no source given; --ray runs the sources given or in --sources FILE")
    options = o.run_options(specs[0].url, ctx.params, Config.load())
    o.check_needed(ctx, options)
    if options.show:
        from annotate.sinks.window import display_problem

        problem = display_problem()
        if problem:
            log.info("Not showing a window: %s", problem)
            options.show = False
    address, size = ray
    if processes is None:
        processes = 1
        if address is None and not options.show and options.serve is None:
            processes, options = _split(options, len(specs))
    if address is not None:
        from annotate.batch.cluster import check_address
        from annotate.pipeline.groups import run_groups

        check_address(address)
        if processes != 1:
            raise UsageError("--processes is for one machine; on Ray, --group sizes the groups")
        if options.show or options.serve is not None:
            raise UsageError("--show and --serve are for one machine; with --ray, write outputs")
        results = run_groups(options, specs, address, size, download=console.download)
    elif processes != 1:
        import functools

        from annotate.pipeline.groups import run_processes

        if options.show or options.serve is not None:
            raise UsageError("--show and --serve are for one process; drop --processes")
        setup = functools.partial(console.setup_logging, quiet, verbose)
        bars = _bars(quiet)
        try:
            results = run_processes(
                options, specs, processes, console.download, setup, progress=bars
            )
        finally:
            if bars is not None:
                bars.stop()
    else:
        bars = _bars(quiet)
        try:
            results = run_many(options, specs, download=console.download, progress=bars)
        finally:
            if bars is not None:
                bars.stop()
    if not quiet:
        console.print_sources(results)
        for result in results:
            if result.summary and result.summary.outputs:
                log.info("%s: wrote %s", result.name, ", ".join(result.summary.outputs))
    code = exit_code(results)
    if code > 128:
        log.warning("stopped by a signal; outputs hold every frame processed")
    elif code:
        failed = [r.name for r in results if r.error]
        log.error("%d of %d sources failed: %s", len(failed), len(results), ", ".join(failed))
    if code:
        raise typer.Exit(code)


def _split(options: RunOptions, sources: int) -> tuple[int, RunOptions]:
    """``--processes`` not given: the split the plan picks for this provider and machine
    (:func:`annotate.pipeline.plan.split_sources`), said in one line when it splits."""
    from dataclasses import replace

    from annotate.pipeline.plan import cpu_cores, split_sources
    from annotate.providers import resolve_here

    provider = resolve_here(options.provider, options.provider_origin).preferred
    cores = options.cores or cpu_cores()
    processes, batch = split_sources(sources, cores, provider, options.batch)
    if processes > 1:
        log.info(
            "%d sources on %s: %d processes sharing it, each batching up to %s frames "
            "(--processes 1 keeps one process)",
            sources,
            provider,
            processes,
            batch,
        )
        options = replace(options, batch=batch)
    return processes, options


def _bars(quiet: bool) -> console.SourcesProgress | None:
    """A progress line per source, on a terminal."""
    return None if quiet or not console.stderr_console().is_terminal else console.SourcesProgress()


def report(summary: RunSummary, spec: str, quiet: bool) -> None:
    """The closing lines; a signal or an empty source becomes the exit code."""
    if summary.frames:
        detected = summary.detected or 1
        extra = "" if summary.detected == summary.frames else f", {summary.detected} detected"
        if summary.tracks is not None:
            extra += f", {summary.tracks} track{'s' * (summary.tracks != 1)}"
        loop = summary.loop_fps
        steady = "" if loop is None else f"; {loop:.1f} FPS after the first frame"
        log.info(
            "Done: %d frame%s in %.1f s (%.1f FPS%s; inference %.1f ms mean) on %s%s",
            summary.frames,
            "s" * (summary.frames != 1),
            summary.wall_s,
            summary.fps,
            steady,
            1000 * summary.inference_s / detected,
            summary.provider,
            extra,
        )
    else:
        log.warning("no frames were read from %s", spec)
    if summary.counts and not quiet:
        console.print_counts(summary.counts)
    if summary.outputs:
        log.info("Wrote %s", ", ".join(summary.outputs))
    signalled = summary.stopped in ("SIGINT", "SIGTERM", "SIGHUP")
    if summary.stopped and not signalled:
        log.info("Stopped early: %s", summary.stopped)
    if signalled:
        log.warning("stopped by %s; outputs hold every frame processed", summary.stopped)
        raise typer.Exit(128 + getattr(signal, str(summary.stopped)))
    if summary.frames == 0:
        raise typer.Exit(1)
