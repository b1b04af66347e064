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

import ipaddress
import os
import runpy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def proxy_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of a TRUSTED_PROXIES value ("127.0.0.1, 10.0.0.0/8"); ValueError."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


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
    LOCAL_JOB_UIDS: str = ""
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
    JOBS_PER_USER_MAX: int = 1000
    STORAGE_PER_USER_MAX: int = 10 * 1024**3
    AUTH_FREE_FAILURES: int = 5
    AUTH_DELAY_MAX: int = 300
    AUTH_FAILURE_WINDOW: int = 900
    AUTH_THROTTLE_BY_ADDRESS: bool = True
    TRUSTED_PROXIES: str = ""
    SESSION_IDLE_TIMEOUT: int = 8 * 3600
    SESSION_MAX_AGE: int = 7 * 86400
    SHARED_LINK_LIFETIME: int = 3600
    ARCHIVE_ON_DESTRUCTION: bool = False
    RECONCILE_INTERVAL: float = 5.0
    SERVER_THREADS: int = 64
    MAX_REQUEST_HEADER_SIZE: int = 64 * 1024
    REQUEST_HEADER_TIMEOUT: float = 10.0
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
        try:
            proxy_networks(self.TRUSTED_PROXIES)
        except ValueError as exc:
            raise SettingsError(f"TRUSTED_PROXIES: {exc}") from None
        if self.MAX_REQUEST_HEADER_SIZE < 1024 or self.REQUEST_HEADER_TIMEOUT <= 0:
            raise SettingsError(
                "MAX_REQUEST_HEADER_SIZE must be >= 1024 and REQUEST_HEADER_TIMEOUT > 0"
            )
        if self.SLURM_ACCOUNTING not in ("auto", "yes", "no"):
            raise SettingsError("SLURM_ACCOUNTING must be auto, yes or no")
        limits = ("NJOBS_MAX", "JOBS_PER_USER_MAX", "STORAGE_PER_USER_MAX", "AUTH_FREE_FAILURES")
        if any(getattr(self, name) < 0 for name in limits):
            raise SettingsError(f"{', '.join(limits)} must be >= 0")
        if self.AUTH_DELAY_MAX < 1 or self.AUTH_FAILURE_WINDOW < 1:
            raise SettingsError("AUTH_DELAY_MAX and AUTH_FAILURE_WINDOW must be >= 1")
        if self.SESSION_IDLE_TIMEOUT < 60 or self.SESSION_MAX_AGE < 60:
            raise SettingsError("SESSION_IDLE_TIMEOUT and SESSION_MAX_AGE must be >= 60")
        if self.SHARED_LINK_LIFETIME < 60:
            raise SettingsError("SHARED_LINK_LIFETIME must be >= 60")

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
