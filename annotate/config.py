"""Settings from flags, environment and ``annotate.toml``, in that order of precedence."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotate.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_NAME = "annotate.toml"

#: Keys a config file may set, with their types.
KEYS: dict[str, type] = {
    "provider": str,
    "model": str,
    "conf": float,
    "iou": float,
    "fps_every": int,
}

#: Environment variables that override the config file.
ENV: dict[str, str] = {"provider": "ANNOTATE_PROVIDER", "model": "ANNOTATE_MODEL"}


def user_config_dir() -> Path:
    from platformdirs import user_config_dir as _dir

    return Path(_dir("annotate", appauthor=False))


@dataclass(frozen=True)
class Setting:
    value: Any
    origin: str | None  # None: built-in default


@dataclass
class Config:
    """Values from config files, the nearest file winning, with where each came from."""

    values: dict[str, Setting] = field(default_factory=dict)

    @classmethod
    def load(cls, cwd: Path | None = None, user_dir: Path | None = None) -> Config:
        cwd = Path.cwd() if cwd is None else cwd
        user_dir = user_config_dir() if user_dir is None else user_dir
        config = cls()
        # Farthest first so the working directory's file overrides the user's.
        for path, label in ((user_dir / CONFIG_NAME, None), (cwd / CONFIG_NAME, CONFIG_NAME)):
            if path.is_file():
                for key, value in _read(path).items():
                    config.values[key] = Setting(value, label or str(path))
        return config

    def get(
        self,
        key: str,
        flag: Any,
        flag_name: str,
        default: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> Setting:
        """Pick a value: flag, then environment, then config file, then ``default``."""
        if flag is not None:
            return Setting(flag, flag_name)
        env_name = ENV.get(key)
        env = os.environ if environ is None else environ
        if env_name and env.get(env_name):
            return Setting(env[env_name], env_name)
        if key in self.values:
            return self.values[key]
        return Setting(default, None)


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not valid TOML: it is not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    for key, value in data.items():
        if key not in KEYS:
            raise ConfigError(f"{path}: unknown key '{key}'; known keys: {', '.join(KEYS)}")
        kind = KEYS[key]
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not ok or isinstance(value, bool):
            raise ConfigError(f"{path}: '{key}' must be a {kind.__name__}, got {value!r}")
    return {k: KEYS[k](v) for k, v in data.items()}
