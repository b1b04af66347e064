"""Job definitions (JDL): what each job type takes, uses, generates and runs.

One model (model.py) read from and written to three forms: YAML (primary, edited by hand),
JSON and the original OPUS VOTable ActivityDescription. Definitions are checked when
loaded (rules.py); a job's parameters are checked against them by coerce_parameters,
which keeps each value as the client wrote it (or in canonical form, for a parameter
that says ``normalize``).
docs/jdl.md describes the format.
"""

from .errors import JDLError, ParameterError
from .files import (
    FORMATS,
    dump_definition,
    format_of,
    load_definition,
    parse_definition,
    save_definition,
)
from .model import (
    DATATYPES,
    GeneratedEntity,
    JobDefinition,
    JobSource,
    ParameterDefinition,
    UsedEntity,
)
from .problems import CheckedText, Problem, canonical_text, check_text, definition_hash
from .registry import JDLRegistry
from .rules import definition_problems, validate_definition
from .source import job_source
from .validation import coerce_parameters

__all__ = [
    "DATATYPES",
    "FORMATS",
    "CheckedText",
    "GeneratedEntity",
    "JDLError",
    "JDLRegistry",
    "JobDefinition",
    "JobSource",
    "ParameterDefinition",
    "ParameterError",
    "Problem",
    "UsedEntity",
    "canonical_text",
    "check_text",
    "coerce_parameters",
    "definition_hash",
    "definition_problems",
    "dump_definition",
    "format_of",
    "job_source",
    "load_definition",
    "parse_definition",
    "save_definition",
    "validate_definition",
]
