"""VOSI 1.0 XML documents (lxml): availability, and the capabilities of this server.

Both validate against their VOSI schemas (VOSIAvailability-v1.0.xsd,
VOSICapabilities-v1.0.xsd with VOResource 1.3; copies in tests/schemas). A capability
is a ``vr:Capability`` (an unqualified ``capability`` element, as the schema has it),
its interface a ``vr:WebService`` with one access URL. VODataService's ``vs:ParamHTTP``,
which DAL services often use, would pull in VODataService and STC for what a client
needs here: where to send requests, and which standard they follow.

What the capabilities are is decided here (``server_capabilities``): the two VOSI
resources; for each job type the caller may run, its UWS 1.1 job list and its
synchronous endpoint (``/sync/{jobname}``, which no IVOA standard names: a capability
without standardID, described); and ProvSAP. Links are built from BASE_URL, never from
the request. When the server does not allow anonymous access, the interfaces that need
credentials say so with the SSO standard's HTTP Basic security method.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from opus.core.text import printable
from opus.core.times import format_time

AVAILABILITY_NS = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
CAPABILITIES_NS = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VR_NS = "http://www.ivoa.net/xml/VOResource/v1.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

VOSI_CAPABILITIES = "ivo://ivoa.net/std/VOSI#capabilities"
VOSI_AVAILABILITY = "ivo://ivoa.net/std/VOSI#availability"
UWS_REST = "ivo://ivoa.net/std/UWS#rest-1.1"
PROVSAP = "ivo://ivoa.net/std/ProvSAP"
# IVOA SSO 2.0: HTTP Basic authentication (OPUS takes name:token).
BASIC_AUTH = "ivo://ivoa.net/sso#BasicAA"

_XSI_TYPE = f"{{{XSI_NS}}}type"


@dataclass(frozen=True)
class Capability:
    """One capability: its standard (None: not a standard one), what it is, where.

    ``use`` is the access URL's use: ``full`` (called as it is) or ``base`` (a root
    that paths are added to, as a UWS job list's). ``secured``: credentials needed.
    """

    standard_id: str | None
    access_url: str
    use: str = "full"
    description: str | None = None
    secured: bool = False


def availability_document(
    available: bool, notes: Iterable[str], up_since: datetime | None
) -> bytes:
    """A ``vosi:availability`` document."""
    nsmap = {"vosi": AVAILABILITY_NS}
    root = etree.Element(f"{{{AVAILABILITY_NS}}}availability", nsmap=nsmap)
    etree.SubElement(root, f"{{{AVAILABILITY_NS}}}available").text = (
        "true" if available else "false"
    )
    if up_since is not None:
        etree.SubElement(root, f"{{{AVAILABILITY_NS}}}upSince").text = format_time(up_since)
    for note in notes:
        etree.SubElement(root, f"{{{AVAILABILITY_NS}}}note").text = printable(note)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def capabilities_document(capabilities: Iterable[Capability]) -> bytes:
    """A ``vosi:capabilities`` document listing ``capabilities`` in order."""
    nsmap = {"vosi": CAPABILITIES_NS, "vr": VR_NS, "xsi": XSI_NS}
    root = etree.Element(f"{{{CAPABILITIES_NS}}}capabilities", nsmap=nsmap)
    for capability in capabilities:
        element = etree.SubElement(root, "capability")
        if capability.standard_id is not None:
            element.set("standardID", capability.standard_id)
        if capability.description:
            etree.SubElement(element, "description").text = printable(capability.description)
        interface = etree.SubElement(element, "interface")
        interface.set(_XSI_TYPE, "vr:WebService")
        if capability.standard_id is not None:
            # The interface the capability's standard defines.
            interface.set("role", "std")
        access = etree.SubElement(interface, "accessURL")
        access.set("use", capability.use)
        access.text = capability.access_url
        if capability.secured:
            etree.SubElement(interface, "securityMethod").set("standardID", BASIC_AUTH)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def server_capabilities(
    base_url: str, job_types: Sequence[tuple[str, str]], anonymous_allowed: bool
) -> list[Capability]:
    """The capabilities of this server for a caller who may run ``job_types``
    ((name, annotation) pairs): VOSI's, each type's job list and synchronous endpoint,
    and ProvSAP."""
    secured = not anonymous_allowed
    found = [
        Capability(VOSI_CAPABILITIES, f"{base_url}/capabilities"),
        Capability(VOSI_AVAILABILITY, f"{base_url}/availability"),
    ]
    for name, annotation in job_types:
        about = f": {annotation}" if annotation else ""
        found.append(
            Capability(
                UWS_REST,
                f"{base_url}/rest/{name}",
                use="base",
                description=f"The UWS 1.1 job list of {name} jobs{about}",
                secured=secured,
            )
        )
        found.append(
            Capability(
                None,
                f"{base_url}/sync/{name}",
                description=(
                    f"Synchronous {name} jobs: GET or POST the job's parameters, as to "
                    f"{base_url}/rest/{name}; the answer comes when the job has ended "
                    "(a 303 to its one result, or its UWS job document), or a 303 to "
                    "the job if it runs longer"
                ),
                secured=secured,
            )
        )
    found.append(
        Capability(
            PROVSAP,
            f"{base_url}/provsap",
            description="The provenance of jobs and their inputs and results (ProvSAP)",
            secured=secured,
        )
    )
    return found
