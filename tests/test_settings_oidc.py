"""OIDC_PROVIDERS: read from a settings file or the environment (JSON), with defaults,
and refused at load time, saying which provider and key, when it is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opus.settings import OIDCProvider, Settings, SettingsError, load_settings

GOOD = {
    "name": "obspm",
    "label": "Observatoire de Paris",
    "discovery_url": "https://id.example.org/realms/obs/.well-known/openid-configuration",
    "client_id": "opus",
    "client_secret": "s3cret",
}


def providers(*entries: Any) -> tuple[OIDCProvider, ...]:
    settings = Settings(VAR_PATH=Path("/nonexistent"), OIDC_PROVIDERS=entries)  # checked there
    return settings.OIDC_PROVIDERS


def test_defaults_of_a_provider() -> None:
    (provider,) = providers(GOOD)
    assert provider.name == "obspm"
    assert provider.label == "Observatoire de Paris"
    assert provider.scopes == ("openid", "profile", "email")
    assert provider.username_claim == "preferred_username"
    assert provider.unknown_users == "refuse"
    assert provider.default_roles == ()
    assert provider.link_existing is False
    # The label defaults to the name; the secret is never in a repr (logs, tracebacks).
    (bare,) = providers({k: v for k, v in GOOD.items() if k != "label"})
    assert bare.label == "obspm"
    assert "s3cret" not in repr(provider)


def test_no_providers_by_default() -> None:
    assert Settings(VAR_PATH=Path("/nonexistent")).OIDC_PROVIDERS == ()


def test_from_a_settings_file_and_from_the_environment(tmp_path: Path) -> None:
    entry = {
        **GOOD,
        "unknown_users": "create",
        "default_roles": ["sleep"],
        "scopes": ["openid"],
        "link_existing": True,
    }
    settings_file = tmp_path / "settings.py"
    settings_file.write_text(f"OIDC_PROVIDERS = [{entry!r}]\n")
    from_file = load_settings(environ={"OPUS_SETTINGS": str(settings_file)})
    (provider,) = from_file.OIDC_PROVIDERS
    assert provider.unknown_users == "create"
    assert provider.default_roles == ("sleep",)
    assert provider.scopes == ("openid",)
    assert provider.link_existing is True
    environ = {"OPUS_SETTINGS": str(settings_file), "OPUS_OIDC_PROVIDERS": json.dumps([GOOD])}
    (from_env,) = load_settings(environ=environ).OIDC_PROVIDERS
    assert from_env.unknown_users == "refuse"  # the environment wins over the file
    assert from_env.link_existing is False
    linking = json.dumps([{**GOOD, "link_existing": True}])
    (from_json,) = load_settings(environ={"OPUS_OIDC_PROVIDERS": linking}).OIDC_PROVIDERS
    assert from_json.link_existing is True
    assert load_settings(environ={"OPUS_OIDC_PROVIDERS": ""}).OIDC_PROVIDERS == ()


def test_http_is_for_a_provider_on_loopback_only() -> None:
    for url in ("http://127.0.0.1:8081/x", "http://localhost/x", "http://[::1]:9/x"):
        (provider,) = providers({**GOOD, "discovery_url": url})
        assert provider.discovery_url == url


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": None}, r"OIDC_PROVIDERS\[0\]: 'name' is required"),
        ({"client_id": ""}, r"'client_id' is required"),
        ({"discovery_url": None}, r"'discovery_url' is required"),
        ({"client_secert": "x"}, r"unknown key 'client_secert'"),
        ({"name": "Obs PM"}, r"'name' 'Obs PM' must be 1 to 32 lowercase letters"),
        ({"name": "a" * 33}, r"must be 1 to 32"),
        ({"name": 7}, r"'name' must be a string"),
        ({"label": "  "}, r"'label' must not be empty"),
        ({"discovery_url": "http://id.example.org/x"}, r"'discovery_url' must be an https URL"),
        ({"discovery_url": "ftp://id.example.org/x"}, r"https URL"),
        ({"discovery_url": "https:///nohost"}, r"https URL"),
        ({"scopes": ["profile"]}, r"'scopes' must include 'openid'"),
        ({"scopes": "openid"}, r"'scopes' must be a list of strings"),
        ({"scopes": ["openid", 'a"b']}, r"invalid scope 'a\"b'"),
        ({"username_claim": ""}, r"'username_claim' must not be empty"),
        ({"unknown_users": "allow"}, r"'unknown_users' must be 'refuse' or 'create'"),
        ({"default_roles": ["sleep"]}, r"'default_roles' needs unknown_users = 'create'"),
        (
            {"unknown_users": "create", "default_roles": ["bad role"]},
            r"'default_roles': invalid role name 'bad role'",
        ),
        ({"unknown_users": "create", "default_roles": [1]}, r"must be a list of strings"),
        ({"link_existing": "yes"}, r"'link_existing' must be true or false"),
        ({"link_existing": 1}, r"'link_existing' must be true or false"),
    ],
)
def test_a_wrong_provider_is_refused(change: dict[str, Any], message: str) -> None:
    entry = {key: value for key, value in {**GOOD, **change}.items() if value is not None}
    with pytest.raises(SettingsError, match=message):
        providers(entry)


def test_a_wrong_list_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"two providers are named 'obspm'"):
        providers(GOOD, {**GOOD, "label": "again"})
    with pytest.raises(SettingsError, match=r"OIDC_PROVIDERS\[1\] must be a mapping"):
        providers(GOOD, "obspm")
    with pytest.raises(SettingsError, match=r"OIDC_PROVIDERS must be a list"):
        Settings(VAR_PATH=Path("/nonexistent"), OIDC_PROVIDERS={"name": "x"})  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=r"OIDC_PROVIDERS: not a JSON list"):
        load_settings(environ={"OPUS_OIDC_PROVIDERS": "[{name: 'x'}]"})
