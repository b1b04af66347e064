"""Unit tests of the SLURM manager: option checks, the sbatch command line, the command
prefix, the state table and how squeue/sacct answers and status files become states.

SLURM commands are answered by a fake runner here; tests/test_live_slurm.py runs them
against a real cluster.
"""

from __future__ import annotations

import shlex
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from opus.core.phases import Phase
from opus.server.managers import JobState, ManagedJob, ManagerError, make_manager
from opus.server.managers.slurm import (
    CommandResult,
    Runner,
    SlurmManager,
    prefixed,
    run_command,
)
from opus.server.managers.slurm_output import (
    SLURM_PHASES,
    accounting_enabled,
    parse_sbatch_id,
    parse_states,
    slurm_job_state,
)
from opus.settings import Settings, SettingsError


class FakeSlurm:
    """A runner that records commands and answers them from a table of replies."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.replies: dict[str, CommandResult] = {}

    def reply(self, program: str, stdout: str = "", stderr: str = "", returncode: int = 0) -> None:
        self.replies[program] = CommandResult(returncode, stdout, stderr)

    def __call__(self, command: Sequence[str], timeout: float) -> CommandResult:
        self.commands.append(list(command))
        return self.replies.get(command[0], CommandResult(0, "", ""))

    def programs(self) -> list[str]:
        return [command[0] for command in self.commands]


def make(tmp_path: Path, runner: Runner | None = None, **settings: str) -> SlurmManager:
    values: dict = {"VAR_PATH": tmp_path / "var", "MANAGER": "slurm"}
    values.update(settings)
    return SlurmManager(Settings(**values), runner=runner)


def job(tmp_path: Path, name: str = "j1", external_id: str | None = "101", **kw) -> ManagedJob:
    job_dir = tmp_path / "jobs" / name
    (job_dir / ".opus").mkdir(parents=True, exist_ok=True)
    return ManagedJob(name, external_id, job_dir, **kw)


def write_status(managed: ManagedJob, text: str) -> None:
    (managed.job_dir / ".opus" / "status").write_text(text)


# -- building the manager -------------------------------------------------------------


def test_make_manager_builds_the_slurm_manager(tmp_path: Path) -> None:
    manager = make_manager(Settings(VAR_PATH=tmp_path, MANAGER="slurm"))
    assert isinstance(manager, SlurmManager)
    assert manager.option_names == {
        "slurm_partition",
        "slurm_account",
        "slurm_nodes",
        "slurm_ntasks",
        "slurm_cpus_per_task",
        "slurm_mem",
    }
    with pytest.raises(ValueError, match="local or slurm"):
        make_manager(Settings(VAR_PATH=tmp_path, MANAGER="pbs"))


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("SLURM_PARTITION", "debug --wrap=id"),
        ("SLURM_ACCOUNT", "-A"),
        ("SLURM_MEM", "lots"),
        ("SLURM_NODES", "3-1"),
        ("SLURM_COMMAND_PREFIX", "ssh 'unbalanced"),
    ],
)
def test_bad_settings_fail_at_start_up(tmp_path: Path, setting: str, value: str) -> None:
    with pytest.raises(SettingsError, match=setting):
        make(tmp_path, **{setting: value})


def test_the_time_limit_grace_lets_slurm_end_the_job_first() -> None:
    # A minute of rounding plus slurmctld's 30 s check, KillWait and a reconcile pass.
    assert SlurmManager.time_limit_grace >= 60 + 30 + 30


# -- options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("slurm_partition", "debug", "debug"),
        ("slurm_partition", "gpu.big,cpu_2", "gpu.big,cpu_2"),
        ("slurm_account", "astro-lab_1", "astro-lab_1"),
        ("slurm_nodes", "2", "2"),
        ("slurm_nodes", "1-4", "1-4"),
        ("slurm_ntasks", "8", "8"),
        ("slurm_cpus_per_task", "16", "16"),
        ("slurm_mem", "4000", "4000"),
        ("slurm_mem", "2g", "2G"),
        ("SLURM_MEM", "512M", "512M"),
    ],
)
def test_valid_options_are_accepted(tmp_path: Path, name: str, value: str, expected: str) -> None:
    assert make(tmp_path).check_options({name: value}) == {name.lower(): expected}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("slurm_cpus_per_task", "1 --wrap=x"),
        ("slurm_partition", "-p x"),
        ("slurm_partition", "--wrap=id"),
        ("slurm_partition", "$(id)"),
        ("slurm_account", "a;b"),
        ("slurm_account", "`id`"),
        ("slurm_account", "a b"),
        ("slurm_account", "a=b"),
        ("slurm_account", "-x"),
        ("slurm_account", "a'b"),
        ("slurm_account", "a\nb"),
        ("slurm_account", ""),
        ("slurm_partition", "debug,"),
        ("slurm_partition", "debug,-x"),
        ("slurm_nodes", "0"),
        ("slurm_nodes", "4-2"),
        ("slurm_nodes", "1-"),
        ("slurm_ntasks", "-1"),
        ("slurm_ntasks", "1.5"),
        ("slurm_ntasks", "01"),
        ("slurm_cpus_per_task", "two"),
        ("slurm_mem", "1GB"),
        ("slurm_mem", "-1"),
        ("slurm_mem", "1 G"),
        ("slurm_mem", "1G;id"),
    ],
)
def test_unsafe_or_malformed_options_are_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name) as caught:
        make(tmp_path).check_options({name: value})
    assert "\n" not in str(caught.value).replace(repr(value), "")


def test_unknown_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="slurm_qos is not an option"):
        make(tmp_path).check_options({"slurm_qos": "high"})


# -- sbatch ---------------------------------------------------------------------------


def test_sbatch_command_line(tmp_path: Path) -> None:
    managed = job(tmp_path, execution_duration=61, jobname="plot")
    script = managed.job_dir / ".opus" / "batch.sh"
    argv = make(tmp_path).sbatch_command(managed, script)
    log = f"{managed.job_dir}/.opus/batch.log"
    assert argv == [
        "sbatch",
        "--parsable",
        "--job-name=opus-plot-j1",
        f"--chdir={managed.job_dir}",
        f"--output={log}",
        f"--error={log}",
        "--no-requeue",
        "--time=2",
        str(script),
    ]


@pytest.mark.parametrize(("seconds", "minutes"), [(1, "1"), (60, "1"), (3600, "60"), (3601, "61")])
def test_time_limit_is_rounded_up_to_the_minute(tmp_path: Path, seconds: int, minutes: str) -> None:
    managed = job(tmp_path, execution_duration=seconds)
    argv = make(tmp_path).sbatch_command(managed, managed.job_dir / "b.sh")
    assert [a for a in argv if a.startswith("--time")] == [f"--time={minutes}"]


def test_no_time_limit_for_an_unlimited_job(tmp_path: Path) -> None:
    managed = job(tmp_path, execution_duration=0)
    argv = make(tmp_path).sbatch_command(managed, managed.job_dir / "b.sh")
    assert not [a for a in argv if a.startswith("--time")]


def test_job_options_override_the_settings_defaults(tmp_path: Path) -> None:
    manager = make(tmp_path, SLURM_PARTITION="debug", SLURM_MEM="1G", SLURM_ACCOUNT="lab")
    managed = job(tmp_path, options={"slurm_mem": "2g", "slurm_cpus_per_task": "4"})
    argv = manager.sbatch_command(managed, managed.job_dir / "b.sh")
    assert argv[-5:] == [
        "--partition=debug",
        "--account=lab",
        "--cpus-per-task=4",
        "--mem=2G",
        str(managed.job_dir / "b.sh"),
    ]


def test_options_are_checked_again_at_submission(tmp_path: Path) -> None:
    runner = FakeSlurm()
    managed = job(tmp_path, options={"slurm_mem": "1 --wrap=id"})
    with pytest.raises(ManagerError, match="slurm_mem"):
        make(tmp_path, runner).submit(managed, managed.job_dir / "b.sh")
    assert runner.commands == []


def test_percent_signs_in_paths_are_escaped_for_sbatch(tmp_path: Path) -> None:
    managed = job(tmp_path, name="100%x")
    argv = make(tmp_path).sbatch_command(managed, managed.job_dir / "b.sh")
    assert f"--output={tmp_path}/jobs/100%%x/.opus/batch.log" in argv
    # --chdir and the script are plain paths, not patterns.
    assert f"--chdir={tmp_path}/jobs/100%x" in argv
    assert argv[-1] == f"{tmp_path}/jobs/100%x/b.sh"


@pytest.mark.parametrize("name", ["back\\slash", "new\nline"])
def test_job_dirs_sbatch_cannot_take_are_refused(tmp_path: Path, name: str) -> None:
    runner = FakeSlurm()
    managed = job(tmp_path, name=name)
    with pytest.raises(ManagerError, match="path"):
        make(tmp_path, runner).submit(managed, managed.job_dir / "b.sh")
    assert runner.commands == []


@pytest.mark.parametrize(
    ("stdout", "slurm_id"),
    [("1234\n", "1234"), ("77;cluster_a\n", "77"), ("Welcome to the login node\n42\n", "42")],
)
def test_submit_returns_the_slurm_job_id(tmp_path: Path, stdout: str, slurm_id: str) -> None:
    runner = FakeSlurm()
    runner.reply("sbatch", stdout)
    managed = job(tmp_path)
    assert make(tmp_path, runner).submit(managed, managed.job_dir / "b.sh") == slurm_id
    assert runner.programs() == ["sbatch"]


def test_submission_refused_by_slurm_raises_its_message(tmp_path: Path) -> None:
    runner = FakeSlurm()
    runner.reply(
        "sbatch",
        stderr="sbatch: error: invalid partition specified: nope\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n",
        returncode=1,
    )
    managed = job(tmp_path)
    with pytest.raises(ManagerError) as caught:
        make(tmp_path, runner).submit(managed, managed.job_dir / "b.sh")
    message = str(caught.value)
    assert "Invalid partition name specified" in message
    assert "\n" not in message


def test_a_hanging_sbatch_is_followed_by_a_scancel_of_its_job_name(tmp_path: Path) -> None:
    commands: list[list[str]] = []

    def runner(command: Sequence[str], timeout: float) -> CommandResult:
        commands.append(list(command))
        if command[0] == "sbatch":
            raise subprocess.TimeoutExpired(list(command), timeout)
        return CommandResult(0, "", "")

    managed = job(tmp_path, jobname="sleep")
    with pytest.raises(ManagerError, match="sbatch did not answer"):
        make(tmp_path, runner).submit(managed, managed.job_dir / "b.sh")
    assert [c[0] for c in commands] == ["sbatch", "scancel"]
    assert commands[1] == ["scancel", "--name=opus-sleep-j1"]


def test_sbatch_output_without_an_id_is_an_error() -> None:
    with pytest.raises(ManagerError, match="no job id"):
        parse_sbatch_id("sbatch: something else\n")


def test_commands_run_with_the_job_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPUS_DATABASE_URL", "postgresql://opus:secret@db/opus")
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/test.conf")
    done = run_command(["env"], 10)
    assert "SLURM_CONF=/etc/slurm/test.conf" in done.stdout.splitlines()
    assert "secret" not in done.stdout


def test_a_command_that_hangs_times_out(tmp_path: Path) -> None:
    manager = make(tmp_path)
    manager.timeout = 0.2
    with pytest.raises(ManagerError, match="did not answer"):
        manager.run(["sleep", "5"])


def test_a_missing_program_is_a_manager_error(tmp_path: Path) -> None:
    manager = make(tmp_path, SLURM_COMMAND_PREFIX=str(tmp_path / "no-such-program"))
    with pytest.raises(ManagerError, match="could not run"):
        manager.run(["squeue"])


# -- the command prefix ------------------------------------------------------------------


def test_prefixes_other_than_ssh_take_the_argv_as_is() -> None:
    argv = ["squeue", "--format=%i|%T|%r"]
    assert prefixed([], argv) == argv
    assert prefixed(["sudo", "-u", "opus"], argv) == ["sudo", "-u", "opus", *argv]


def test_ssh_gets_the_command_as_one_quoted_string() -> None:
    argv = ["sbatch", "--chdir=/data/my jobs/x", "--format=%i|%T", "$(id)"]
    command = prefixed(["/usr/bin/ssh", "-p", "22", "opus@login"], argv)
    assert command[:4] == ["/usr/bin/ssh", "-p", "22", "opus@login"]
    (remote,) = command[4:]
    assert shlex.split(remote) == argv


def fake_ssh(tmp_path: Path) -> Path:
    """A program named ssh that does what ssh does with its command: hand it to sh."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "ssh"
    # Drops the destination, joins the rest with spaces and runs it with a shell.
    program.write_text('#!/bin/sh\nshift\nexec sh -c "$*"\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program


def test_values_survive_the_remote_shell_of_an_ssh_prefix(tmp_path: Path) -> None:
    ssh = fake_ssh(tmp_path)
    manager = make(tmp_path, SLURM_COMMAND_PREFIX=f"{ssh} opus@login env LC_ALL=C")
    values = ["a b", "$(touch pwned)", "x;y", "it's", '"q"', "%i|%T", "*"]
    stdout = manager.run(["printf", "%s\\n", *values])
    assert stdout.splitlines() == values
    assert not Path("pwned").exists()


def test_a_failing_command_behind_the_prefix_raises_its_stderr(tmp_path: Path) -> None:
    ssh = fake_ssh(tmp_path)
    manager = make(tmp_path, SLURM_COMMAND_PREFIX=f"{ssh} opus@login")
    with pytest.raises(ManagerError, match="squeue: error: no controller"):
        manager.run(["sh", "-c", "echo 'squeue: error: no controller' >&2; exit 1"])


# -- abort ------------------------------------------------------------------------------


def test_abort_cancels_the_slurm_job(tmp_path: Path) -> None:
    runner = FakeSlurm()
    make(tmp_path, runner).abort(job(tmp_path, external_id="555"))
    assert runner.commands == [["scancel", "555"]]


@pytest.mark.parametrize(
    "stderr",
    [
        "scancel: error: Kill job error on job id 555: Invalid job id specified\n",
        "scancel: error: Kill job error on job id 555: Job/step already completing or completed\n",
    ],
)
def test_abort_of_an_ended_job_does_not_raise(tmp_path: Path, stderr: str) -> None:
    runner = FakeSlurm()
    runner.reply("scancel", stderr=stderr, returncode=1)
    make(tmp_path, runner).abort(job(tmp_path, external_id="555"))


def test_abort_raises_other_failures(tmp_path: Path) -> None:
    runner = FakeSlurm()
    runner.reply(
        "scancel", stderr="scancel: error: Unable to contact slurm controller\n", returncode=1
    )
    with pytest.raises(ManagerError, match="Unable to contact"):
        make(tmp_path, runner).abort(job(tmp_path, external_id="555"))


def test_abort_without_a_slurm_id_does_nothing(tmp_path: Path) -> None:
    runner = FakeSlurm()
    manager = make(tmp_path, runner)
    manager.abort(job(tmp_path, external_id=None))
    manager.abort(job(tmp_path, external_id="1234:5678"))
    assert runner.commands == []


# -- the state table -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "reason", "phase"),
    [
        ("PENDING", "Resources", Phase.QUEUED),
        ("PENDING", "JobHeldUser", Phase.HELD),
        ("PENDING", "JobHeldAdmin", Phase.HELD),
        ("CONFIGURING", "None", Phase.QUEUED),
        ("RUNNING", "None", Phase.EXECUTING),
        ("COMPLETING", "None", Phase.EXECUTING),
        ("COMPLETED", "None", Phase.COMPLETED),
        ("CANCELLED", "None", Phase.ABORTED),
        ("CANCELLED by 0", "", Phase.ABORTED),
        ("TIMEOUT", "TimeLimit", Phase.ABORTED),
        ("FAILED", "NonZeroExitCode", Phase.ERROR),
        ("NODE_FAIL", "NodeDown", Phase.ERROR),
        ("OUT_OF_MEMORY", "OutOfMemory", Phase.ERROR),
        ("BOOT_FAIL", "None", Phase.ERROR),
        ("DEADLINE", "None", Phase.ERROR),
        ("SUSPENDED", "None", Phase.SUSPENDED),
        ("PREEMPTED", "None", Phase.ABORTED),
        ("REQUEUED", "None", Phase.QUEUED),
        ("REQUEUE_HOLD", "None", Phase.HELD),
        ("STOPPED", "None", Phase.SUSPENDED),
    ],
)
def test_slurm_states_map_to_uws_phases(state: str, reason: str, phase: Phase) -> None:
    mapped = slurm_job_state("7", state, reason)
    assert mapped is not None
    assert mapped.phase == phase
    if phase in (Phase.ERROR, Phase.ABORTED):
        assert mapped.message
    else:
        assert mapped.message is None


def test_error_messages_carry_slurm_reasons() -> None:
    failed = slurm_job_state("7", "NODE_FAIL", "NodeDown")
    assert failed is not None and failed.message == (
        "the SLURM job 7 ended because its node failed (NodeDown)"
    )
    timeout = slurm_job_state("7", "TIMEOUT", "TimeLimit")
    assert timeout is not None and timeout.message is not None
    assert "time limit" in timeout.message
    cancelled = slurm_job_state("7", "CANCELLED by 1000", "")
    assert cancelled is not None and cancelled.message == (
        "the SLURM job 7 was cancelled (by user id 1000)"
    )
    plain = slurm_job_state("7", "FAILED", "None")
    assert plain is not None and plain.message == "the SLURM job 7 failed"


def test_every_terminal_slurm_state_explains_itself() -> None:
    for state, (phase, message) in SLURM_PHASES.items():
        if phase in (Phase.ERROR, Phase.ABORTED):
            assert message, state
    assert slurm_job_state("7", "SOMETHING_NEW") is None


# -- parsing ------------------------------------------------------------------------------


def test_parse_squeue_output() -> None:
    out = "101|RUNNING|None\n102|PENDING|launch failed requeued held\nnoise\n999|COMPLETED|None\n"
    assert parse_states(out, {"101", "102"}) == {
        "101": ("RUNNING", "None"),
        "102": ("PENDING", "launch failed requeued held"),
    }


def test_parse_sacct_output() -> None:
    out = "101|COMPLETED|0:0|None\n102|FAILED|1:0|NonZeroExitCode\n103|CANCELLED by 0|0:15|\n"
    assert parse_states(out) == {
        "101": ("COMPLETED", ""),
        "102": ("FAILED", "NonZeroExitCode, exit code 1:0"),
        "103": ("CANCELLED by 0", "exit code 0:15"),
    }


def test_accounting_detection_reads_the_storage_type() -> None:
    assert not accounting_enabled("AccountingStorageType   = accounting_storage/none\n")
    assert accounting_enabled(
        "AccountingStorageHost = db\nAccountingStorageType = accounting_storage/slurmdbd\n"
    )
    assert not accounting_enabled("ClusterName = x\n")


# -- states -----------------------------------------------------------------------------


def test_states_asks_squeue_once_for_all_jobs(tmp_path: Path) -> None:
    runner = FakeSlurm()
    runner.reply("squeue", "101|RUNNING|None\n102|PENDING|Priority\n103|PENDING|JobHeldUser\n")
    jobs = [job(tmp_path, f"j{n}", str(100 + n)) for n in (1, 2, 3)]
    states = make(tmp_path, runner).states(jobs)
    assert runner.programs() == ["squeue"]
    (command,) = runner.commands
    assert "--jobs=101,102,103" in command
    assert "--states=all" in command
    assert states == {
        "j1": JobState(Phase.EXECUTING, None),
        "j2": JobState(Phase.QUEUED, None),
        "j3": JobState(Phase.HELD, None),
    }


def test_the_status_file_wins_over_the_slurm_state(tmp_path: Path) -> None:
    runner = FakeSlurm()
    # Still RUNNING for SLURM (its batch script retries a callback), done for OPUS.
    runner.reply("squeue", "101|RUNNING|None\n102|CANCELLED|None\n")
    done = job(tmp_path, "j1", "101")
    write_status(done, "COMPLETED\n\n")
    failed = job(tmp_path, "j2", "102")
    write_status(failed, "ERROR\nthe job script exited with status 3\n")
    states = make(tmp_path, runner).states([done, failed])
    assert states["j1"].phase == Phase.COMPLETED
    assert states["j2"] == JobState(Phase.ERROR, "the job script exited with status 3")


def test_slurm_failures_decide_when_there_is_no_status_file(tmp_path: Path) -> None:
    runner = FakeSlurm()
    runner.reply("squeue", "101|TIMEOUT|TimeLimit\n102|NODE_FAIL|NodeDown\n103|CANCELLED|None\n")
    jobs = [job(tmp_path, f"j{n}", str(100 + n)) for n in (1, 2, 3)]
    states = make(tmp_path, runner).states(jobs)
    assert states["j1"].phase == Phase.ABORTED
    assert "time limit" in (states["j1"].message or "")
    assert states["j2"].phase == Phase.ERROR
    assert "NodeDown" in (states["j2"].message or "")
    assert states["j3"].phase == Phase.ABORTED


def test_jobs_squeue_has_forgotten_are_judged_by_their_status_file(tmp_path: Path) -> None:
    runner = FakeSlurm()
    runner.reply(
        "squeue",
        stderr="slurm_load_jobs error: Invalid job id specified\n",
        returncode=1,
    )
    reported = job(tmp_path, "j1", "101")
    write_status(reported, "COMPLETED\n\n")
    silent = job(tmp_path, "j2", "102")
    states = make(tmp_path, runner, SLURM_ACCOUNTING="no").states([reported, silent])
    assert runner.programs() == ["squeue"]
    assert states["j1"].phase == Phase.COMPLETED
    assert states["j2"].phase == Phase.ERROR
    assert states["j2"].message == "the SLURM job 102 ended without reporting"


def test_sacct_is_asked_once_about_forgotten_jobs_when_accounting_is_on(tmp_path: Path) -> None:
    runner = FakeSlurm()
    runner.reply("squeue", "101|RUNNING|None\n")
    runner.reply("scontrol", "AccountingStorageType = accounting_storage/slurmdbd\n")
    runner.reply("sacct", "102|OUT_OF_MEMORY|0:125|None\n103|COMPLETED|0:0|None\n")
    jobs = [job(tmp_path, f"j{n}", str(100 + n)) for n in (1, 2, 3, 4)]
    manager = make(tmp_path, runner)
    states = manager.states(jobs)
    assert runner.programs() == ["squeue", "scontrol", "sacct"]
    assert "--jobs=102,103,104" in runner.commands[2]
    assert states["j1"].phase == Phase.EXECUTING
    assert states["j2"].phase == Phase.ERROR
    assert "out of memory" in (states["j2"].message or "")
    assert states["j3"].phase == Phase.COMPLETED
    assert states["j4"].phase == Phase.ERROR  # in neither: ended without reporting
    # The accounting answer of scontrol is cached.
    manager.states(jobs)
    assert runner.programs()[3:] == ["squeue", "sacct"]


def test_no_sacct_when_the_cluster_has_no_accounting(tmp_path: Path) -> None:
    runner = FakeSlurm()
    runner.reply("squeue", "")
    runner.reply("scontrol", "AccountingStorageType = accounting_storage/none\n")
    states = make(tmp_path, runner).states([job(tmp_path)])
    assert runner.programs() == ["squeue", "scontrol"]
    assert states["j1"].phase == Phase.ERROR


def test_an_unreachable_controller_decides_nothing_without_status_files(tmp_path: Path) -> None:
    runner = FakeSlurm()
    runner.reply(
        "squeue",
        stderr="squeue: error: Unable to contact slurm controller (connect failure)\n",
        returncode=1,
    )
    running = job(tmp_path, "j1", "101")
    done = job(tmp_path, "j2", "102")
    write_status(done, "COMPLETED\n\n")
    states = make(tmp_path, runner).states([running, done])
    assert states == {"j2": JobState(Phase.COMPLETED, None)}


def test_a_failing_sacct_decides_nothing_without_status_files(tmp_path: Path) -> None:
    runner = FakeSlurm()
    runner.reply("squeue", "")
    runner.reply("sacct", stderr="sacct: error: slurmdbd: connection refused\n", returncode=1)
    states = make(tmp_path, runner, SLURM_ACCOUNTING="yes").states([job(tmp_path)])
    assert runner.programs() == ["squeue", "sacct"]
    assert states == {}


def test_unknown_slurm_states_are_left_undecided(tmp_path: Path) -> None:
    runner = FakeSlurm()
    runner.reply("squeue", "101|SOMETHING_NEW|None\n")
    assert make(tmp_path, runner).states([job(tmp_path)]) == {}


def test_external_ids_that_are_not_slurm_ids(tmp_path: Path) -> None:
    runner = FakeSlurm()
    states = make(tmp_path, runner).states(
        [job(tmp_path, "j1", "1234:5678"), job(tmp_path, "j2", None)]
    )
    assert runner.commands == []
    assert states["j1"].phase == Phase.ERROR
    assert "j2" not in states


def test_the_live_runner_reports_nonzero_exits(tmp_path: Path) -> None:
    done = run_command(["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
    assert done == CommandResult(3, "out\n", "err\n")
    with pytest.raises(subprocess.TimeoutExpired):
        run_command(["sleep", "5"], 0.2)
