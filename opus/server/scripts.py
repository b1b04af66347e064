"""Batch-script generation: the only place where job values become shell source.

Every user-supplied value goes through ``shlex.quote`` here and nowhere else; names
are checked against ``SHELL_NAME`` (the job definition enforces the same rule when it
is loaded, this is the last line of defence). The generated script:

1. exports JOB_ID, JOB_DIR, JOB_OUTPUT_DIR, JOB_PYTHON and every parameter as a shell variable;
2. reports EXECUTING to the server (in the background, so a server that is down does
   not delay the job); for a definition with a ``source``, clones the repository into
   JOB_SOURCE_DIR (gitsource.py; before the parameters are exported, so that none of
   them reaches git), records the commit in ``.opus/source_commit``, reports EXECUTING
   again (the server then reads the commit) and exports SRC_GIT_URL and GIT_COMMIT_REF,
   or ends the job in ERROR ("could not clone URL at REF", git's message in stderr);
3. runs the job definition's script with its stdout and stderr captured in the job's
   ``.opus`` directory;
4. moves files matching the generated entities into JOB_OUTPUT_DIR;
5. writes the final phase to ``.opus/status`` (read by the reconciler if every
   callback is lost) and reports COMPLETED or ERROR, retrying with backoff while the
   server is unreachable.

It also gives the job's script ``opus_progress PERCENT [MESSAGE]`` (an exported
function: a bash the script starts has it too), which reports how far the job got to
/handler/job_progress. It never fails nor holds up the job: it checks the percentage
(anything but a number from 0 to 100 is ignored, with a line on stderr), writes the
report to ``.opus/progress`` and returns; a sender in the background, started by the
first report, posts the latest report at most once a second (the reports in between
are dropped: the latest wins), and once the script has ended the batch script has it
post the last one before COMPLETED or ERROR. Its posts wait 5 s at most for the
server, and are tried again (backing off up to 30 s) while the server does not answer.
The sender is not a child of the script's shell, so a script's ``wait`` does not wait
for it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from opus.core.layout import (
    INTERNAL_DIR,
    JOB_SCRIPT,
    PROGRESS_FILE,
    PROGRESS_LOCK,
    RESULTS_DIR,
    SIGNAL_LOG,
    SOURCE_COMMIT_FILE,
    SOURCE_DIR,
    STATUS_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    TOKEN_FILE,
)
from opus.server import gitsource
from opus.server.gitsource import GitSource

SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Generated-entity patterns are checked by the JDL loader; this is the same rule.
SAFE_GLOB = re.compile(r"[A-Za-z0-9_*?[][A-Za-z0-9_.*?\[\]-]*")
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


# The callback client when curl is missing, run by python3 on the execution host. It retries with
# exponential backoff while the server is unreachable or answers 5xx, and gives up on
# a 4xx (the server refused: the job was aborted or deleted meanwhile).
SIGNAL_CLIENT = r"""
import sys, time, urllib.error, urllib.parse, urllib.request
url, job_id, token_file, phase, message, give_up_after = sys.argv[1:7]
with open(token_file) as handle:
    token = handle.read().strip()
body = urllib.parse.urlencode(
    {"jobid": job_id, "phase": phase, "message": message, "token": token}
).encode()
deadline = time.monotonic() + float(give_up_after)
delay = 0.5
while True:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30):
            sys.exit(0)
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            print(f"opus: signal {phase} refused: HTTP {exc.code}", file=sys.stderr)
            sys.exit(2)
        error = f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        error = str(exc)
    if time.monotonic() + delay > deadline:
        print(f"opus: signal {phase} not delivered: {error}", file=sys.stderr)
        sys.exit(1)
    time.sleep(delay)
    delay = min(delay * 2, 30.0)
"""

# The progress client when curl is missing: one post, and the HTTP status it got on
# stdout (000 without an answer), as curl's --write-out gives it.
PROGRESS_CLIENT = r"""
import sys, urllib.error, urllib.parse, urllib.request
url, job_id, token_file, percent, message = sys.argv[1:6]
try:
    with open(token_file) as handle:
        token = handle.read().strip()
    body = urllib.parse.urlencode(
        {"jobid": job_id, "percent": percent, "message": message, "token": token}
    ).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=5) as answer:
        print(answer.status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except (OSError, ValueError) as exc:
    print("000")
    print(f"opus: progress {percent} not delivered: {exc}", file=sys.stderr)
"""

# The progress functions, @NAME@ replaced by shell-quoted values (progress_functions).
# opus_progress runs in the job's own shell, which may have set -euo pipefail, noclobber
# or a trap: each of its commands that could fail is tested or followed by ``|| ...``,
# and it returns 0. The sender starts as a grandchild (the subshell that forks it
# exits), so that the script's own ``wait`` never waits for it. The batch script stops
# it with a file (``stop``) and SIGURG, which interrupts its idle wait and, unlike
# SIGTERM, does nothing to a sender that has not set its trap yet; ``done`` says it has
# posted what it had (a process nobody reaps stays a zombie, which kill -0 still finds).
PROGRESS_FUNCTIONS = r"""
opus_progress() {
  local opus_percent=${1-} opus_message=${2-}
  local opus_number='^(100(\.0*)?|[0-9]{1,2}(\.[0-9]*)?|\.[0-9]+)$'
  if ! [[ $opus_percent =~ $opus_number ]]; then
    printf 'opus_progress: %q is not a percentage from 0 to 100: ignored\n' "$opus_percent" >&2
    return 0
  fi
  printf '%s\n%s' "$opus_percent" "$opus_message" 2> /dev/null >| @FILE@.$BASHPID &&
    mv -f -- @FILE@.$BASHPID @FILE@ 2> /dev/null || return 0
  if mkdir @LOCK@ 2> /dev/null; then
    ( opus_progress_sender < /dev/null >> @LOG@ 2>&1 &
      printf '%s\n' "$!" >| @LOCK@/pid ) 2> /dev/null || :
  fi
  return 0
}
opus_progress_post() {
  if command -v curl > /dev/null 2>&1; then
    curl -sS -o /dev/null -w '%{http_code}' --max-time 5 --data-urlencode "jobid="@JOB_ID@ \
      --data-urlencode "percent=$1" --data-urlencode "message=$2" \
      --data-urlencode "token@"@TOKEN@ @URL@
  else
    python3 -c @CLIENT@ @URL@ @JOB_ID@ @TOKEN@ "$1" "$2"
  fi
}
opus_progress_sender() {
  set +e +u +x +o pipefail
  trap - ERR DEBUG RETURN
  trap : URG
  local opus_sent= opus_now opus_percent= opus_message= opus_code opus_stopping opus_due
  local opus_delay=1 opus_next=0
  while :; do
    opus_stopping=
    [ -e @LOCK@/stop ] && opus_stopping=1
    opus_now=$opus_sent
    if [ -f @FILE@ ]; then
      { IFS= read -r opus_percent; IFS= read -r -d '' opus_message; } < @FILE@
      opus_now=$opus_percent$'\n'$opus_message
    fi
    opus_due=$opus_stopping
    [ "$SECONDS" -ge "$opus_next" ] && opus_due=1
    if [ "$opus_now" != "$opus_sent" ] && [ -n "$opus_due" ]; then
      opus_code=$(opus_progress_post "$opus_percent" "$opus_message")
      case $opus_code in
        408 | 429 | 000 | 5??)
          opus_delay=$((opus_delay < 16 ? opus_delay * 2 : 30))
          opus_next=$((SECONDS + opus_delay)) ;;
        2??) opus_sent=$opus_now opus_delay=1 ;;
        *) opus_sent=$opus_now opus_delay=1
          printf 'opus: progress %s not taken: HTTP %s\n' "$opus_percent" "${opus_code:-none}" ;;
      esac
      [ -n "$opus_stopping" ] && break
      sleep 1
    else
      [ -n "$opus_stopping" ] && break
      sleep 1 & wait $!
    fi
  done
  : > @LOCK@/done
}
export -f opus_progress opus_progress_post opus_progress_sender
opus_progress_stop() {
  local opus_pid opus_tries=0
  [ -f @LOCK@/pid ] || return 0
  opus_pid=$(cat @LOCK@/pid 2> /dev/null)
  case $opus_pid in '' | *[!0-9]*) return 0 ;; esac
  : > @LOCK@/stop
  kill -URG "$opus_pid" 2> /dev/null || return 0
  while [ ! -e @LOCK@/done ] && kill -0 "$opus_pid" 2> /dev/null; do
    if [ $opus_tries -ge 150 ]; then
      kill -KILL "$opus_pid" 2> /dev/null
      break
    fi
    opus_tries=$((opus_tries + 1))
    sleep 0.1
  done
}
"""


@dataclass(frozen=True)
class BatchJob:
    """What the batch script needs to know about one job."""

    job_id: str
    job_dir: Path
    signal_url: str
    parameters: Mapping[str, str]
    result_patterns: Sequence[str]
    signal_retry_seconds: int
    # The Python a job script may run as "$JOB_PYTHON" (the JOB_PYTHON setting): the server's own
    # unless the settings name another, so that a script can use what OPUS installs
    # (logprov, to record its own provenance) without a Python of its own.
    python: str = "python3"
    # The repository cloned into JOB_SOURCE_DIR before the script runs, if any.
    source: GitSource | None = None

    @property
    def progress_url(self) -> str:
        """Where the script's progress goes: the signal endpoint's sibling."""
        return f"{self.signal_url.rsplit('/', 1)[0]}/job_progress"


def q(value: str) -> str:
    """Shell-quote one value (the single quoting function of OPUS)."""
    return shlex.quote(value)


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe shell variable name, else raise ValueError."""
    if not SHELL_NAME.fullmatch(name):
        raise ValueError(f"unsafe shell variable name {name!r}")
    return name


def progress_functions(job: BatchJob) -> str:
    """The bash source of opus_progress and its sender (and of the batch script's
    opus_progress_stop), every value in it shell-quoted."""
    internal = job.job_dir / INTERNAL_DIR
    values = {
        "FILE": str(internal / PROGRESS_FILE),
        "LOCK": str(internal / PROGRESS_LOCK),
        "LOG": str(internal / SIGNAL_LOG),
        "TOKEN": str(internal / TOKEN_FILE),
        "URL": job.progress_url,
        "JOB_ID": job.job_id,
        "CLIENT": PROGRESS_CLIENT,
    }
    # One pass: a value is never searched for placeholders again.
    source = _PLACEHOLDER.sub(lambda found: q(values[found.group(1)]), PROGRESS_FUNCTIONS)
    return source.strip("\n")


def source_lines(job: BatchJob, source: GitSource) -> list[str]:
    """The batch script's clone of ``source`` (after EXECUTING, before the parameters):
    the commit recorded and exported, or the job's end in ERROR."""
    for problem in (gitsource.url_problem(source.url), gitsource.ref_problem(source.ref)):
        if problem:
            raise ValueError(f"unsafe job source {source.url!r} at {source.ref!r}: {problem}")
    internal = job.job_dir / INTERNAL_DIR
    fetch = gitsource.FETCH_COMMIT if source.is_commit else gitsource.FETCH_BRANCH
    values = {
        "PROTOCOLS": ":".join(gitsource.GIT_SCHEMES),
        "TIMEOUT": str(gitsource.CLONE_TIMEOUT),
        "URL": source.url,
        "REF": source.ref,
    }
    template = gitsource.CLONE_FUNCTION.replace("@FETCH@", fetch.strip("\n"))
    # One pass: a value is never searched for placeholders again.
    clone = _PLACEHOLDER.sub(lambda found: q(values[found.group(1)]), template).strip("\n")
    failure = q(f"could not clone {source.url} at {source.ref}")
    return [
        clone,
        f"export JOB_SOURCE_DIR={q(str(job.job_dir / SOURCE_DIR))}",
        f'opus_commit=$(opus_source_clone 2> "$OPUS_INTERNAL/{STDERR_FILE}" < /dev/null)',
        "if ! [[ $opus_commit =~ ^[0-9a-f]{40}([0-9a-f]{24})?$ ]]; then",
        f"  opus_message={failure}",
        f'  printf "%s\\n%s\\n" ERROR "$opus_message" > "$OPUS_INTERNAL/{STATUS_FILE}"',
        '  wait "$opus_executing_pid"',
        '  opus_signal ERROR "$opus_message"',
        "  exit 1",
        "fi",
        f'printf "%s\\n" "$opus_commit" > {q(str(internal / SOURCE_COMMIT_FILE))}',
        f'export SRC_GIT_URL={q(source.url)} GIT_COMMIT_REF="$opus_commit"',
        # The server reads the commit at this second EXECUTING (either may come first).
        "opus_signal EXECUTING &",
        "opus_source_pid=$!",
    ]


def render_batch_script(job: BatchJob) -> str:
    """The bash source of a job's batch script."""
    internal = job.job_dir / INTERNAL_DIR
    lines = [
        "#!/bin/bash",
        f"# OPUS batch script for job {job.job_id}; generated, do not edit.",
        f"export JOB_ID={q(job.job_id)}",
        f"export JOB_DIR={q(str(job.job_dir))}",
        f"export JOB_OUTPUT_DIR={q(str(job.job_dir / RESULTS_DIR))}",
        f"export JOB_PYTHON={q(job.python)}",
        f"OPUS_INTERNAL={q(str(internal))}",
        f"OPUS_SIGNAL_URL={q(job.signal_url)}",
        # curl reads a retry time of 0 as "retry forever": one second is the floor.
        f"OPUS_SIGNAL_RETRY={max(1, int(job.signal_retry_seconds))}",
        f"OPUS_SIGNAL_CLIENT={q(SIGNAL_CLIENT)}",
        # Callbacks read the job's token from its file (never from the command line,
        # which other users of the host can see). curl retries connection failures,
        # timeouts and 5xx with exponential backoff, and stops on a 4xx refusal.
        "opus_signal() {",
        "  if command -v curl > /dev/null 2>&1; then",
        "    curl -sS -o /dev/null --fail --max-time 30 --retry 1000000 --retry-connrefused \\",
        '      --retry-max-time "$OPUS_SIGNAL_RETRY" --data-urlencode "jobid=$JOB_ID" \\',
        '      --data-urlencode "phase=$1" --data-urlencode "message=${2:-}" \\',
        f'      --data-urlencode "token@$OPUS_INTERNAL/{TOKEN_FILE}" "$OPUS_SIGNAL_URL"',
        "  else",
        '    python3 -c "$OPUS_SIGNAL_CLIENT" "$OPUS_SIGNAL_URL" "$JOB_ID" \\',
        f'      "$OPUS_INTERNAL/{TOKEN_FILE}" "$1" "${{2:-}}" "$OPUS_SIGNAL_RETRY"',
        f'  fi >> "$OPUS_INTERNAL/{SIGNAL_LOG}" 2>&1',
        "}",
        progress_functions(job),
        'cd "$JOB_DIR" || exit 1',
        'mkdir -p "$JOB_OUTPUT_DIR"',
        "opus_signal EXECUTING &",
        "opus_executing_pid=$!",
    ]
    if job.source is not None:
        lines += source_lines(job, job.source)
    for name, value in job.parameters.items():
        lines.append(f"export {check_name(name)}={q(value)}")
    lines += [
        "set +e",
        f'bash "$OPUS_INTERNAL/{JOB_SCRIPT}" > "$OPUS_INTERNAL/{STDOUT_FILE}" '
        f'2> "$OPUS_INTERNAL/{STDERR_FILE}" < /dev/null',
        "opus_status=$?",
        # The last progress the script reported reaches the server before its end does.
        "opus_progress_stop",
        "shopt -s nullglob",
    ]
    for pattern in job.result_patterns:
        if not SAFE_GLOB.fullmatch(pattern):
            raise ValueError(f"unsafe result pattern {pattern!r}")
        # The pattern is left unquoted on purpose so that bash expands the glob; the
        # check above guarantees it holds no shell syntax besides * ? [ ].
        lines.append(
            f'for f in {pattern}; do [ -f "$f" ] && mv -f -- "$f" "$JOB_OUTPUT_DIR/"; done'
        )
    lines += [
        "if [ $opus_status -eq 0 ]; then",
        "  opus_phase=COMPLETED opus_message=",
        "else",
        '  opus_phase=ERROR opus_message="the job script exited with status $opus_status"',
        "fi",
        f'printf "%s\\n%s\\n" "$opus_phase" "$opus_message" > "$OPUS_INTERNAL/{STATUS_FILE}"',
        # EXECUTING must reach the server before the final phase does.
        'wait "$opus_executing_pid"' + (' "$opus_source_pid"' if job.source else ""),
        'opus_signal "$opus_phase" "$opus_message"',
        "exit $opus_status",
        "",
    ]
    return "\n".join(lines)
