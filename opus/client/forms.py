"""The new-job form: its fields, generated from a job definition, and what it posts.

Each parameter of a definition becomes one field whose input suits its datatype
(``WIDGETS``), with its limits, unit, annotation and default; a used entity (and a
parameter of datatype ``file``) becomes a file upload or a URL, with a toggle between
the two, and a third choice on a rerun: the file of the job rerun, copied on the
server. The form's own field names contain a ``.``, which no parameter name can
(``[A-Za-z_][A-Za-z0-9_]*``): ``input.source``, ``input.url``, ``opus.booleans``.

"Run once per file" (``opus.each``, the input in ``opus.each.input``) is offered for
the inputs of one file (``Field.batch``): several files uploaded for that input, or
several of the user's results ticked (``input.result``, source ``results``), make one
job each (``Submission.batch``, ``batch_jobs``); without it, several files for one
input are refused at the field.

``Submission.parse`` turns a posted form back into what the UWS tree would have
received (parameters, control parameters, uploads), so the service checks a page's
job exactly as an API client's; its refusals are put back at their field
(``field_of_error``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from opus.server.jdl import JobDefinition, ParameterDefinition
from opus.server.jdl.model import FLOAT_DATATYPES, INTEGER_DATATYPES, UsedEntity
from opus.server.jdl.validation import INTEGER_RANGES, InvalidValue, canonical_value
from opus.server.service.inputs import Upload
from opus.server.service.validation import RUN_ID_MAX_LENGTH

# The input of each datatype (every other datatype, and any with options, as noted).
WIDGETS = {
    "xs:string": "text",
    "xs:anyURI": "url",
    "xs:boolean": "checkbox",
    "file": "file",
    **{datatype: "number" for datatype in INTEGER_DATATYPES | FLOAT_DATATYPES},
}
# Integer ranges a browser can check exactly (xs:long's bounds are past 2**53).
BROWSER_RANGES = {k: v for k, v in INTEGER_RANGES.items() if k != "xs:long"}
CONTROL_FIELDS = ("RUNID", "EXECUTIONDURATION", "DESTRUCTION")
BOOLEANS_FIELD = "opus.booleans"
RERUN_FIELD = "opus.rerun"
SOURCES = ("file", "url", "reuse", "results")
EACH_FIELD = "opus.each"
EACH_INPUT_FIELD = "opus.each.input"
RESULT_SUFFIX = ".result"
_QUOTED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)'")
# One job of "Run once per file": the file given (an upload, or a URL), the job's
# values, its uploads.
BatchItem = tuple[Upload | str, dict[str, str], list[Upload]]


@dataclass(frozen=True)
class Field:
    """One input of the form, as the template draws it."""

    name: str
    widget: str  # text, number, checkbox, url, select, file
    datatype: str = "xs:string"
    required: bool = False
    value: str = ""
    annotation: str = ""
    unit: str = ""
    options: tuple[str, ...] = ()
    min: str | None = None
    max: str | None = None
    step: str | None = None
    # A file input: several files allowed, the expected type, how it is given now,
    # and the name of the rerun job's file that "reuse" copies.
    multiple: bool = False
    accept: str = ""
    source: str = "file"
    reuse: str = ""
    error: str = ""
    maxlength: int | None = None
    # The results ticked for this input in "Run once per file" (their URLs).
    chosen: tuple[str, ...] = ()

    @property
    def batch(self) -> bool:
        """Whether "Run once per file" may apply to this input (a file input that takes
        one file)."""
        return self.widget == "file" and not self.multiple

    @property
    def checked(self) -> bool:
        """A checkbox's state: its value read as an xs:boolean."""
        try:
            return canonical_value("xs:boolean", self.value) == "true"
        except InvalidValue:
            return False

    @property
    def id(self) -> str:
        return "field-" + self.name.replace(".", "-")


def several(multiplicity: str) -> bool:
    """Whether a multiplicity (1, 3, *, 0..1, 1..*) allows more than one file."""
    upper = multiplicity.split("..")[-1].strip()
    return upper == "*" or (upper.isdecimal() and int(upper) > 1)


def parameter_field(param: ParameterDefinition, value: str | None) -> Field:
    """The field of a parameter, holding ``value`` (else its default)."""
    widget = "select" if param.options else WIDGETS.get(param.datatype, "text")
    low, high = param.min, param.max
    step = None
    if param.datatype in INTEGER_DATATYPES:
        step = "1"
        bounds = BROWSER_RANGES.get(param.datatype)
        if bounds is not None:
            low = low if low is not None else str(bounds[0])
            high = high if high is not None else str(bounds[1])
    elif param.datatype in FLOAT_DATATYPES:
        step = "any"
    given = value if value is not None else param.default
    return Field(
        name=param.name,
        widget=widget,
        datatype=param.datatype,
        required=param.required,
        value=given or "",
        annotation=param.annotation,
        unit=param.unit,
        options=tuple(param.options),
        min=low,
        max=high,
        step=step,
    )


def entity_field(entity: UsedEntity, url: str | None) -> Field:
    """The field of a used entity (an input file), with ``url`` if one was given."""
    return Field(
        name=entity.name,
        widget="file",
        datatype="file",
        required=entity.default is None,
        value=url or "",
        annotation=entity.annotation,
        multiple=several(entity.multiplicity),
        accept=entity.content_type,
        source="url" if url else "file",
    )


def job_fields(
    jdl: JobDefinition,
    values: Mapping[str, str],
    errors: Mapping[str, str] = {},
    reuse: Mapping[str, str] = {},
    sources: Mapping[str, str] = {},
    chosen: Mapping[str, Sequence[str]] = {},
) -> list[Field]:
    """The fields of a definition's parameters and inputs, in the definition's order,
    holding ``values`` (by parameter name, matched exactly first, then in any case),
    and for file inputs the results ``chosen`` for "Run once per file"."""
    lowered = {name.lower(): value for name, value in values.items()}

    def value_of(name: str) -> str | None:
        return values.get(name, lowered.get(name.lower()))

    fields: list[Field] = []
    for param in jdl.parameters:
        if param.datatype == "file":
            made = replace(
                parameter_field(param, None),
                value=value_of(param.name) or "",
                source="url" if value_of(param.name) else "file",
                required=param.required and param.default is None,
            )
        else:
            made = parameter_field(param, value_of(param.name))
        fields.append(made)
    fields += [entity_field(entity, value_of(entity.name)) for entity in jdl.used]
    result = []
    for made in fields:
        if made.widget == "file" and made.name in reuse:
            made = replace(made, reuse=reuse[made.name], source="reuse")
        if made.widget == "file" and sources.get(made.name) in SOURCES:
            made = replace(made, source=sources[made.name])
        if made.batch and chosen.get(made.name):
            made = replace(made, chosen=tuple(chosen[made.name]))
        result.append(replace(made, error=errors.get(made.name, "")))
    return result


def batch_inputs(jdl: JobDefinition) -> list[str]:
    """The inputs "Run once per file" may apply to, in the form's order."""
    return [made.name for made in job_fields(jdl, {}) if made.batch]


def control_fields(
    values: Mapping[str, str],
    errors: Mapping[str, str],
    duration_default: int,
    duration_max: int,
    option_rules: Mapping[str, str],
) -> list[Field]:
    """The "Advanced" fields: runId, executionDuration (at most ``duration_max``
    seconds, when there is a maximum), destruction, and the manager's options."""
    upper = {name.upper(): value for name, value in values.items()}
    duration = upper.get("EXECUTIONDURATION", str(duration_default))
    fields = [
        Field(
            "RUNID",
            "text",
            value=upper.get("RUNID", ""),
            annotation="A label of your own for the job, to find it in the job list.",
            maxlength=RUN_ID_MAX_LENGTH,
        ),
        Field(
            "EXECUTIONDURATION",
            "number",
            "xs:int",
            value=duration,
            unit="s",
            annotation="The longest the job may run before it is aborted"
            + (f" (at most {duration_max} s)." if duration_max > 0 else "; 0: no limit."),
            min="0" if duration_max <= 0 else "1",
            max=str(duration_max) if duration_max > 0 else None,
            step="1",
        ),
        Field(
            "DESTRUCTION",
            "datetime-local",
            value=upper.get("DESTRUCTION", "")[:16].removesuffix("Z"),
            annotation="When the job and its files are deleted (UTC); by default, "
            "the latest the server allows.",
        ),
    ]
    lowered = {name.lower(): value for name, value in values.items()}
    fields += [
        Field(name, "text", value=lowered.get(name, ""), annotation=rule)
        for name, rule in sorted(option_rules.items())
    ]
    return [replace(made, error=errors.get(made.name, "")) for made in fields]


@dataclass
class Submission:
    """A posted new-job form, as the service takes it."""

    values: dict[str, str] = field(default_factory=dict)
    control: dict[str, str] = field(default_factory=dict)
    uploads: list[Upload] = field(default_factory=list)
    # Inputs to copy from the rerun job (input name → the job's id), and how each
    # input was given (to draw the form again as it was).
    reuse_from: str | None = None
    reused: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # "Run once per file": the input it applies to, and its files (uploads, or URLs of
    # results), one job each; the results ticked, by input (to draw the form again).
    each: str | None = None
    batch: list[Upload | str] = field(default_factory=list)
    results: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(
        cls,
        jdl: JobDefinition,
        pairs: Iterable[tuple[str, str]],
        files: Sequence[tuple[str, Upload]],
        batch_max: int = 0,
    ) -> Submission:
        """The submission of form ``pairs`` (csrf_token removed) and ``files``; a
        "Run once per file" of more than ``batch_max`` files (if not 0) is refused."""
        got = cls()
        form: dict[str, str] = {}
        booleans: set[str] = set()
        for name, value in pairs:
            if name == BOOLEANS_FIELD:
                booleans.add(value)
            elif name.endswith(RESULT_SUFFIX) and value.strip():
                got.results.setdefault(name.removesuffix(RESULT_SUFFIX), []).append(value.strip())
            else:
                form[name] = value
        file_inputs = set(jdl.file_inputs())
        for name in file_inputs:
            got.sources[name] = form.get(f"{name}.source", "file")
        for name, value in form.items():
            if "." in name or name in file_inputs:
                continue
            if name.upper() in CONTROL_FIELDS or name.upper() == "PHASE":
                if value.strip():
                    got.control[name.upper()] = value
            else:
                got.values[name] = value
        for name in booleans:
            param = jdl.parameter(name)
            if param is None:
                continue
            if name in form:
                got.values[name] = "true"
            elif param.required or param.default is not None:
                got.values[name] = "false"
        if "DESTRUCTION" in got.control:
            got.control["DESTRUCTION"] = utc_time(got.control["DESTRUCTION"])
        got.reuse_from = form.get(RERUN_FIELD) or None
        if form.get(EACH_FIELD):
            got.each = form.get(EACH_INPUT_FIELD, "")
        got._inputs(jdl, form, files)
        got._check_batch(jdl, batch_max)
        return got

    def _inputs(
        self, jdl: JobDefinition, form: Mapping[str, str], files: Sequence[tuple[str, Upload]]
    ) -> None:
        for name, source in self.sources.items():
            several: list[Upload | str] = []
            if source == "url":
                url = form.get(f"{name}.url", "").strip()
                several += [url] if url else []
            elif source == "reuse" and self.reuse_from:
                self.reused.append(name)
            elif source == "results":
                several += self.results.get(name, [])
            else:
                several += [upload for field_name, upload in files if field_name == name]
            if name == self.each:
                self.batch = several
            elif len(several) > 1:
                self.errors[name] = "this server takes one file per input: choose one" + (
                    ", or tick “Run once per file”" if name in batch_inputs(jdl) else ""
                )
            for given in several[:1] if name != self.each else ():
                if isinstance(given, str):
                    self.values[name] = given
                else:
                    self.uploads.append(given)

    def _check_batch(self, jdl: JobDefinition, batch_max: int) -> None:
        if self.each is None:
            return
        if self.each not in batch_inputs(jdl):
            self.errors[EACH_FIELD] = (
                f"“Run once per file” applies to an input of one file, not {self.each!r}"
            )
        elif not self.batch:
            self.errors[self.each] = (
                "“Run once per file”: upload the files, or tick results, to run on"
            )
        elif batch_max and len(self.batch) > batch_max:
            self.errors[self.each] = (
                f"{len(self.batch)} files: at most {batch_max} at once (BATCH_FILES_MAX)"
            )

    def batch_jobs(self, shared: Sequence[Upload] = ()) -> list[BatchItem]:
        """The jobs of "Run once per file": each file given, with the values and the
        uploads of its job (``shared``: uploads every job has too, the rerun's inputs)."""
        made: list[BatchItem] = []
        for given in self.batch:
            if isinstance(given, Upload):
                made.append((given, dict(self.values), [*self.uploads, *shared, given]))
            elif self.each:
                made.append((given, {**self.values, self.each: given}, [*self.uploads, *shared]))
        return made


def utc_time(text: str) -> str:
    """A datetime-local value ("2030-01-02T03:04", no zone) as the UTC time it means."""
    stripped = text.strip()
    if stripped and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?", stripped):
        return stripped + "Z"
    return stripped


def field_of_error(message: str, names: Iterable[str]) -> str | None:
    """The field a refusal of the service is about: a name it quotes ('duration'), or
    a control parameter or manager option it starts with; None if none is named."""
    known = list(names)
    by_lower = {name.lower(): name for name in known}
    quotes: list[str] = _QUOTED.findall(message)
    for quoted in quotes:
        if quoted in known:
            return quoted
        if quoted.lower() in by_lower:
            return by_lower[quoted.lower()]
    first = message.split(" ", 1)[0].rstrip(":").lower()
    return by_lower.get(first)
