"""The rules a job definition must follow, checked whatever form it was read from.

validate_definition checks a JobDefinition and returns a checked copy, which all three
forms read back to equal definitions: options, min and max in canonical form (they are
limits, compared in canonical form), script with LF line ends. A default is kept as
written, as a client's value is (coerce_parameters), unless its parameter says
``normalize``: then it is in canonical form too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from opus.core.access import ADMIN_ROLE, ALL_JOB_TYPES_ROLE, ANONYMOUS
from opus.core.text import text_problem
from opus.server.scripts import SAFE_GLOB, SHELL_NAME

from .errors import JDLError
from .model import (
    DATATYPES,
    NUMERIC_DATATYPES,
    GeneratedEntity,
    JobDefinition,
    ParameterDefinition,
    UsedEntity,
)
from .source import source_problems
from .validation import InvalidValue, canonical_value, kept_value, number

JOB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
RESERVED_JOB_NAMES: frozenset[str] = frozenset({ADMIN_ROLE, ALL_JOB_TYPES_ROLE, ANONYMOUS})
# Parameter and entity names become shell variables of the job script; a result is
# looked for in the job directory by a plain name or glob (never a path, never hidden
# nor taken for an option). The batch-script generator owns both rules.
VARIABLE_NAME = SHELL_NAME
RESULT_GLOB = SAFE_GLOB
MULTIPLICITY = re.compile(r"[0-9]+|\*|[0-9]+\.\.(?:[0-9]+|\*)")
_MIME_WORD = r"[A-Za-z0-9!#$&^_.+-]+"
CONTENT_TYPE = re.compile(
    rf"{_MIME_WORD}/(?:{_MIME_WORD}|\*)(?:\s*;\s*{_MIME_WORD}=(?:{_MIME_WORD}|\"[^\"\r\n]*\"))*"
)
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
# Longest execution_duration or quote (about 31 years): every form can carry it, the
# database can store it and a job's quote time (now + quote) stays a valid date.
MAX_SECONDS = 999_999_999

# UWS control parameters: a job parameter of that name could not be told apart from them.
UWS_RESERVED: frozenset[str] = frozenset(
    {
        "phase",
        "runid",
        "executionduration",
        "destruction",
        "quote",
        "action",
        "owner",
        "wait",
        "last",
        "after",
        "csrf_token",  # a browser session's form field (opus/server/sessions.py)
    }
)
# Variables the job's shell, the batch system or OPUS itself set or read (case-insensitive).
RESERVED_PREFIXES: tuple[str, ...] = ("JOB_", "OPUS_", "BASH", "SLURM_")
# Shell variables with a meaning (or read-only in bash); shell names are case-sensitive.
SHELL_RESERVED: frozenset[str] = frozenset(
    {
        "PATH",
        "HOME",
        "IFS",
        "SHELL",
        "ENV",
        "PS1",
        "PS2",
        "PS3",
        "PS4",
        "PWD",
        "OLDPWD",
        "CDPATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "TMPDIR",
        "USER",
        "LOGNAME",
        "LANG",
        "LC_ALL",
        "UID",
        "EUID",
        "PPID",
        "SHELLOPTS",
        "RANDOM",
        "SECONDS",
        "LINENO",
        "FUNCNAME",
        "GROUPS",
        "PIPESTATUS",
        "OPTARG",
        "OPTIND",
        "HOSTNAME",
        # Also set by bash itself: a job script would never see the value given.
        "_",
        "SHLVL",
        "DIRSTACK",
        "OPTERR",
        "HISTCMD",
        "SRANDOM",
        "EPOCHSECONDS",
        "EPOCHREALTIME",
        "COMP_WORDBREAKS",
        # Change how the batch script runs: commands not found, results not collected.
        "EXECIGNORE",
        "GLOBIGNORE",
    }
)


def reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot name a parameter or entity, or None when it can."""
    if name.lower() in UWS_RESERVED:
        return f"{name!r} is a UWS control parameter"
    if name.upper().startswith(RESERVED_PREFIXES):
        prefixes = ", ".join(RESERVED_PREFIXES)
        return f"{name!r} is reserved: names may not start with {prefixes} (in any case)"
    if name in SHELL_RESERVED:
        return f"{name!r} is a shell variable with a special meaning"
    return None


def validate_definition(jd: JobDefinition) -> JobDefinition:
    """Check every rule of a definition; return the checked copy (see the module's doc).

    Raises JDLError naming the field of the first problem (the caller adds the file name).
    """
    problems = definition_problems(jd)
    if problems:
        raise problems[0]
    return replace(
        jd,
        script=_normal_script(jd.script),
        parameters=[_checked_parameter(p, f"parameters[{i}]") for i, p in enumerate(jd.parameters)],
        used=[_checked_used(u, f"used[{i}]") for i, u in enumerate(jd.used)],
        generated=[_checked_generated(g, f"generated[{i}]") for i, g in enumerate(jd.generated)],
    )


def definition_problems(jd: JobDefinition) -> list[JDLError]:
    """Every problem of a definition, each naming its field, in the order of the fields
    (an editor shows them all at once; validate_definition raises the first)."""
    found: list[JDLError] = []

    def attempt(check: Callable[..., object], *args: Any) -> None:
        try:
            check(*args)
        except JDLError as error:
            found.append(error)

    attempt(_check_job_name, jd.name)
    attempt(_check_text, jd.annotation, "annotation")
    for field_name in ("version", "type", "subtype", "contact_name", "contact_email"):
        attempt(_check_one_line, getattr(jd, field_name), field_name)
    if jd.doculink:
        attempt(_check_url, jd.doculink, "doculink", ("http", "https"))
    if jd.contact_email:
        attempt(_check_email, jd.contact_email)
    if jd.execution_duration is not None:
        attempt(_check_seconds, jd.execution_duration, "execution_duration", " (0 = unlimited)")
    if jd.quote is not None:
        attempt(_check_seconds, jd.quote, "quote")
    found += source_problems(jd)
    attempt(_check_script, jd.script)
    found += _name_problems(jd)
    for index, param in enumerate(jd.parameters):
        attempt(_checked_parameter, param, f"parameters[{index}]")
    for index, used in enumerate(jd.used):
        attempt(_checked_used, used, f"used[{index}]")
    for index, generated in enumerate(jd.generated):
        attempt(_checked_generated, generated, f"generated[{index}]")
    return found


def _check_job_name(name: object) -> None:
    if not isinstance(name, str) or not JOB_NAME.fullmatch(name):
        raise JDLError(
            f"{name!r} is not a job name (a letter, then up to 63 letters, digits, _ or -)",
            field="name",
        )
    if name.lower() in RESERVED_JOB_NAMES:
        # With CHECK_PERMISSIONS a job type is used by the role of its name: these
        # names are roles with another meaning (or the shared anonymous owner).
        raise JDLError(
            f"{name!r} is reserved (it is a role or an owner of OPUS: "
            f"{', '.join(sorted(RESERVED_JOB_NAMES))})",
            field="name",
        )


def _check_email(value: str) -> None:
    if not EMAIL.fullmatch(value):
        raise JDLError(f"{value!r} is not an e-mail address", field="contact_email")


def _normal_script(script: str) -> str:
    # CRs before a line end go too ("\r\r\n" from a file converted twice): the result
    # has no CRLF left, so checking it again changes nothing.
    return re.sub(r"\r+\n", "\n", script)


def _check_script(script: str) -> None:
    script = _normal_script(script)
    _check_text(script, "script")
    if not script.strip():
        raise JDLError(
            "the job has no script (give it inline or in a NAME.sh file next to the definition)",
            field="script",
        )


def _check_text(value: str, field: str) -> None:
    problem = text_problem(value)
    if problem:
        raise JDLError(problem, field=field)


def _check_one_line(value: str, field: str) -> None:
    if "\n" in value or "\r" in value:
        raise JDLError("must be a single line", field=field)
    _check_text(value, field)


def _check_url(value: str, field: str, schemes: tuple[str, ...] | None = None) -> None:
    # The doculink is shown as a link in the web client: only http(s), never javascript:.
    _check_one_line(value, field)
    try:
        scheme = urlsplit(value).scheme.lower()
    except ValueError as error:
        raise JDLError(f"{value!r} is not a URL ({error})", field=field) from None
    if not scheme or (schemes and scheme not in schemes):
        wanted = " or ".join(f"{s}:" for s in schemes) if schemes else "a scheme such as https:"
        raise JDLError(f"{value!r} is not a URL starting with {wanted}", field=field)


def _check_seconds(value: object, field: str, note: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise JDLError(f"{value!r} is not a whole number of seconds >= 0{note}", field=field)
    if value > MAX_SECONDS:
        raise JDLError(f"{value} is more than the maximum of {MAX_SECONDS} seconds", field=field)


def _check_variable_name(name: object, field: str) -> None:
    if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
        raise JDLError(
            f"{name!r} is not a valid name (a letter or _, then letters, digits or _; "
            "it becomes a shell variable)",
            field=field,
        )
    reason = reserved_reason(name)
    if reason:
        raise JDLError(reason, field=field)


def _name_problems(jd: JobDefinition) -> list[JDLError]:
    # Parameters and inputs become shell variables and results may too, so they share one
    # namespace; it is case-insensitive because UWS clients may not keep the case.
    found: list[JDLError] = []
    seen: dict[str, str] = {}
    groups = {
        "parameters": [p.name for p in jd.parameters],
        "used": [u.name for u in jd.used],
        "generated": [g.name for g in jd.generated],
    }
    for group, names in groups.items():
        for index, name in enumerate(names):
            field = f"{group}[{index}].name"
            try:
                _check_variable_name(name, field)
            except JDLError as error:
                found.append(error)
                continue
            if name.lower() in seen:
                message = f"{name!r} is already the name of {seen[name.lower()]}"
                found.append(JDLError(message, field=field))
                continue
            seen[name.lower()] = f"{group}[{index}]"
    return found


def _canonical(datatype: str, raw: str, field: str) -> str:
    try:
        return canonical_value(datatype, raw)
    except InvalidValue as error:
        raise JDLError(str(error), field=field) from None


def _checked_parameter(param: ParameterDefinition, where: str) -> ParameterDefinition:
    if param.datatype not in DATATYPES:
        raise JDLError(
            f"{param.datatype!r} is not one of {', '.join(DATATYPES)}", field=f"{where}.datatype"
        )
    if not isinstance(param.required, bool):
        raise JDLError(f"{param.required!r} is not true or false", field=f"{where}.required")
    if not isinstance(param.normalize, bool):
        raise JDLError(f"{param.normalize!r} is not true or false", field=f"{where}.normalize")
    _check_text(param.annotation, f"{where}.annotation")
    for attribute in ("unit", "ucd", "utype"):
        _check_one_line(getattr(param, attribute), f"{where}.{attribute}")
    datatype = param.datatype
    if datatype == "file" and (param.options or param.min is not None or param.max is not None):
        raise JDLError("a file parameter has no options, min or max", field=where)
    if datatype == "file" and param.normalize:
        # Its value is an upload or a URL, which the server handles: nothing to normalise.
        raise JDLError("normalize does not apply to a file parameter", field=f"{where}.normalize")
    if datatype not in NUMERIC_DATATYPES and (param.min is not None or param.max is not None):
        raise JDLError(f"min and max only apply to numbers, not {datatype}", field=where)

    options = [
        _canonical(datatype, option, f"{where}.options[{i}]")
        for i, option in enumerate(param.options)
    ]
    if len(set(options)) != len(options):
        shown = ", ".join(o if o.isprintable() else repr(o) for o in options)
        raise JDLError(f"options repeat a value: {shown}", field=f"{where}.options")
    low = None if param.min is None else _canonical(datatype, param.min, f"{where}.min")
    high = None if param.max is None else _canonical(datatype, param.max, f"{where}.max")
    if low is not None and high is not None and number(datatype, low) > number(datatype, high):
        raise JDLError(f"min {low} is greater than max {high}", field=where)
    checked = replace(param, options=options, min=low, max=high)
    if datatype == "file" and param.default == "":
        # No default, as VOTable reads it back (and as for used entities).
        checked.default = None
    elif param.default is not None:
        try:
            checked.default = kept_value(checked, param.default)
        except InvalidValue as error:
            raise JDLError(str(error), field=f"{where}.default") from None
    return checked


def _checked_content_type(value: str, field: str, *, several: bool) -> None:
    # A result's content type is sent as an HTTP header: it must be one clean MIME type.
    # An input may accept several, separated by commas.
    if not value:
        return
    parts = [part.strip() for part in value.split(",")] if several else [value]
    for part in parts:
        if not CONTENT_TYPE.fullmatch(part):
            raise JDLError(f"{part!r} is not a content type such as text/plain", field=field)


def _checked_multiplicity(value: str, field: str) -> str:
    if value == "":  # older OPUS files leave it empty
        return "1"
    if not MULTIPLICITY.fullmatch(value):
        raise JDLError(f"{value!r} is not a multiplicity (1, 3, *, 0..1, 1..*)", field=field)
    return value


def _checked_used(used: UsedEntity, where: str) -> UsedEntity:
    _check_text(used.annotation, f"{where}.annotation")
    # No default is written as an empty value in VOTable: both mean "no default".
    default = used.default or None
    if default is not None:
        _check_one_line(default, f"{where}.default")
    _checked_content_type(used.content_type, f"{where}.content_type", several=True)
    if used.url:
        _check_url(used.url, f"{where}.url")
        if any(char.isspace() for char in used.url):
            raise JDLError(f"{used.url!r} contains spaces", field=f"{where}.url")
    multiplicity = _checked_multiplicity(used.multiplicity, f"{where}.multiplicity")
    return replace(used, default=default, multiplicity=multiplicity)


def _checked_generated(generated: GeneratedEntity, where: str) -> GeneratedEntity:
    _check_text(generated.annotation, f"{where}.annotation")
    if not isinstance(generated.default, str) or not RESULT_GLOB.fullmatch(generated.default):
        raise JDLError(
            f"{generated.default!r} is not a file name or glob in the job directory "
            "(letters, digits, _ . - * ? [ ]; no /, not starting with . or -)",
            field=f"{where}.default",
        )
    _checked_content_type(generated.content_type, f"{where}.content_type", several=False)
    multiplicity = _checked_multiplicity(generated.multiplicity, f"{where}.multiplicity")
    return replace(generated, multiplicity=multiplicity)
