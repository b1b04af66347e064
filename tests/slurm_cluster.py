"""Fixtures of a single-node SLURM cluster started by the tests, and of a loopback sshd.

``slurm_cluster`` (session-scoped) starts, as root, in a temporary directory: munged
with its own key and socket, slurmctld and slurmd (both in the foreground, ``-D``)
with a generated slurm.conf on free ports, one node ``localhost`` of 16 CPUs and one
partition ``debug``, no accounting. Its ``env`` (the test process's environment plus
SLURM_CONF) is what SLURM commands and OPUS servers must run with.

``loopback_sshd`` (session-scoped) starts sshd on a free 127.0.0.1 port with its own
host key and an authorized key for root, for SLURM_COMMAND_PREFIX=ssh tests.

Missing binaries make the fixtures FAIL, not skip: ``make test`` installs them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port

# Where Debian puts the daemons; pytest may run with a PATH that lacks them.
SYSTEM_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
SLURM_PROGRAMS = (
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "scontrol",
    "scancel",
    "sinfo",
)
SSH_PROGRAMS = ("sshd", "ssh", "ssh-keygen")
START_TIMEOUT = 30.0
# Tries at starting slurmctld and slurmd: a free port may be taken before they bind it.
START_ATTEMPTS = 3
NODE = "localhost"
PARTITION = "debug"
# Unix socket paths must fit in sun_path (108 bytes).
SOCKET_PATH_MAX = 100


def which(program: str) -> str:
    found = shutil.which(program, path=SYSTEM_PATH)
    if found is None:
        pytest.fail(f"{program} is not installed (make test installs it)", pytrace=False)
    return found


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} is missing)"
    return f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class Daemons:
    """Processes started by a fixture, stopped in reverse order (also on failure)."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, argv: Sequence[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(log, "ab") as output:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                # Own session: a Ctrl-C meant for pytest does not hit them first.
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def stop(self, processes: Sequence[subprocess.Popen[bytes]] | None = None) -> None:
        """Stop ``processes`` (default: all of them), last started first."""
        chosen = list(self.processes if processes is None else processes)
        for process in reversed(chosen):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(chosen):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            self.processes.remove(process)


class StartError(Exception):
    """A daemon did not come up; the message holds the tails of its logs."""


@dataclass
class SlurmCluster:
    """A running single-node cluster."""

    root: Path
    conf: Path
    env: dict[str, str]
    munge_socket: Path
    logs: list[Path]

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=60, check=check
        )

    def job_field(self, slurm_id: str, name: str) -> str:
        """One ``Name=value`` field of ``scontrol show job``."""
        out = self.run("scontrol", "show", "job", "--oneliner", slurm_id).stdout
        for item in out.split():
            key, _, value = item.partition("=")
            if key == name:
                return value
        raise AssertionError(f"no {name} in: {out}")

    def diagnostics(self) -> str:
        return "\n".join(tail(log) for log in self.logs)


def slurm_conf(root: Path, munge_socket: Path, ctld_port: int, slurmd_port: int) -> str:
    settings = {
        "ClusterName": "opustest",
        "SlurmctldHost": NODE,
        "SlurmctldPort": ctld_port,
        "SlurmdPort": slurmd_port,
        "SlurmUser": "root",
        "SlurmdUser": "root",
        # SLURM 22.05 reads the munge socket of both plugins from AuthInfo.
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={munge_socket}",
        # No cgroups in a test container: processes are tracked by parentage.
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "MpiDefault": "none",
        # Cores are allocated, memory is not: jobs without --mem run side by side.
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core",
        "AccountingStorageType": "accounting_storage/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "JobCompType": "jobcomp/none",
        # The node claims 16 CPUs whatever the machine has.
        "SlurmdParameters": "config_overrides",
        "ReturnToService": 2,
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "SlurmctldLogFile": root / "slurmctld.log",
        "SlurmdLogFile": root / "slurmd.log",
        "PlugStackConfig": root / "plugstack.conf",
        "MailProg": "/bin/true",
        # A timed-out job is killed 5 s after its SIGTERM (not 30).
        "KillWait": 5,
        # Ended jobs stay visible to squeue for 5 minutes.
        "MinJobAge": 300,
        "SchedulerParameters": "bf_interval=2,sched_min_interval=100000",
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines += [
        f"NodeName={NODE} CPUs=16 RealMemory=16000 State=UNKNOWN",
        f"PartitionName={PARTITION} Default=YES Nodes={NODE} MaxTime=INFINITE State=UP",
    ]
    return "\n".join(lines) + "\n"


def wait_until(
    check: Callable[[], bool],
    what: str,
    processes: Sequence[subprocess.Popen[bytes]],
    logs: Sequence[Path],
) -> None:
    """Poll ``check`` until true; StartError if a process exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT
    while not check():
        dead = [p for p in processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = f"{dead[0].args[0]} exited" if dead else f"no {what} in {START_TIMEOUT:g} s"
            details = "\n".join(tail(log) for log in logs)
            raise StartError(f"{why}\n{details}")
        time.sleep(0.1)


def start_munge(root: Path, daemons: Daemons, env: dict[str, str]) -> tuple[Path, Path]:
    munge_dir = root / "munge"
    munge_dir.mkdir(mode=0o700)
    key = munge_dir / "munge.key"
    mungekey = shutil.which("mungekey", path=SYSTEM_PATH)
    if mungekey:
        subprocess.run(
            [mungekey, "--create", "--keyfile", str(key), "--bits", "1024"],
            check=True,
            capture_output=True,
            timeout=30,
        )
    else:
        key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    socket = munge_dir / "munge.socket"
    log = root / "munged.log"
    process = daemons.start(
        [
            which("munged"),
            "--foreground",
            # munged refuses to run as root without it.
            "--force",
            f"--socket={socket}",
            f"--key-file={key}",
            f"--pid-file={munge_dir / 'munged.pid'}",
            f"--seed-file={munge_dir / 'munged.seed'}",
            f"--log-file={log}",
        ],
        log,
        env,
    )
    wait_until(socket.exists, "munge socket", [process], [log])
    return socket, log


def start_slurm(cluster: SlurmCluster, daemons: Daemons) -> None:
    """slurmctld and slurmd on fresh ports and state, up to an idle node (or
    StartError, with both stopped again)."""
    root = cluster.root
    for name in ("state", "spool"):
        shutil.rmtree(root / name, ignore_errors=True)
        (root / name).mkdir()
    ctld_port = free_port()
    slurmd_port = free_port()
    while slurmd_port == ctld_port:
        slurmd_port = free_port()
    cluster.conf.write_text(slurm_conf(root, cluster.munge_socket, ctld_port, slurmd_port))
    daemon_log = root / "daemons.log"
    conf = str(cluster.conf)
    started = [
        daemons.start([which("slurmctld"), "-D", "-f", conf], daemon_log, cluster.env),
        daemons.start([which("slurmd"), "-D", "-N", NODE, "-f", conf], daemon_log, cluster.env),
    ]

    def node_idle() -> bool:
        done = cluster.run("sinfo", "--noheader", f"--nodes={NODE}", "--format=%T", check=False)
        return done.returncode == 0 and done.stdout.strip() == "idle"

    try:
        wait_until(node_idle, "idle node", [*daemons.processes[:1], *started], cluster.logs)
    except StartError:
        daemons.stop(started)
        raise


@contextmanager
def running_cluster(root: Path, drain_timeout: float = START_TIMEOUT) -> Iterator[SlurmCluster]:
    """A single-node SLURM cluster (munged, slurmctld, slurmd) in ``root``, as root.

    slurmctld and slurmd are retried on fresh ports when a free port was taken
    meanwhile; StartError if a daemon does not start. At the end, the jobs left are
    cancelled and given ``drain_timeout`` seconds to go before the daemons stop.
    """
    if len(str(root / "munge" / "munge.socket")) > SOCKET_PATH_MAX:
        raise StartError(f"temporary directory {root} is too long for a socket path")
    (root / "plugstack.conf").write_text("")
    env = dict(os.environ, PATH=SYSTEM_PATH)
    daemons = Daemons()
    try:
        try:
            munge_socket, munge_log = start_munge(root, daemons, env)
        except StartError as exc:
            raise StartError(f"munged: {exc}") from None
        conf = root / "slurm.conf"
        env["SLURM_CONF"] = str(conf)
        logs = [munge_log, root / "slurmctld.log", root / "slurmd.log", root / "daemons.log"]
        cluster = SlurmCluster(root, conf, env, munge_socket, logs)
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                start_slurm(cluster, daemons)
                break
            except StartError:
                if attempt == START_ATTEMPTS:
                    raise
        try:
            yield cluster
        finally:
            drain(cluster, drain_timeout)
    finally:
        daemons.stop()


def drain(cluster: SlurmCluster, timeout: float) -> None:
    """Cancel the jobs left and wait (bounded) until none runs: their slurmstepd
    processes would outlive slurmd otherwise."""
    cluster.run("scancel", "--user=root", check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = cluster.run(
            "squeue", "--noheader", "--states=RUNNING,COMPLETING,CONFIGURING", check=False
        )
        if done.returncode != 0 or not done.stdout.strip():
            return
        time.sleep(0.2)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A single-node SLURM cluster (munged, slurmctld, slurmd) for the session."""
    for program in SLURM_PROGRAMS:
        which(program)
    if os.geteuid() != 0:
        pytest.fail("the SLURM test cluster must be started as root", pytrace=False)
    try:
        with running_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
            yield cluster
    except StartError as exc:  # raised while starting, before any test ran
        pytest.fail(f"SLURM test cluster: {exc}", pytrace=False)


# -- a loopback sshd ----------------------------------------------------------------------


@dataclass
class LoopbackSSH:
    """An sshd on 127.0.0.1 that lets root in with ``key``."""

    port: int
    key: Path
    log: Path

    def client_argv(self) -> list[str]:
        """The ssh command line up to (and including) the destination."""
        return [
            "ssh",
            "-p",
            str(self.port),
            "-i",
            str(self.key),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "root@127.0.0.1",
        ]


@pytest.fixture(scope="session")
def loopback_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSSH]:
    """sshd on a free loopback port with its own host key and config (root's key)."""
    sshd = which("sshd")
    keygen = which("ssh-keygen")
    which("ssh")
    root = tmp_path_factory.mktemp("sshd")
    root.chmod(0o700)
    host_key = root / "host_ed25519"
    user_key = root / "id_ed25519"
    for key in (host_key, user_key):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
            check=True,
            capture_output=True,
            timeout=30,
        )
    authorized = root / "authorized_keys"
    authorized.write_text(Path(f"{user_key}.pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {root / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    # sshd's privilege separation directory; Debian's package creates it at boot only.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = root / "sshd.log"
    daemons = Daemons()
    try:
        process = daemons.start([sshd, "-D", "-e", "-f", str(config)], log, dict(os.environ))
        ssh = LoopbackSSH(port, user_key, log)

        def answers() -> bool:
            done = subprocess.run(
                [*ssh.client_argv(), "true"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
                check=False,
            )
            return done.returncode == 0

        try:
            wait_until(answers, "ssh login", [process], [log])
        except StartError as exc:
            pytest.fail(f"loopback sshd: {exc}", pytrace=False)
        yield ssh
    finally:
        daemons.stop()
