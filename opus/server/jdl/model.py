"""The job definition model: what a job type takes, uses, generates and runs.

These dataclasses are the one shape every form (YAML, JSON, VOTable) is read into and
written from. They hold text exactly as the definition gives it; rules.py checks a
definition and puts its limits (options, min, max) in canonical form, and a parameter's
default too when the parameter says ``normalize``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The parameter datatypes, in the order an editor should offer them. "file" is not an XML
# Schema type: such a parameter is given as an upload or a URL and handled by the server.
DATATYPES: tuple[str, ...] = (
    "xs:string",
    "xs:anyURI",
    "xs:boolean",
    "xs:int",
    "xs:long",
    "xs:short",
    "xs:unsignedByte",
    "xs:float",
    "xs:double",
    "file",
)

INTEGER_DATATYPES: frozenset[str] = frozenset({"xs:int", "xs:long", "xs:short", "xs:unsignedByte"})
FLOAT_DATATYPES: frozenset[str] = frozenset({"xs:float", "xs:double"})
NUMERIC_DATATYPES: frozenset[str] = INTEGER_DATATYPES | FLOAT_DATATYPES


@dataclass
class ParameterDefinition:
    """What an input parameter may be: a value given by the client, checked against its
    datatype (the value a job holds is opus.core.records.Parameter).

    A value is kept as the client wrote it ("1" of an xs:float stays "1"), unless
    ``normalize`` is true: then it is kept in canonical form ("1.0"), and so is the default.
    """

    name: str
    datatype: str = "xs:string"
    default: str | None = None
    required: bool = False
    annotation: str = ""
    options: list[str] = field(default_factory=list)
    min: str | None = None
    max: str | None = None
    unit: str = ""
    ucd: str = ""
    utype: str = ""
    normalize: bool = False


@dataclass
class UsedEntity:
    """An input file (provenance: used entity), given as an upload or a URL."""

    name: str
    default: str | None = None
    content_type: str = ""
    multiplicity: str = "1"
    # Where the entity comes from; "$ID" stands for the value the client gives.
    # "file://$ID" means the client uploads the file itself.
    url: str = ""
    annotation: str = ""


@dataclass
class GeneratedEntity:
    """A result: the file(s) the job script writes, found by a name or glob."""

    name: str
    default: str = ""
    content_type: str = ""
    multiplicity: str = "1"
    annotation: str = ""


@dataclass
class JobSource:
    """The git repository a job's code is cloned from before its script runs.

    The ref is either fixed (``ref``: a branch, a tag or a full commit hash) or the
    value of one of the definition's parameters (``ref_parameter``, its name): exactly
    one of the two is set in a valid definition (rules.py).
    """

    git: str
    ref: str | None = None
    ref_parameter: str | None = None


@dataclass
class JobDefinition:
    """A job type: its description, inputs, results, limits and bash script."""

    name: str
    annotation: str = ""
    version: str = "1"
    doculink: str = ""
    type: str = ""
    subtype: str = ""
    contact_name: str = ""
    contact_email: str = ""
    # seconds, 0 = unlimited, None = the server's EXECUTION_DURATION_DEFAULT
    execution_duration: int | None = None
    quote: int | None = None  # seconds, the expected run time, when known
    # The repository cloned into $JOB_SOURCE_DIR before the script runs (None: none).
    source: JobSource | None = None
    script: str = ""
    parameters: list[ParameterDefinition] = field(default_factory=list)
    used: list[UsedEntity] = field(default_factory=list)
    generated: list[GeneratedEntity] = field(default_factory=list)

    def parameter(self, name: str) -> ParameterDefinition | None:
        """The parameter called ``name``, or None."""
        return next((p for p in self.parameters if p.name == name), None)

    def used_entity(self, name: str) -> UsedEntity | None:
        """The used entity (input file) called ``name``, or None."""
        return next((u for u in self.used if u.name == name), None)

    def generated_entity(self, name: str) -> GeneratedEntity | None:
        """The generated entity (result) called ``name``, or None."""
        return next((g for g in self.generated if g.name == name), None)

    def file_inputs(self) -> list[str]:
        """Names of the inputs the server receives as uploads or URLs, not as plain values.

        These are the used entities and the parameters of datatype ``file``;
        coerce_parameters does not handle them.
        """
        return [u.name for u in self.used] + [
            p.name for p in self.parameters if p.datatype == "file"
        ]
