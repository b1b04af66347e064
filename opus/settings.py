"""Settings: built-in defaults, overridden by a settings file, overridden by environment.

Order of precedence (last wins):
1. the defaults below;
2. a Python file named by the ``OPUS_SETTINGS`` environment variable (its UPPERCASE
   names are read);
3. environment variables ``OPUS_<KEY>`` (converted to the type of the default).

Paths left empty are derived from ``VAR_PATH`` so that one setting moves all the data. A
relative path in the settings file is taken from the file's directory, so that every
command finds the same data wherever it is run from; a relative path from the
environment or the default is taken from the working directory.
"""

from __future__ import annotations

import os
import runpy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting has a value of the wrong type or an unknown name."""


@dataclass(frozen=True)
class Settings:
    """Every setting of an OPUS server; see settings.py.example for what each one does."""

    BASE_URL: str = "http://127.0.0.1:8080"
    SIGNAL_BASE_URL: str = ""
    VAR_PATH: Path = Path("var")
    JDL_PATH: Path | None = None
    JOBS_PATH: Path | None = None
    DATABASE_URL: str = ""
    MANAGER: str = "local"
    WORKERS: int = 1
    SLURM_COMMAND_PREFIX: str = ""
    SLURM_PARTITION: str = ""
    SLURM_ACCOUNT: str = ""
    SLURM_NODES: str = ""
    SLURM_NTASKS: str = ""
    SLURM_CPUS_PER_TASK: str = ""
    SLURM_MEM: str = ""
    SLURM_ACCOUNTING: str = "auto"
    ALLOW_ANONYMOUS: bool = False
    CHECK_PERMISSIONS: bool = False
    ALLOW_PRIVATE_URLS: bool = False
    EXECUTION_DURATION_DEFAULT: int = 3600
    EXECUTION_DURATION_MAX: int = 86400
    DESTRUCTION_INTERVAL: int = 30 * 86400
    WAIT_MAX: int = 600
    MAX_UPLOAD_SIZE: int = 100 * 1024 * 1024
    NJOBS_MAX: int = 50
    ARCHIVE_ON_DESTRUCTION: bool = False
    RECONCILE_INTERVAL: float = 5.0
    SERVER_THREADS: int = 64
    SIGNAL_RETRY_SECONDS: int = 3600
    URL_FETCH_TIMEOUT: float = 30.0
    SEED_EXAMPLE_JDL: bool = True
    LOG_LEVEL: str = "INFO"

    def __post_init__(self) -> None:
        var = Path(self.VAR_PATH).expanduser().resolve()
        object.__setattr__(self, "VAR_PATH", var)
        jdl = Path(self.JDL_PATH).expanduser().resolve() if self.JDL_PATH else var / "jdl"
        jobs = Path(self.JOBS_PATH).expanduser().resolve() if self.JOBS_PATH else var / "jobs"
        object.__setattr__(self, "JDL_PATH", jdl)
        object.__setattr__(self, "JOBS_PATH", jobs)
        if not self.DATABASE_URL:
            object.__setattr__(self, "DATABASE_URL", f"sqlite:///{var / 'opus.db'}")
        object.__setattr__(self, "BASE_URL", self.BASE_URL.rstrip("/"))
        # Job scripts call back on SIGNAL_BASE_URL: compute nodes often reach the server
        # by an internal address, not the public one of BASE_URL.
        object.__setattr__(
            self, "SIGNAL_BASE_URL", (self.SIGNAL_BASE_URL or self.BASE_URL).rstrip("/")
        )
        if self.WAIT_MAX < 0 or self.SERVER_THREADS < 4:
            raise SettingsError("WAIT_MAX must be >= 0 and SERVER_THREADS >= 4")
        if self.WORKERS < 1:
            raise SettingsError("WORKERS must be >= 1")
        if self.SLURM_ACCOUNTING not in ("auto", "yes", "no"):
            raise SettingsError("SLURM_ACCOUNTING must be auto, yes or no")

    @property
    def jdl_path(self) -> Path:
        return cast(Path, self.JDL_PATH)  # always set by __post_init__

    @property
    def jobs_path(self) -> Path:
        return cast(Path, self.JOBS_PATH)  # always set by __post_init__


SETTING_TYPES: dict[str, Any] = {f.name: f.type for f in fields(Settings)}
# The settings that are paths: relative ones in a settings file are taken from its directory.
PATH_SETTINGS = frozenset(key for key, kind in SETTING_TYPES.items() if "Path" in str(kind))


def convert(key: str, raw: Any) -> Any:
    """Convert a raw value (from a file or the environment) to the setting's type."""
    kind = SETTING_TYPES[key]
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        if kind == "bool":
            lowered = text.lower()
            if lowered in TRUE_WORDS:
                return True
            if lowered in FALSE_WORDS:
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if key in PATH_SETTINGS:
            return Path(text) if text else None
    except ValueError as exc:
        raise SettingsError(f"setting {key}: {exc}") from exc
    return raw


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, the OPUS_SETTINGS file and OPUS_* variables."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    settings_file = env.get("OPUS_SETTINGS")
    if settings_file:
        namespace = runpy.run_path(settings_file)
        directory = Path(settings_file).expanduser().resolve().parent
        for key, value in namespace.items():
            if key.isupper() and not key.startswith("_"):
                if key not in SETTING_TYPES:
                    raise SettingsError(f"{settings_file}: unknown setting {key}")
                values[key] = convert(key, value)
                if key in PATH_SETTINGS and values[key]:
                    # Not from the working directory: `opus` run elsewhere would make a
                    # second, empty data directory.
                    values[key] = directory / Path(values[key]).expanduser()
    for key in SETTING_TYPES:
        if f"OPUS_{key}" in env:
            values[key] = convert(key, env[f"OPUS_{key}"])
    values.update(overrides)
    return Settings(**values)
