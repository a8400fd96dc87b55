"""Errors the library raises; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class AnnotateError(Exception):
    """Base class: the message is one line a user can act on."""

    exit_code = 1


class UsageError(AnnotateError):
    """The user asked for something that cannot work; fixing the command line fixes it."""

    exit_code = 2


def check_at_least(flag: str, value: float, minimum: int) -> None:
    """``--flag must be at least N, got V`` (or ``0 or more``) for a numeric option."""
    if value < minimum:
        bound = "0 or more" if minimum == 0 else f"at least {minimum}"
        raise UsageError(f"{flag} must be {bound}, got {value}")


class ConfigError(UsageError):
    """A config file or environment variable holds a bad value."""


class ProviderError(UsageError):
    """An execution provider was named that is unknown or missing from this build."""


class ModelError(AnnotateError):
    """The model file is missing, unreadable, or not a detector we understand."""


class ModelNotFoundError(ModelError, UsageError):
    """No model file where we looked."""

    exit_code = 2


class SourceError(AnnotateError):
    """The input cannot be opened or decoded."""


class SourceNotFoundError(SourceError, UsageError):
    """The input path does not exist."""

    exit_code = 2


class OutputError(AnnotateError):
    """An output cannot be written."""


class OutputPathError(OutputError, UsageError):
    """An output path is unusable before any work starts (same as input, missing directory, ...)."""

    exit_code = 2


class StopRequested(Exception):  # noqa: N818 - a signal to stop, not an error
    """A sink asks the pipeline to stop early (window closed, `q` pressed); not an error."""


class Interrupted(BaseException):
    """A termination signal arrived (SIGTERM, SIGHUP); like KeyboardInterrupt, not an error."""

    def __init__(self, name: str, exit_code: int) -> None:
        super().__init__(name)
        self.name = name
        self.exit_code = exit_code
