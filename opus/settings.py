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
import json
import os
import re
import runpy
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

TRUE_WORDS = {"1", "true", "yes", "on"}
# How the connection to MAIL_HOST is secured: plain, upgraded with STARTTLS, or TLS from
# the start (usually port 465).
MAIL_SECURITIES = ("none", "starttls", "ssl")
FALSE_WORDS = {"0", "false", "no", "off", ""}


def proxy_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of a TRUSTED_PROXIES value ("127.0.0.1, 10.0.0.0/8"); ValueError."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


class SettingsError(ValueError):
    """A setting has a value of the wrong type or an unknown name."""


# OIDC_PROVIDERS (docs/oidc.md): a provider's name is a URL path segment; its keys.
OIDC_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
OIDC_REQUIRED = ("name", "discovery_url", "client_id")
OIDC_UNKNOWN_USERS = ("refuse", "create")
# A scope token of RFC 6749 section 3.3: printable ASCII but space, '"' and '\\'.
OIDC_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class OIDCProvider:
    """An OpenID Connect identity provider users may sign in with (OIDC_PROVIDERS)."""

    name: str
    label: str
    discovery_url: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    username_claim: str = "preferred_username"
    unknown_users: str = "refuse"
    default_roles: tuple[str, ...] = ()
    # Whether an account of the provider may take an OPUS user of its claimed name that
    # none of its accounts signs in as yet, at its first sign-in (docs/oidc.md: a risk).
    link_existing: bool = False


def provider_url_allowed(url: str) -> bool:
    """Whether an URL of a provider (discovery, endpoints, keys) may be used: https, or
    http on the loopback interface only (a provider on the same machine)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if parts.scheme == "https" and host:
        return True
    return parts.scheme == "http" and host in LOOPBACK_HOSTS


def oidc_providers(value: object) -> tuple[OIDCProvider, ...]:
    """The providers of an OIDC_PROVIDERS value: a list of mappings (a settings file),
    its JSON text (OPUS_OIDC_PROVIDERS), or providers already; SettingsError saying
    which provider and key is wrong."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError as exc:
            raise SettingsError(f"OIDC_PROVIDERS: not a JSON list ({exc})") from None
    if not isinstance(value, list | tuple):
        raise SettingsError("OIDC_PROVIDERS must be a list of providers")
    providers = tuple(_oidc_provider(index, entry) for index, entry in enumerate(value))
    names = [provider.name for provider in providers]
    for name in names:
        if names.count(name) > 1:
            raise SettingsError(f"OIDC_PROVIDERS: two providers are named {name!r}")
    return providers


def _oidc_provider(index: int, entry: object) -> OIDCProvider:
    if isinstance(entry, OIDCProvider):
        return entry
    where = f"OIDC_PROVIDERS[{index}]"
    if not isinstance(entry, dict):
        raise SettingsError(f"{where} must be a mapping of keys to values")
    known = {item.name for item in fields(OIDCProvider)}
    unknown = sorted(str(key) for key in entry if key not in known)
    if unknown:
        raise SettingsError(f"{where}: unknown key {unknown[0]!r}")
    missing = [key for key in OIDC_REQUIRED if not entry.get(key)]
    if missing:
        raise SettingsError(f"{where}: {missing[0]!r} is required")
    values = {key: entry[key] for key in entry}
    for key in ("name", "label", "discovery_url", "client_id", "client_secret", "username_claim"):
        if key in values and not isinstance(values[key], str):
            raise SettingsError(f"{where}: {key!r} must be a string")
    for key in ("scopes", "default_roles"):
        if key in values:
            values[key] = _strings(where, key, values[key])
    if "link_existing" in values and not isinstance(values["link_existing"], bool):
        raise SettingsError(f"{where}: 'link_existing' must be true or false")
    values.setdefault("label", values["name"])
    provider = OIDCProvider(**values)
    _check_oidc_provider(where, provider)
    return provider


def _strings(where: str, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"{where}: {key!r} must be a list of strings")
    return tuple(value)


def _check_oidc_provider(where: str, provider: OIDCProvider) -> None:
    if not OIDC_NAME.fullmatch(provider.name):
        raise SettingsError(
            f"{where}: 'name' {provider.name!r} must be 1 to 32 lowercase letters, digits, '-'"
        )
    if not provider.label.strip():
        raise SettingsError(f"{where}: 'label' must not be empty")
    if not provider_url_allowed(provider.discovery_url):
        raise SettingsError(
            f"{where}: 'discovery_url' must be an https URL (http only on loopback)"
        )
    if "openid" not in provider.scopes:
        raise SettingsError(f"{where}: 'scopes' must include 'openid'")
    bad = [scope for scope in provider.scopes if not OIDC_SCOPE.fullmatch(scope)]
    if bad:
        raise SettingsError(f"{where}: invalid scope {bad[0]!r}")
    if not provider.username_claim.strip():
        raise SettingsError(f"{where}: 'username_claim' must not be empty")
    if provider.unknown_users not in OIDC_UNKNOWN_USERS:
        raise SettingsError(f"{where}: 'unknown_users' must be 'refuse' or 'create'")
    if provider.default_roles and provider.unknown_users != "create":
        raise SettingsError(f"{where}: 'default_roles' needs unknown_users = 'create'")
    # Imported here: the server's one definition of a role name (auth.py imports this
    # module at its top).
    from opus.server.auth import UserError, check_roles

    try:
        check_roles(list(provider.default_roles))
    except UserError as exc:
        raise SettingsError(f"{where}: 'default_roles': {exc}") from None


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
    SYNC_TIMEOUT: int = 60
    MAX_UPLOAD_SIZE: int = 100 * 1024 * 1024
    NJOBS_MAX: int = 50
    JOBS_PER_USER_MAX: int = 1000
    STORAGE_PER_USER_MAX: int = 10 * 1024**3
    # The most jobs one "Run once per file" of the new-job form makes (one per file).
    BATCH_FILES_MAX: int = 100
    AUTH_FREE_FAILURES: int = 5
    AUTH_DELAY_MAX: int = 300
    AUTH_FAILURE_WINDOW: int = 900
    AUTH_THROTTLE_BY_ADDRESS: bool = True
    TRUSTED_PROXIES: str = ""
    SESSION_IDLE_TIMEOUT: int = 8 * 3600
    SESSION_MAX_AGE: int = 7 * 86400
    SHARED_LINK_LIFETIME: int = 3600
    # E-mail to admins (a definition submitted for approval); off while MAIL_HOST is "".
    MAIL_HOST: str = ""
    MAIL_PORT: int = 25
    MAIL_SECURITY: str = "starttls"
    MAIL_USERNAME: str = ""
    MAIL_PASSWORD: str = ""
    MAIL_FROM: str = ""
    MAIL_ADMINS: str = ""
    OIDC_PROVIDERS: tuple[OIDCProvider, ...] = ()
    ARCHIVE_ON_DESTRUCTION: bool = False
    RECONCILE_INTERVAL: float = 5.0
    SERVER_THREADS: int = 64
    MAX_REQUEST_HEADER_SIZE: int = 64 * 1024
    REQUEST_HEADER_TIMEOUT: float = 10.0
    SIGNAL_RETRY_SECONDS: int = 3600
    JOB_PYTHON: str = ""
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
        if self.SYNC_TIMEOUT < 0:
            raise SettingsError("SYNC_TIMEOUT must be >= 0")
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
        if self.BATCH_FILES_MAX < 1:
            raise SettingsError("BATCH_FILES_MAX must be >= 1")
        if self.AUTH_DELAY_MAX < 1 or self.AUTH_FAILURE_WINDOW < 1:
            raise SettingsError("AUTH_DELAY_MAX and AUTH_FAILURE_WINDOW must be >= 1")
        if self.SESSION_IDLE_TIMEOUT < 60 or self.SESSION_MAX_AGE < 60:
            raise SettingsError("SESSION_IDLE_TIMEOUT and SESSION_MAX_AGE must be >= 60")
        if self.SHARED_LINK_LIFETIME < 60:
            raise SettingsError("SHARED_LINK_LIFETIME must be >= 60")
        if self.MAIL_SECURITY not in MAIL_SECURITIES:
            raise SettingsError(f"MAIL_SECURITY must be one of {', '.join(MAIL_SECURITIES)}")
        if self.MAIL_HOST and not (self.MAIL_FROM and self.mail_admins):
            raise SettingsError("MAIL_HOST needs MAIL_FROM and MAIL_ADMINS (who is told)")
        object.__setattr__(self, "OIDC_PROVIDERS", oidc_providers(self.OIDC_PROVIDERS))

    @property
    def mail_admins(self) -> list[str]:
        """The addresses of MAIL_ADMINS (comma-separated)."""
        return [part.strip() for part in self.MAIL_ADMINS.split(",") if part.strip()]

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


def _run_settings_file(settings_file: str) -> dict[str, Any]:
    """The names a settings file defines; SettingsError (one line, no traceback) for a
    file that cannot be read or run, naming where it went wrong."""
    path = Path(settings_file).expanduser()
    try:
        return runpy.run_path(str(path))
    except OSError as exc:
        raise SettingsError(f"OPUS_SETTINGS={settings_file}: {exc.strerror}") from None
    except SyntaxError as exc:
        raise SettingsError(f"{settings_file}, line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # whatever the file raised, said in one line
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f", line {frames[-1].lineno}" if frames else ""
        raise SettingsError(f"{settings_file}{where}: {type(exc).__name__}: {exc}") from None


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, the OPUS_SETTINGS file and OPUS_* variables."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    settings_file = env.get("OPUS_SETTINGS")
    if settings_file:
        namespace = _run_settings_file(settings_file)
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
