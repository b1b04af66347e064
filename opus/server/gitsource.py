"""A job's code from a git repository: which URLs and refs are accepted, and the clone.

A job definition may name ``source: {git: URL, ref: REF}`` (jdl/source.py); before the
job's script runs, its batch script clones the repository at that ref into
``$JOB_SOURCE_DIR`` (scripts.py renders ``CLONE_FUNCTION`` with every value
shell-quoted). The URL is the definition's, but the ref may be a client's value (a
parameter), so both are checked here, by the definition's rules when it is loaded, by
``coerce_parameters`` when a job is created (a bad ref is a 400 naming its parameter),
and by scripts.py once more before they become shell source:

- a URL is ``SCHEME://...`` with a scheme of ``GIT_SCHEMES``: no scp-like
  ``host:path``, no ``ext::`` or other remote helper (git runs them as commands), no
  host or user starting with ``-`` (ssh would read it as an option), no password (the
  URL is shown in every job's documents);
- a ref is a conservative subset of git's ref names (``git check-ref-format``): ASCII
  letters, digits and ``. _ / + -``, never first ``-`` (git would take it for an option),
  no empty, ``.``-first or ``.lock``-last component, no ``..``, no final ``.``; a full
  commit hash (``COMMIT_HASH``: 40 or 64 lower-case hex digits) is a commit, anything
  else a branch or tag name.

The clone runs in a subshell without any inherited ``GIT_*`` variable, with
``GIT_ALLOW_PROTOCOL`` limited to ``GIT_SCHEMES`` and ``GIT_TERMINAL_PROMPT=0`` (no
password prompt: a clone that needs one fails), ssh in batch mode, each git command
under ``timeout`` (``CLONE_TIMEOUT`` seconds), and the ref after ``--branch=`` or
``--end-of-options``. A branch or tag is cloned with ``--depth 1``; a commit is fetched
alone (``git fetch --depth 1 origin HASH``, which protocol v2 servers and GitHub allow)
or, from a server that refuses a want by hash, with every branch and tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

GIT_SCHEMES: tuple[str, ...] = ("https", "http", "ssh", "git", "file")
COMMIT_HASH = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
REF_MAX_LENGTH = 255
CLONE_TIMEOUT = 600  # seconds, each git command of the clone
_REF_CHARACTERS = re.compile(r"[A-Za-z0-9._/+-]+")
_URL_START = re.compile(r"([a-z]+)://")


@dataclass(frozen=True)
class GitSource:
    """The repository a job's code is cloned from, and the ref (a value) to clone."""

    url: str
    ref: str

    @property
    def is_commit(self) -> bool:
        """Whether the ref is a full commit hash (else a branch or tag name)."""
        return COMMIT_HASH.fullmatch(self.ref) is not None


def ref_problem(ref: str) -> str | None:
    """Why ``ref`` is not a ref OPUS clones (a phrase), or None when it is."""
    if not ref:
        return "is empty"
    if len(ref) > REF_MAX_LENGTH:
        return f"is longer than {REF_MAX_LENGTH} characters"
    if ref.startswith("-"):
        return "starts with '-' (git would read it as an option)"
    if not _REF_CHARACTERS.fullmatch(ref):
        return "is not a git ref (letters, digits and . _ / + - only)"
    components = ref.split("/")
    if "" in components:
        return "is not a git ref (a leading, trailing or double /)"
    if any(c.startswith(".") or c.endswith(".lock") for c in components) or ".." in ref:
        return "is not a git ref (a part starts with . or ends with .lock, or holds ..)"
    if ref.endswith("."):
        return "is not a git ref (it ends with .)"
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a repository URL OPUS clones (a phrase), or None when it is."""
    if not url:
        return "is empty"
    if any(char.isspace() or not char.isprintable() for char in url):
        return "contains spaces or control characters"
    schemes = ", ".join(f"{s}://" for s in GIT_SCHEMES)
    start = _URL_START.match(url)
    if start is None or start.group(1) not in GIT_SCHEMES:
        return f"is not a URL starting with one of {schemes}"
    try:
        parts = urlsplit(url)
        username, password, host = parts.username, parts.password, parts.hostname
    except ValueError as error:
        return f"is not a URL ({error})"
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            return "is not a file:///absolute/path URL"
        return None
    if not host:
        return "has no host"
    if host.startswith("-") or (username or "").startswith("-"):
        return "has a host or user starting with '-'"
    if password is not None:
        return "holds a password (the URL is shown with every job): use a credential helper"
    return None


# The clone, @NAME@ replaced by shell-quoted values (scripts.py). A function whose body
# is a subshell: what it unsets and exports stays inside. It prints the commit checked
# out; git's messages go to its stderr. @FETCH@ is the branch/tag or the commit part.
# timeout --foreground stays in the job's process group, which an abort kills whole.
CLONE_FUNCTION = r"""
opus_source_clone() (
  for opus_name in $(compgen -e GIT_); do unset "$opus_name"; done
  export GIT_ALLOW_PROTOCOL=@PROTOCOLS@ GIT_TERMINAL_PROMPT=0
  export GIT_SSH_COMMAND='ssh -o BatchMode=yes'
  opus_timeout=()
  command -v timeout > /dev/null 2>&1 && opus_timeout=(timeout --foreground -k 10 @TIMEOUT@)
  opus_git() {
    "${opus_timeout[@]}" git -c advice.detachedHead=false "$@"
    local opus_code=$?
    [ "$opus_code" -eq 124 ] && printf 'opus: git took more than %s s\n' @TIMEOUT@ >&2
    return "$opus_code"
  }
@FETCH@
  opus_git -C "$JOB_SOURCE_DIR" rev-parse --verify -q HEAD
)
"""
FETCH_BRANCH = r"""
  opus_git clone -q --depth 1 --branch=@REF@ -- @URL@ "$JOB_SOURCE_DIR" || exit
"""
FETCH_COMMIT = r"""
  opus_git init -q -- "$JOB_SOURCE_DIR" &&
    opus_git -C "$JOB_SOURCE_DIR" remote add origin @URL@ || exit
  if ! opus_git -C "$JOB_SOURCE_DIR" fetch -q --depth 1 --end-of-options origin @REF@; then
    printf 'opus: the server refused the commit alone: fetching every branch and tag\n' >&2
    opus_git -C "$JOB_SOURCE_DIR" fetch -q --tags --end-of-options origin || exit
  fi
  opus_git -C "$JOB_SOURCE_DIR" checkout -q --detach @REF@ -- || exit
"""
