"""A definition's ``source``: the git repository its job's code is cloned from.

In YAML and JSON::

    source:
      git: https://github.com/org/code.git
      ref: v1.2                 # fixed: a branch, a tag or a full commit hash
    # or
      ref: {parameter: version} # the value of the parameter ``version``

(VOTable: a GROUP ``Source``, votable.py.) Here: the dict form read and written, the
rules a source follows (URL and ref as gitsource.py accepts them; a ref parameter that
exists, is an xs:string and always has a value, whose default and options are refs;
no parameter or entity named after the variables the clone sets), and the source of
one job, its ref parameter's value put in.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from opus.server.gitsource import GitSource, ref_problem, url_problem

from .errors import JDLError
from .model import JobDefinition, JobSource
from .validation import show

SOURCE_KEYS = ("git", "ref")
REF_KEYS = ("parameter",)
# What the batch script exports once the clone is done (JOB_SOURCE_DIR is reserved by
# the JOB_ prefix): a parameter or entity of the same name would be overwritten.
SOURCE_VARIABLES = ("SRC_GIT_URL", "GIT_COMMIT_REF")


def _mapping(value: Any, field: str, keys: tuple[str, ...], example: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JDLError(f"must be a mapping, e.g. {example}", field=field)
    for key in value:
        if not isinstance(key, str) or key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(keys)}"
            raise JDLError(f"unknown key ({hint})", field=f"{field}.{key}")
    return value


def _text(value: Any, field: str) -> str:
    if isinstance(value, str):  # a ScalarText too: the text as written
        return str(value)
    if value is None:
        raise JDLError("missing", field=field)
    raise JDLError(f"expected a text value, got {type(value).__name__}", field=field)


def source_from_dict(value: Any) -> JobSource | None:
    """The source of a definition's dict form (None when it has none); checks
    structure, not the rules."""
    if value is None:
        return None
    data = _mapping(value, "source", SOURCE_KEYS, "{git: https://..., ref: main}")
    git = _text(data.get("git"), "source.git")
    ref = data.get("ref")
    if isinstance(ref, dict):
        parameter = _mapping(ref, "source.ref", REF_KEYS, "{parameter: version}")
        name = _text(parameter.get("parameter"), "source.ref.parameter")
        return JobSource(git, ref_parameter=name)
    return JobSource(git, ref=_text(ref, "source.ref"))


def source_to_dict(source: JobSource) -> dict[str, Any]:
    """The dict form of a source."""
    if source.ref_parameter is not None:
        return {"git": source.git, "ref": {"parameter": source.ref_parameter}}
    return {"git": source.git, "ref": source.ref}


def source_problems(jd: JobDefinition) -> list[JDLError]:
    """Every problem of the definition's source, each naming its field."""
    source = jd.source
    if source is None:
        return []
    found: list[JDLError] = []
    if problem := url_problem(source.git):
        found.append(JDLError(f"{show(source.git, 80)} {problem}", field="source.git"))
    if (source.ref is None) == (source.ref_parameter is None):
        message = "give either a branch, tag or commit, or {parameter: NAME}"
        found.append(JDLError(message, field="source.ref"))
    elif source.ref is not None:
        if problem := ref_problem(source.ref):
            found.append(JDLError(f"{show(source.ref)} {problem}", field="source.ref"))
    elif source.ref_parameter is not None:
        found += _ref_parameter_problems(jd, source.ref_parameter)
    groups = {
        "parameters": [p.name for p in jd.parameters],
        "used": [u.name for u in jd.used],
        "generated": [g.name for g in jd.generated],
    }
    for group, names in groups.items():
        for index, name in enumerate(names):
            if name in SOURCE_VARIABLES:
                message = f"{name!r} is set by the clone of the job's source"
                found.append(JDLError(message, field=f"{group}[{index}].name"))
    return found


def _ref_parameter_problems(jd: JobDefinition, name: str) -> list[JDLError]:
    field = "source.ref.parameter"
    param = jd.parameter(name)
    if param is None:
        return [JDLError(f"{show(name)} is not a parameter of this definition", field=field)]
    if param.datatype != "xs:string":
        message = f"parameter {name!r} is {param.datatype}: a ref parameter is an xs:string"
        return [JDLError(message, field=field)]
    if param.default is None and not param.required:
        message = f"parameter {name!r} must be required or have a default (the ref to clone)"
        return [JDLError(message, field=field)]
    found: list[JDLError] = []
    for what, value in [("default", param.default), *(("option", o) for o in param.options)]:
        if value is not None and (problem := ref_problem(value)):
            message = f"parameter {name!r}: its {what} {show(value)} {problem}"
            found.append(JDLError(message, field=field))
    return found


def job_source(jd: JobDefinition, values: Mapping[str, str]) -> GitSource | None:
    """The repository and ref a job of ``jd`` with these parameter values clones (its
    ref parameter's value, when the ref is one); None when ``jd`` has no source."""
    source = jd.source
    if source is None:
        return None
    if source.ref_parameter is not None:
        return GitSource(source.git, values.get(source.ref_parameter, ""))
    return GitSource(source.git, source.ref or "")
