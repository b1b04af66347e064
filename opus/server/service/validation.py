"""What a client sends for a job, checked against its definition and the server's limits.

A job's values arrive as a form: its parameters, its input files (uploads, or URLs the
server fetches), options of the execution manager (``slurm_mem``…) and the UWS control
parameters (PHASE, RUNID, EXECUTIONDURATION, DESTRUCTION). ``JobValidator`` sorts and
checks them all before anything is stored, so that a refused request leaves nothing
behind; every refusal is a BadRequest naming the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opus.core.errors import BadRequest
from opus.core.records import JobDetails
from opus.core.text import text_problem
from opus.core.times import parse_time
from opus.server.jdl import JobDefinition, ParameterError, coerce_parameters
from opus.server.managers import Manager, all_option_names
from opus.server.service.inputs import Upload
from opus.settings import Settings

# The UWS control parameters a creation request may carry beside the job's values.
CONTROL_PARAMETERS = frozenset({"PHASE", "RUNID", "EXECUTIONDURATION", "DESTRUCTION"})
RUN_ID_MAX_LENGTH = 1024
# Seconds: what a 32-bit SQL integer column holds (68 years).
DURATION_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class Control:
    """The UWS control parameters of a creation request, checked."""

    run: bool = False
    run_id: str | None = None
    execution_duration: str | None = None
    destruction: str | None = None


@dataclass(frozen=True)
class Values:
    """A job's values, sorted and checked: what to store, fetch and save."""

    parameters: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)


class JobValidator:
    """Checks creation requests and parameter updates for one server."""

    def __init__(self, settings: Settings, manager: Manager) -> None:
        self.settings = settings
        self.manager = manager

    def control(self, control: Mapping[str, str]) -> Control:
        """The control parameters (upper-case names) of a creation request."""
        remaining = dict(control)
        run = False
        if "PHASE" in remaining:
            if remaining.pop("PHASE").strip().upper() != "RUN":
                raise BadRequest("PHASE at creation may only be RUN", "PHASE")
            run = True
        run_id = remaining.pop("RUNID", None)
        if run_id is not None and len(run_id) > RUN_ID_MAX_LENGTH:
            raise BadRequest(f"RUNID longer than {RUN_ID_MAX_LENGTH} characters", "RUNID")
        if run_id is not None and (problem := text_problem(run_id)):
            raise BadRequest(f"RUNID {problem}", "RUNID")
        duration = remaining.pop("EXECUTIONDURATION", None)
        destruction = remaining.pop("DESTRUCTION", None)
        if remaining:
            name = sorted(remaining)[0]
            raise BadRequest(f"unexpected control parameter {name!r}", name)
        return Control(run, run_id, duration, destruction)

    def values(
        self,
        jdl: JobDefinition,
        values: Mapping[str, str],
        uploads: Sequence[Upload] = (),
        *,
        partial: bool = False,
    ) -> Values:
        """A job's parameters, file inputs and manager options, checked.

        ``partial`` checks an update of a PENDING job: only what is given, and no
        required input is missing then.
        """
        file_names = {name.lower(): name for name in jdl.file_inputs()}
        plain, urls, options = self._split(jdl, values, file_names)
        try:
            parameters = coerce_parameters(jdl, plain, partial=partial)
        except ParameterError as exc:
            raise BadRequest(str(exc), exc.field) from None
        parameters.update(self._options(options))
        by_input: dict[str, Upload] = {}
        for upload in uploads:
            name = file_names.get(upload.field.lower())
            if name is None:
                raise BadRequest(
                    f"unknown file input {upload.field!r} for job type {jdl.name!r}", upload.field
                )
            by_input[name] = upload
        if not partial:
            for name in file_names.values():
                if self._input_required(jdl, name) and name not in urls and name not in by_input:
                    raise BadRequest(
                        f"input {name!r} is required (upload a file or give a URL)", name
                    )
        return Values(parameters, urls, by_input)

    @staticmethod
    def _input_required(jdl: JobDefinition, name: str) -> bool:
        param = jdl.parameter(name)
        if param is not None:
            return param.required and param.default is None
        entity = jdl.used_entity(name)
        return entity is None or entity.default is None

    def _split(
        self, jdl: JobDefinition, values: Mapping[str, str], file_names: Mapping[str, str]
    ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """Split values into plain parameters, file inputs given as URLs and manager
        options (lower-cased).

        UWS parameter names are case-insensitive: a name matching no parameter exactly
        is matched ignoring case. A name that is an option of any manager goes to this
        manager's check, which refuses another manager's options by name.
        """
        known = {p.name.lower(): p.name for p in jdl.parameters}
        manager_options = all_option_names() | self.manager.option_names
        plain: dict[str, str] = {}
        urls: dict[str, str] = {}
        options: dict[str, str] = {}
        for raw_name, value in values.items():
            lowered = raw_name.lower()
            if lowered in file_names:
                urls[file_names[lowered]] = value
            elif lowered in manager_options:
                options[lowered] = value
            else:
                plain[known.get(lowered, raw_name)] = value
        return plain, urls, options

    def script_values(self, details: JobDetails | None) -> tuple[dict[str, str], dict[str, str]]:
        """A job's stored parameters → (values for its script, options of the manager)."""
        values: dict[str, str] = {}
        options: dict[str, str] = {}
        for param in details.parameters if details else ():
            if param.name in self.manager.option_names:
                options[param.name] = param.value
            else:
                values[param.name] = param.value
        return values, options

    def _options(self, options: Mapping[str, str]) -> dict[str, str]:
        """Manager options as the manager accepts them (400 naming a bad one)."""
        if not options:
            return {}
        try:
            return self.manager.check_options(options)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    def execution_duration(self, jdl: JobDefinition, text: str | None) -> int:
        """Seconds a job may run: asked for, else the definition's, else the default;
        never above EXECUTION_DURATION_MAX (0, unlimited, becomes that maximum)."""
        maximum = self.settings.EXECUTION_DURATION_MAX
        if text is None:
            value = jdl.execution_duration
            if value is None:
                value = self.settings.EXECUTION_DURATION_DEFAULT
        else:
            try:
                value = int(text.strip())
            except ValueError:
                raise BadRequest(
                    f"EXECUTIONDURATION {text!r} is not an integer", "EXECUTIONDURATION"
                ) from None
            if value < 0:
                raise BadRequest(
                    "EXECUTIONDURATION must be >= 0 (0 means unlimited)", "EXECUTIONDURATION"
                )
        # The server may shorten what was asked for (UWS 1.1 §2.2.3.5); 0 is unlimited.
        if maximum > 0 and (value == 0 or value > maximum):
            value = maximum
        if value > DURATION_LIMIT:  # only without EXECUTION_DURATION_MAX
            raise BadRequest(
                f"EXECUTIONDURATION must be at most {DURATION_LIMIT} seconds", "EXECUTIONDURATION"
            )
        return value

    def destruction(self, created: datetime, text: str | None) -> datetime:
        """When a job is destroyed: asked for, but no later than DESTRUCTION_INTERVAL
        after its creation (the default)."""
        latest = created + timedelta(seconds=self.settings.DESTRUCTION_INTERVAL)
        if text is None:
            return latest
        try:
            value = parse_time(text)
        except ValueError as exc:
            raise BadRequest(f"DESTRUCTION: {exc}", "DESTRUCTION") from None
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
        return min(value, latest)
