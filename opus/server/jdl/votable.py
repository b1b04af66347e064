"""The VOTable form of a job definition (the original OPUS "ActivityDescription").

A VOTable 1.3 document whose ``RESOURCE type="meta" utype="voprov:ActivityDescription"``
holds the description (DESCRIPTION and PARAMs), the UWS limits (executionDuration, quote),
the script, and three GROUPs: ``InputParams`` (one PARAM per parameter), ``Used`` and
``Generated`` (one GROUP per entity, its attributes as PARAMs). Element names, utypes and
encodings follow the original OPUS so that its files still read; docs/jdl.md has an example.

The ``source`` (a git repository, which the original OPUS did not have) is a GROUP
``Source``: a PARAM ``git`` (the URL), and a PARAM ``ref`` for a fixed ref or, for the
value of a parameter, a PARAMref to that parameter's PARAM (by its ID, as normalize's).

``normalize``, which the original OPUS did not have, is a GROUP ``normalize`` inside
InputParams holding a PARAMref to each parameter that says it: valid VOTable 1.3 (a PARAM
may not carry attributes of its own invention), and absent from older files, whose
parameters then read as not normalised.

VOTable definitions may be uploaded, so they are parsed as untrusted XML: no DTD, no
entities, no network, no huge trees.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from .errors import JDLError
from .model import GeneratedEntity, JobDefinition, JobSource, ParameterDefinition, UsedEntity

NS = "http://www.ivoa.net/xml/VOTable/v1.3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ACTIVITY_UTYPE = "voprov:ActivityDescription"
USED_UTYPE = "voprov:UsedDescription"
GENERATED_UTYPE = "voprov:WasGeneratedBy"  # as the original OPUS wrote it
FILE_XTYPE = "application/octet-stream"  # marks a parameter of datatype "file"
URI_XTYPES = ("xs:anyURI", "anyURI", "uri")  # VOTable has no URI datatype: char + xtype
NO_QUERY = "no_query"  # PARAM type of an optional parameter; required when absent
NORMALIZE_GROUP = "normalize"  # GROUP in InputParams: a PARAMref per normalised parameter
NORMALIZE_DESCRIPTION = "The parameters whose values the job receives in canonical form."
SOURCE_GROUP = "Source"  # GROUP in the RESOURCE: the git repository of the job's code
SOURCE_DESCRIPTION = "The git repository cloned for the job, at the ref given."

XS_TO_VO: dict[str, str] = {
    "xs:string": "char",
    "xs:anyURI": "char",
    "file": "char",
    "xs:boolean": "boolean",
    "xs:unsignedByte": "unsignedByte",
    "xs:short": "short",
    "xs:int": "int",
    "xs:long": "long",
    "xs:float": "float",
    "xs:double": "double",
}
VO_TO_XS: dict[str, str] = {
    "char": "xs:string",
    "unicodeChar": "xs:string",
    "boolean": "xs:boolean",
    "unsignedByte": "xs:unsignedByte",
    "short": "xs:short",
    "int": "xs:int",
    "long": "xs:long",
    "float": "xs:float",
    "double": "xs:double",
}
# Description PARAMs of the RESOURCE: PARAM name -> (model field, utype).
TEXT_PARAMS: dict[str, tuple[str, str]] = {
    "doculink": ("doculink", "voprov:ActivityDescription.doculink"),
    "type": ("type", "voprov:ActivityDescription.type"),
    "subtype": ("subtype", "voprov:ActivityDescription.subtype"),
    "version": ("version", "voprov:ActivityDescription.version"),
    "contact_name": ("contact_name", "voprov:Agent.name"),
    "contact_email": ("contact_email", "voprov:Agent.email"),
}
# The PARAMs of a used or generated entity's GROUP, in the order they are written.
USED_FIELDS = ("multiplicity", "default", "content_type", "url")
GENERATED_FIELDS = ("multiplicity", "default", "content_type")
ENTITY_UTYPES: dict[str, str] = {
    "multiplicity": "voprov:{}.multiplicity",
    "default": "voprov:Entity.id",
    "content_type": "voprov:EntityDescription.content_type",
    "url": "voprov:EntityDescription.url",
}


def safe_parser() -> etree.XMLParser:
    """An XML parser for untrusted documents: no entities, DTD, network or huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


# --- writing -------------------------------------------------------------------------


def _text_param(parent: etree._Element, name: str, value: str, utype: str = "") -> None:
    attrib = {"name": name, "value": value, "datatype": "char", "arraysize": "*"}
    if utype:
        attrib["utype"] = utype
    etree.SubElement(parent, _q("PARAM"), attrib)


def _description(parent: etree._Element, text: str) -> None:
    if text:
        etree.SubElement(parent, _q("DESCRIPTION")).text = text


def _parameter_element(param: ParameterDefinition) -> etree._Element:
    attrib = {"ID": param.name, "name": param.name, "datatype": XS_TO_VO[param.datatype]}
    if attrib["datatype"] == "char":
        attrib["arraysize"] = "*"
    if param.datatype == "file":
        attrib["xtype"] = FILE_XTYPE
    elif param.datatype == "xs:anyURI":
        attrib["xtype"] = "xs:anyURI"
    # No value attribute means no default; value="" is an empty default.
    if param.default is not None:
        attrib["value"] = param.default
    if not param.required:
        attrib["type"] = NO_QUERY
    for name in ("unit", "ucd", "utype"):
        if getattr(param, name):
            attrib[name] = getattr(param, name)
    element = etree.Element(_q("PARAM"), attrib)
    _description(element, param.annotation)
    if param.options or param.min is not None or param.max is not None:
        values = etree.SubElement(element, _q("VALUES"))
        if param.min is not None:
            etree.SubElement(values, _q("MIN"), value=param.min)
        if param.max is not None:
            etree.SubElement(values, _q("MAX"), value=param.max)
        for option in param.options:
            etree.SubElement(values, _q("OPTION"), value=option)
    return element


def _entity_group(
    entity: UsedEntity | GeneratedEntity, utype: str, kind: str, fields: tuple[str, ...]
) -> etree._Element:
    group = etree.Element(_q("GROUP"), name=entity.name, utype=utype)
    _description(group, entity.annotation)
    for field in fields:
        value = getattr(entity, field)
        _text_param(group, field, value or "", ENTITY_UTYPES[field].format(kind))
    return group


def _source_group(source: JobSource) -> etree._Element:
    group = etree.Element(_q("GROUP"), name=SOURCE_GROUP)
    _description(group, SOURCE_DESCRIPTION)
    attrib = {"name": "git", "value": source.git, "datatype": "char", "arraysize": "*"}
    etree.SubElement(group, _q("PARAM"), {**attrib, "xtype": "xs:anyURI"})
    if source.ref_parameter is not None:
        # The parameter's PARAM has its name as ID (_parameter_element).
        etree.SubElement(group, _q("PARAMref"), ref=source.ref_parameter)
    elif source.ref is not None:
        _text_param(group, "ref", source.ref)
    return group


def dump_votable(jd: JobDefinition, *, include_script: bool = True) -> str:
    """The VOTable form of a definition, as text with an XML declaration."""
    nsmap: Any = {None: NS, "xsi": XSI_NS}  # None is the default namespace, which the stubs omit
    root = etree.Element(_q("VOTABLE"), nsmap=nsmap, version="1.3")
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{NS} {NS}")
    resource = etree.SubElement(
        root, _q("RESOURCE"), ID=jd.name, name=jd.name, type="meta", utype=ACTIVITY_UTYPE
    )
    _description(resource, jd.annotation)
    for name, (field, utype) in TEXT_PARAMS.items():
        _text_param(resource, name, getattr(jd, field), utype)
    limits = {"executionDuration": jd.execution_duration, "quote": jd.quote}
    for name, seconds in limits.items():
        if seconds is not None:  # no quote PARAM: no quote
            etree.SubElement(
                resource,
                _q("PARAM"),
                name=name,
                value=str(seconds),
                datatype="int",
                unit="s",
                utype=f"uws:Job.{name}",
            )
    if include_script and jd.script:
        _text_param(resource, "script", jd.script)
    group = etree.SubElement(resource, _q("GROUP"), name="InputParams")
    group.extend(_parameter_element(p) for p in jd.parameters)
    normalized = [p.name for p in jd.parameters if p.normalize]
    if normalized:
        # A PARAMref names its PARAM by ID, and each parameter's PARAM has its name as ID.
        refs = etree.SubElement(group, _q("GROUP"), name=NORMALIZE_GROUP)
        _description(refs, NORMALIZE_DESCRIPTION)
        for name in normalized:
            etree.SubElement(refs, _q("PARAMref"), ref=name)
    group = etree.SubElement(resource, _q("GROUP"), name="Used")
    group.extend(_entity_group(u, USED_UTYPE, "UsedDescription", USED_FIELDS) for u in jd.used)
    group = etree.SubElement(resource, _q("GROUP"), name="Generated")
    group.extend(
        _entity_group(g, GENERATED_UTYPE, "WasGeneratedByDescription", GENERATED_FIELDS)
        for g in jd.generated
    )
    if jd.source is not None:
        resource.append(_source_group(jd.source))
    try:
        body = etree.tostring(root, pretty_print=True, encoding="unicode")
    except ValueError as error:  # text that XML cannot carry, e.g. control characters
        raise JDLError(f"cannot be written as XML: {error}") from None
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body


# --- reading -------------------------------------------------------------------------


def _parse_xml(data: bytes) -> etree._Element:
    # A DTD is the only way to declare entities; refusing it before lxml sees the document
    # means no entity is ever expanded (libxml2 expands internal ones in attributes even
    # with resolve_entities=False). A NUL byte means UTF-16/32, where this test would fail.
    if b"\x00" in data:
        raise JDLError("a VOTable definition must be encoded in UTF-8")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise JDLError("DOCTYPE and ENTITY declarations are not allowed in a VOTable definition")
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as error:
        raise JDLError(f"not valid XML: {error}") from None
    # Second line of defence, should the encoding hide a DOCTYPE from the byte test.
    docinfo: Any = root.getroottree().docinfo  # the stubs lack doctype and internalDTD
    if docinfo.doctype or docinfo.internalDTD is not None or next(root.iter(etree.Entity), None):
        raise JDLError("DOCTYPE and ENTITY declarations are not allowed in a VOTable definition")
    return root


class _Reader:
    """Reads one VOTable document, whatever VOTable namespace (or none) it uses."""

    def __init__(self, root: etree._Element):
        qname = etree.QName(root)
        if qname.localname != "VOTABLE":
            raise JDLError(f"the root element is {qname.localname}, not VOTABLE")
        namespace = qname.namespace
        if namespace and not namespace.startswith("http://www.ivoa.net/xml/VOTable/"):
            raise JDLError(f"{namespace!r} is not a VOTable namespace")
        self.prefix = f"{{{namespace}}}" if namespace else ""
        self.root = root

    def tag(self, name: str) -> str:
        return self.prefix + name

    def children(self, element: etree._Element, name: str) -> list[etree._Element]:
        return [child for child in element if child.tag == self.tag(name)]

    def description(self, element: etree._Element) -> str:
        found = self.children(element, "DESCRIPTION")
        return (found[0].text or "") if found else ""

    def resource(self) -> etree._Element:
        resources = list(self.root.iter(self.tag("RESOURCE")))
        for resource in resources:
            if resource.get("utype") == ACTIVITY_UTYPE:
                return resource
        if resources:  # hand-written files may lack the utype
            return resources[0]
        raise JDLError(f'no RESOURCE (utype="{ACTIVITY_UTYPE}") in the VOTable')

    def definition(self) -> JobDefinition:
        resource = self.resource()
        name = resource.get("name") or resource.get("ID")
        if not name:
            raise JDLError("the RESOURCE has no name attribute", field="name")
        jd = JobDefinition(name=name, annotation=self.description(resource))
        for element in resource:
            if element.tag == self.tag("PARAM"):
                self.read_top_param(jd, element)
            elif element.tag == self.tag("GROUP"):
                self.read_group(jd, element)
        links = self.children(resource, "LINK")
        if links and not jd.doculink:  # hand-written files may link the documentation
            jd.doculink = links[0].get("href", "")
        return jd

    def read_top_param(self, jd: JobDefinition, element: etree._Element) -> None:
        name = element.get("name", "")
        value = element.get("value", "")
        key = name.lower()  # early OPUS files wrote "executionduration"
        if key in TEXT_PARAMS:
            setattr(jd, TEXT_PARAMS[key][0], value)
        elif key == "annotation" and not jd.annotation:  # early OPUS files had this PARAM
            jd.annotation = value
        elif key == "script":
            jd.script = value
        elif key == "executionduration":
            jd.execution_duration = _seconds(value, "execution_duration")
        elif key == "quote":
            jd.quote = _seconds(value, "quote") if value.strip() else None
        else:
            raise JDLError(f"unknown PARAM {name!r} in the RESOURCE", field=name or "PARAM")

    def read_group(self, jd: JobDefinition, group: etree._Element) -> None:
        kind = group.get("name")
        if kind == "InputParams":
            params = self.children(group, "PARAM")
            jd.parameters = [self.parameter(p, f"parameters[{i}]") for i, p in enumerate(params)]
            self.read_normalize(jd.parameters, params, group)
        elif kind == "Used":
            groups = self.children(group, "GROUP")
            jd.used = [self.used(g, f"used[{i}]") for i, g in enumerate(groups)]
        elif kind == "Generated":
            groups = self.children(group, "GROUP")
            jd.generated = [self.generated(g, f"generated[{i}]") for i, g in enumerate(groups)]
        elif kind == SOURCE_GROUP:
            jd.source = self.source(group)
        else:
            raise JDLError(
                f"unknown GROUP {kind!r} (expected InputParams, Used, Generated or Source)",
                field=kind or "GROUP",
            )

    def read_normalize(
        self,
        parameters: list[ParameterDefinition],
        elements: list[etree._Element],
        group: etree._Element,
    ) -> None:
        """Mark the parameters that the ``normalize`` GROUPs of InputParams refer to."""
        ids = {element.get("ID"): index for index, element in enumerate(elements)}
        ids.pop(None, None)
        for nested in self.children(group, "GROUP"):
            name = nested.get("name")
            if name != NORMALIZE_GROUP:
                raise JDLError(
                    f"unknown GROUP {name!r} in InputParams (expected {NORMALIZE_GROUP})",
                    field="parameters",
                )
            for ref in self.children(nested, "PARAMref"):
                index = ids.get(ref.get("ref"))
                if index is None:
                    raise JDLError(
                        f"PARAMref {ref.get('ref')!r} in GROUP {NORMALIZE_GROUP} is not the ID "
                        "of a PARAM of InputParams",
                        field="parameters",
                    )
                parameters[index].normalize = True

    def source(self, group: etree._Element) -> JobSource:
        """The GROUP Source: PARAM git, and PARAM ref or a PARAMref to a parameter."""
        values: dict[str, str] = {}
        for param in self.children(group, "PARAM"):
            name = param.get("name", "")
            if name not in ("git", "ref"):
                raise JDLError(f"unknown PARAM {name!r} (expected git, ref)", field="source")
            values[name] = param.get("value", "")
        refs = self.children(group, "PARAMref")
        if self.children(group, "GROUP") or len(refs) > 1 or (refs and "ref" in values):
            raise JDLError(
                "GROUP Source holds a PARAM git and either a PARAM ref or one PARAMref",
                field="source",
            )
        if "git" not in values:
            raise JDLError("missing: PARAM git in GROUP Source", field="source.git")
        if not refs:
            return JobSource(values["git"], ref=values.get("ref"))
        target, resource = refs[0].get("ref"), group.getparent()
        for inputs in [] if resource is None else self.children(resource, "GROUP"):
            if inputs.get("name") == "InputParams":
                for param in self.children(inputs, "PARAM"):
                    if target is not None and param.get("ID") == target:
                        return JobSource(values["git"], ref_parameter=param.get("name", ""))
        raise JDLError(
            f"PARAMref {target!r} in GROUP Source is not the ID of a PARAM of InputParams",
            field="source.ref.parameter",
        )

    def parameter(self, element: etree._Element, where: str) -> ParameterDefinition:
        vo_type = element.get("datatype", "char")
        xtype = element.get("xtype", "")
        if xtype == FILE_XTYPE:
            datatype = "file"
        elif vo_type == "char" and xtype in URI_XTYPES:
            datatype = "xs:anyURI"
        elif vo_type in VO_TO_XS:
            datatype = VO_TO_XS[vo_type]
        else:
            raise JDLError(
                f"VOTable datatype {vo_type!r} is not supported (use one of {', '.join(VO_TO_XS)})",
                field=f"{where}.datatype",
            )
        default = element.get("value")
        # Older OPUS files wrote value="" for "no default"; only text can be empty.
        if default == "" and datatype != "xs:string":
            default = None
        param = ParameterDefinition(
            name=element.get("name", ""),
            datatype=datatype,
            default=default,
            required=element.get("type") != NO_QUERY,
            annotation=self.description(element),
            unit=element.get("unit", ""),
            ucd=element.get("ucd", ""),
            utype=element.get("utype", ""),
        )
        for values in self.children(element, "VALUES"):
            for limit in ("MIN", "MAX"):
                for bound in self.children(values, limit):
                    if bound.get("inclusive", "yes") != "yes":
                        raise JDLError(f"exclusive {limit} is not supported", field=where)
                    setattr(param, limit.lower(), bound.get("value"))
            param.options = [o.get("value", "") for o in self.children(values, "OPTION")]
        return param

    def entity_fields(
        self, group: etree._Element, where: str, allowed: tuple[str, ...]
    ) -> dict[str, str]:
        fields: dict[str, str] = {}
        for param in self.children(group, "PARAM"):
            name = param.get("name", "")
            if name == "role":  # written by the original OPUS, always empty
                continue
            if name not in allowed:
                raise JDLError(
                    f"unknown PARAM {name!r} (expected {', '.join(allowed)})", field=where
                )
            fields[name] = param.get("value", "")
        return fields

    def used(self, group: etree._Element, where: str) -> UsedEntity:
        fields = self.entity_fields(group, where, USED_FIELDS)
        if "url" not in fields:  # the first OPUS VOTables gave the URL as a LINK
            links = self.children(group, "LINK")
            fields["url"] = links[0].get("href", "") if links else ""
        return UsedEntity(
            name=group.get("name", ""),
            default=fields.get("default") or None,
            content_type=fields.get("content_type", ""),
            multiplicity=fields.get("multiplicity", "1"),
            url=fields["url"],
            annotation=self.description(group),
        )

    def generated(self, group: etree._Element, where: str) -> GeneratedEntity:
        fields = self.entity_fields(group, where, GENERATED_FIELDS)
        return GeneratedEntity(
            name=group.get("name", ""),
            default=fields.get("default", ""),
            content_type=fields.get("content_type", ""),
            multiplicity=fields.get("multiplicity", "1"),
            annotation=self.description(group),
        )


def _seconds(value: str, field: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise JDLError(f"{value!r} is not a whole number of seconds", field=field)
    return int(text)


def parse_votable(data: bytes) -> JobDefinition:
    """Read the VOTable form (checks structure, not the rules)."""
    return _Reader(_parse_xml(data)).definition()
