"""Local jobs under uids of their own (LOCAL_JOB_UIDS): one uid per running job.

Run as the server's account, a job can read what the server can: its environment
(``/proc/<pid>/environ``, secrets included), the database, and every other job's
directory (its token, with which it could report for that job, and its files). Under a
uid of its own, taken from a range no account uses, it can read and write its own job
directory and nothing of the server's or of another job's:

- the job directory is chowned to the job's uid (and gid, the same number) and is 0700;
  JOBS_PATH and VAR_PATH are 0711 (passed through, not listed: datadirs.py), the
  database and the definitions stay the server's, 0600 and 0700;
- the batch script starts with that uid and gid, no supplementary groups, umask 077,
  and an environment of PATH, LANG, LC_* and TZ only (HOME is its directory);
- a process of another uid cannot read the server's /proc/<pid>/environ or signal
  it, nor another job's processes.

A uid serves one job at a time: its lease is a file ``VAR_PATH/job-uids/<uid>`` naming
the job directory, taken under a lock shared by every process of the server. When the
job ends (COMPLETED or ERROR, abort, deletion), every process still running under the
uid is killed (which reaches what left the job's process group), the directory is
given back to the server's account (0700: the uid, once reused, cannot enter it), and
the lease is removed. The server starts jobs, reads their results, kills and deletes
as root, with the capabilities of ``REQUIRED_CAPABILITIES``; without them it refuses
to start. Switching from root to the job's uid drops every capability of the job
(setreuid), which capabilities given to another account would not do.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opus.server import datadirs, nofollow
from opus.server.managers.base import ManagerError
from opus.settings import Settings, SettingsError

log = logging.getLogger("opus.manager.local")

LEASES_DIR = "job-uids"
LOCK_FILE = ".lock"
# Bits of /proc/self/status CapEff the server needs (linux/capability.h).
REQUIRED_CAPABILITIES = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_FOWNER": 3,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
}
PASSED_VARIABLES = frozenset({"PATH", "LANG", "LANGUAGE", "TZ"})
KILL_ROUNDS = 200


def parse_uids(text: str) -> range:
    """The uids of a LOCAL_JOB_UIDS value, ``FIRST-LAST`` (SettingsError if it is not)."""
    first, _, last = text.strip().partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise SettingsError(f"LOCAL_JOB_UIDS must be FIRST-LAST (uids), not {text!r}") from None
    if not 0 < low <= high < 2**31:
        raise SettingsError(f"LOCAL_JOB_UIDS {text!r}: uids from 1 up, FIRST <= LAST")
    return range(low, high + 1)


def missing_capabilities() -> list[str]:
    """The capabilities of REQUIRED_CAPABILITIES this process lacks (none for root)."""
    try:
        status = Path("/proc/self/status").read_text()
        line = next(ln for ln in status.splitlines() if ln.startswith("CapEff:"))
        effective = int(line.split()[1], 16)
    except (OSError, StopIteration, ValueError, IndexError):
        effective = 0 if os.geteuid() != 0 else ~0
    return [name for name, bit in REQUIRED_CAPABILITIES.items() if not effective >> bit & 1]


def startup_problem(settings: Settings) -> str | None:
    """Why jobs cannot run under LOCAL_JOB_UIDS with these settings here (one line), or
    None when they can or the setting is empty."""
    if not settings.LOCAL_JOB_UIDS.strip():
        return None
    if settings.MANAGER != "local":
        return f"LOCAL_JOB_UIDS is for the local manager (MANAGER is {settings.MANAGER})"
    try:
        parse_uids(settings.LOCAL_JOB_UIDS)
    except SettingsError as exc:
        return str(exc)
    if os.geteuid() != 0:
        # Capabilities given to another account would not do: a job started from a
        # non-root uid keeps them (ambient), and with them everything this protects.
        return (
            f"LOCAL_JOB_UIDS needs the server to run as root (it runs as uid "
            f"{os.geteuid()}): see docs/deployment.md"
        )
    missing = missing_capabilities()
    if missing:
        return (
            "LOCAL_JOB_UIDS needs the server to run as root with its capabilities (it "
            f"lacks {', '.join(missing)}): see docs/deployment.md"
        )
    managed = datadirs.directory_modes(settings)
    for parent in reversed(settings.jobs_path.parents):
        if parent in managed or not parent.exists():
            continue
        if not parent.stat().st_mode & 0o001:
            return (
                f"LOCAL_JOB_UIDS: jobs could not reach JOBS_PATH: {parent} is not "
                f"searchable by other accounts (chmod o+x {parent})"
            )
    return None


def kill_processes_of(uid: int) -> None:
    """SIGKILL every process whose real, effective or saved uid is ``uid``, again until
    none is left (a process killed cannot fork, so the rounds end)."""
    for _ in range(KILL_ROUNDS):
        found = [pid for pid in _pids() if _runs_as(pid, uid)]
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)
    log.warning("processes of uid %d are still there after %d rounds of SIGKILL", uid, KILL_ROUNDS)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _runs_as(pid: int, uid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields.get("State", "").strip().startswith(("Z", "X")):
        return False  # a zombie: nothing to kill, its parent reaps it
    return str(uid) in fields.get("Uid", "").split()[:3]


@dataclass(frozen=True)
class JobAccount:
    """Who a batch script runs as: ``uid`` (also its gid, with no other groups; None:
    the server's account) and its environment."""

    uid: int | None
    environment: dict[str, str]


class JobUids:
    """The uid range of LOCAL_JOB_UIDS and its leases (in ``leases``)."""

    def __init__(self, uids: range, leases: Path) -> None:
        self.uids = uids
        self.leases = leases

    @classmethod
    def from_settings(cls, settings: Settings) -> JobUids | None:
        """The job uids of the settings, None without LOCAL_JOB_UIDS; SettingsError if
        they cannot be used here (startup_problem)."""
        problem = startup_problem(settings)
        if problem is not None:
            raise SettingsError(problem)
        if not settings.LOCAL_JOB_UIDS.strip():
            return None
        return cls(parse_uids(settings.LOCAL_JOB_UIDS), settings.VAR_PATH / LEASES_DIR)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.leases.mkdir(mode=datadirs.PRIVATE_DIRECTORY, parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.leases / LOCK_FILE, flags, datadirs.PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def start(self, job_dir: Path) -> int:
        """Lease a free uid for the job and give it the job's directory; the uid.
        ManagerError when every uid of the range runs a job."""
        with self._locked():
            taken = {int(n) for n in os.listdir(self.leases) if n.isdigit()}
            uid = next((u for u in self.uids if u not in taken or self._stale(u)), None)
            if uid is None:
                raise ManagerError(
                    f"every uid of LOCAL_JOB_UIDS ({self.uids.start}-{self.uids.stop - 1}) "
                    "runs a job: try again when one has ended"
                )
            # Nothing of an earlier job under this uid may see the new one.
            kill_processes_of(uid)
            _write_lease(self.leases / str(uid), str(job_dir))
            _chown_tree(job_dir, uid)
        return uid

    def release(self, job_dir: Path) -> None:
        """The job ended: kill what runs under its uid, give its directory back to the
        server's account, free the uid. Nothing if it holds none."""
        with self._locked():
            uid = self._lease_of(job_dir)
            if uid is None:
                return
            kill_processes_of(uid)
            with contextlib.suppress(FileNotFoundError), nofollow.directory(job_dir) as fd:
                os.fchown(fd, os.geteuid(), os.getegid())
                os.fchmod(fd, datadirs.PRIVATE_DIRECTORY)
            (self.leases / str(uid)).unlink(missing_ok=True)

    def account(self, uid: int, job_dir: Path) -> JobAccount:
        """How the batch script of a job starts under ``uid``."""
        environment = {
            k: v for k, v in os.environ.items() if k in PASSED_VARIABLES or k.startswith("LC_")
        }
        environment["HOME"] = str(job_dir)
        return JobAccount(uid, environment)

    def _lease_of(self, job_dir: Path) -> int | None:
        for name in os.listdir(self.leases):
            if name.isdigit() and self._holder(int(name)) == str(job_dir):
                return int(name)
        return None

    def _holder(self, uid: int) -> str | None:
        try:
            return (self.leases / str(uid)).read_text()
        except OSError:
            return None

    def _stale(self, uid: int) -> bool:
        """A lease whose job directory is gone, or no longer the uid's (a server
        stopped between giving it back and removing the lease)."""
        holder = self._holder(uid)
        if holder is None:
            return True
        try:
            return os.lstat(holder).st_uid != uid
        except FileNotFoundError:
            return True


def _write_lease(path: Path, text: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(path, flags, datadirs.PRIVATE_FILE), "w") as handle:
        handle.write(text)


def _chown_tree(job_dir: Path, uid: int) -> None:
    """The job directory and everything the server put in it, to ``uid`` (no link
    followed; nothing of the job's has run there yet)."""
    with nofollow.directory(job_dir) as top:
        os.fchown(top, uid, uid)
        os.fchmod(top, datadirs.PRIVATE_DIRECTORY)
    for _root, dirs, files, dir_fd in os.fwalk(job_dir, follow_symlinks=False):
        for name in dirs + files:
            os.chown(name, uid, uid, dir_fd=dir_fd, follow_symlinks=False)
