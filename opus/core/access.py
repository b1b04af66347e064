"""Who is asking, and what they may do: the caller of a request and the access rules.

Two rules, applied by the service and nowhere else: a job belongs to its owner, whom
only admins share it with; with CHECK_PERMISSIONS, a job type is usable by the users
whose roles name it (or ``all``), and by admins.
"""

from __future__ import annotations

from dataclasses import dataclass

ANONYMOUS = "anonymous"
ADMIN_ROLE = "admin"
ALL_JOB_TYPES_ROLE = "all"
# May write drafts of new job definitions and of the ones they authored (admins approve).
JDL_AUTHOR_ROLE = "jdl_author"


@dataclass(frozen=True)
class Caller:
    """The identity behind a request: a user's name and roles, or ``anonymous``."""

    name: str
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


def can_access(caller: Caller, job_owner: str) -> bool:
    """True when the caller may see and change a job of ``job_owner``."""
    return caller.is_admin or caller.name == job_owner


def may_use(caller: Caller, jobname: str, check_permissions: bool) -> bool:
    """True when the caller may create jobs of this type."""
    if not check_permissions or caller.is_admin:
        return True
    return jobname in caller.roles or ALL_JOB_TYPES_ROLE in caller.roles
