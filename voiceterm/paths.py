"""Where voiceterm keeps its files: config, cache, state, log, and the models folders.

One place for every folder, so that no module reaches into another for a path.
The user's folders follow the platform's conventions (platformdirs), looked up
when asked: nothing is created here.
"""

from __future__ import annotations

from pathlib import Path

APP_NAME = "voiceterm"


def config_file() -> Path:
    """``config.toml`` in the user's config folder (``~/.config/voiceterm`` on Linux)."""
    from platformdirs import user_config_path

    return user_config_path(APP_NAME) / "config.toml"


def cache_dir() -> Path:
    """The user's cache folder for voiceterm (``~/.cache/voiceterm`` on Linux)."""
    from platformdirs import user_cache_path

    return user_cache_path(APP_NAME)


def sessions_dir() -> Path:
    """Where recorded sessions go by default (``~/.local/state/voiceterm/sessions``)."""
    from platformdirs import user_state_path

    return user_state_path(APP_NAME) / "sessions"


def log_file() -> Path:
    """``voiceterm.log`` in the user's log folder, where the TUI sends log records."""
    from platformdirs import user_log_path

    return user_log_path(APP_NAME) / "voiceterm.log"


def models_dirs() -> list[Path]:
    """Where model files are looked for by name: ``./models``, then the ``models/``
    beside a source checkout."""
    dirs = [Path.cwd() / "models", Path(__file__).resolve().parent.parent / "models"]
    return list(dict.fromkeys(dirs))
