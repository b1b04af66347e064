"""The data directories and their modes: what OPUS keeps is the server account's alone.

VAR_PATH holds the database (password hashes, tokens' hashes), every user's inputs
and results, and the job definitions. Created with the process's umask (022 on most
systems) they would be readable by every local account, and by every job. So the
directories are made 0700 and the database file 0600 whatever the umask (the `opus`
command also sets its umask to 077, so that what SQLite, the jobs and the batch
scripts create is private too), and directories an older OPUS made with wider modes
are tightened at start, when they belong to the server's account (another account's
directory is left alone, with a warning).

With LOCAL_JOB_UIDS, jobs run under uids of their own and must reach their job
directory: JOBS_PATH, and VAR_PATH when it holds JOBS_PATH, are then 0711 (passed
through, not listed); each job directory is 0700 and its job's own.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

from opus.settings import Settings

log = logging.getLogger("opus.data")

PRIVATE_UMASK = 0o077
PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600
TRAVERSABLE_DIRECTORY = 0o711


def jobs_run_as_other_uids(settings: Settings) -> bool:
    """Whether local jobs run under uids of their own (LOCAL_JOB_UIDS)."""
    return bool(settings.LOCAL_JOB_UIDS.strip()) and settings.MANAGER == "local"


def directory_modes(settings: Settings) -> dict[Path, int]:
    """The data directories and the mode each must have."""
    var, jobs = settings.VAR_PATH, settings.jobs_path
    modes = {var: PRIVATE_DIRECTORY, settings.jdl_path: PRIVATE_DIRECTORY}
    modes[jobs] = PRIVATE_DIRECTORY
    if jobs_run_as_other_uids(settings):
        modes[jobs] = TRAVERSABLE_DIRECTORY
        # The directories from VAR_PATH down to JOBS_PATH, when JOBS_PATH is inside it.
        for parent in jobs.parents:
            if parent == var or var in parent.parents:
                modes[parent] = TRAVERSABLE_DIRECTORY
    return modes


def make_data_directories(settings: Settings) -> None:
    """Create the data directories with their modes, and tighten the ones that exist."""
    modes = directory_modes(settings)
    # Parents first: a child made before its parent's mode is set could not be reached.
    for path in sorted(modes, key=lambda p: len(p.parts)):
        mode = modes[path]
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        set_mode(path, mode)
    if modes[settings.jobs_path] == TRAVERSABLE_DIRECTORY:
        # JOBS_PATH can now be passed through: a job directory an older OPUS made 0755
        # would be open to any job that learns its id.
        with os.scandir(settings.jobs_path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_IMODE(info.st_mode) & 0o077:
                        _set_directory_mode(entry.path, PRIVATE_DIRECTORY)


def _set_directory_mode(path: str, mode: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def set_mode(path: Path, mode: int) -> None:
    """Give ``path`` exactly ``mode`` if it is the server account's (root: any); warn if
    another account's gives others more than ``mode`` does."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if stat.S_IMODE(info.st_mode) == mode:
        return
    euid = os.geteuid()
    if info.st_uid == euid or euid == 0:
        path.chmod(mode)
        log.info("%s: mode set to %o", path, mode)
    elif stat.S_IMODE(info.st_mode) & ~mode & 0o077:
        log.warning(
            "%s belongs to another account and has mode %o: make it %o",
            path,
            stat.S_IMODE(info.st_mode),
            mode,
        )


def tighten_database_file(path: Path | None) -> None:
    """A SQLite database and its journals (-wal, -shm, -journal): 0600."""
    if path is None:
        return
    for candidate in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        set_mode(candidate, PRIVATE_FILE)


def copy_private(source: Path, target: Path) -> None:
    """Copy a file to ``target``, created 0600 (not with the source's mode)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(source, "rb") as reader, os.fdopen(os.open(target, flags, PRIVATE_FILE), "wb") as out:
        shutil.copyfileobj(reader, out)
