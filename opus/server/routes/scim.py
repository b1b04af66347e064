"""SCIM 2.0 user management at /scim/v2/Users (admins only)."""

from __future__ import annotations

import bottle

from opus.server import auth


def install(app: bottle.Bottle, users: auth.UserManager, authn: auth.Authenticator) -> None:
    """Register the SCIM routes on ``app``."""
