"""A deleted user's jobs never pass to the next user of the same name: deleting a user
(SCIM DELETE, `opus user delete`) gives their jobs to an owner nobody can be, which
admins still see and can delete; a new user of the name sees none of them (job list,
job, result files)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import webtest
from lxml import etree

from opus.core.access import Caller
from opus.core.errors import Forbidden
from opus.server.app import build_service, create_app
from opus.server.auth import USER_NAME, UserManager
from opus.server.storage import UserStore
from tests.conftest import make_settings
from tests.test_cli import opus
from tests.test_rest import finish_for_real, job_id_of, path_of
from tests.test_scim import CORE, EXT, SCIM_TYPE, basic

USERS = "/scim/v2/Users"
JOBREF = "{http://www.ivoa.net/xml/UWS/v1.0}jobref"


class Site:
    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.settings = make_settings(tmp_path, DATABASE_URL=database_url, ALLOW_ANONYMOUS=False)
        self.service = build_service(self.settings)
        self.app = webtest.TestApp(create_app(self.settings, self.service))
        self.users = UserManager(UserStore(self.service.store.engine))
        self.root = basic("root", self.users.add("root", ["admin"])[1])

    def scim_create(self, name: str) -> dict[str, str]:
        body = json.dumps({"schemas": [CORE], "userName": name}).encode()
        headers = {**self.root, "Content-Type": SCIM_TYPE}
        created = self.app.post(USERS, body, headers=headers, status=201).json
        return basic(name, created[EXT]["token"])

    def listed(self, auth: dict[str, str]) -> list[str]:
        body = self.app.get("/rest/sleep", headers=auth).body
        return [ref.get("id") for ref in etree.fromstring(body).iter(JOBREF)]


def test_a_user_deleted_through_scim_leaves_no_jobs_to_the_next(
    tmp_path: Path, database_url: str
) -> None:
    site = Site(tmp_path, database_url)
    dave = site.scim_create("dave")
    path = path_of(site.app.post("/rest/sleep", {"duration": "0", "PHASE": "RUN"}, headers=dave))
    job_id = job_id_of(path)
    finish_for_real(site.service, job_id)
    assert site.app.get(f"{path}/phase", headers=dave).text == "COMPLETED"
    store_url = urlsplit(site.app.get(f"{path}/results/output", headers=dave).location).path
    site.app.get(store_url, headers=dave, status=200)
    version = site.service.store.get_job(job_id).version

    site.app.delete(f"{USERS}/dave", headers=site.root, status=204)
    # Kept for the admins, under an owner nobody can be; its version moved on.
    owner = site.app.get(f"{path}/owner", headers=site.root).text
    assert owner.startswith("deleted:dave:") and not USER_NAME.fullmatch(owner)
    assert site.service.store.get_job(job_id).version > version
    assert job_id in site.listed(site.root)

    new_dave = site.scim_create("dave")
    assert site.listed(new_dave) == []
    for resource in ("", "/phase", "/results", "/results/output", "/owner", "/parameters"):
        site.app.get(f"{path}{resource}", headers=new_dave, status=403)
    site.app.get(store_url, headers=new_dave, status=403)
    site.app.delete(path, headers=new_dave, status=403)
    # New dave's own jobs are his; the admin can still delete the old one.
    mine = job_id_of(path_of(site.app.post("/rest/sleep", {}, headers=new_dave)))
    assert site.listed(new_dave) == [mine]
    site.app.delete(path, headers=site.root, status=303)
    site.app.get(path, headers=site.root, status=404)


def test_jobs_left_by_a_request_under_way_at_the_deletion(
    tmp_path: Path, database_url: str
) -> None:
    """A job stored under the name after its user was deleted (a creation under way at
    that moment) passes on when the name is given again."""
    site = Site(tmp_path, database_url)
    dave = site.scim_create("dave")
    site.app.delete(f"{USERS}/dave", headers=site.root, status=204)
    late = site.service.create_job(Caller("dave"), "sleep", {})
    new_dave = site.scim_create("dave")
    assert site.listed(new_dave) == []
    with pytest.raises(Forbidden):
        site.service.get_job(Caller("dave"), "sleep", late.id)
    assert site.app.get(f"/rest/sleep/{late.id}/owner", headers=site.root).text != "dave"
    site.app.get("/rest/sleep", headers=dave, status=401)  # the old token died with him


def test_a_user_deleted_with_the_cli_leaves_no_jobs_to_the_next(tmp_path: Path) -> None:
    var = tmp_path / "var"
    assert opus("db", "upgrade", var=var).returncode == 0
    assert opus("user", "add", "dave", var=var).returncode == 0
    settings = make_settings(tmp_path, VAR_PATH=var, DATABASE_URL=f"sqlite:///{var / 'opus.db'}")
    service = build_service(settings)
    dave = Caller("dave")
    old = service.create_job(dave, "sleep", {})
    assert [s.job_id for s in service.list_jobs(dave, "sleep")] == [old.id]

    deleted = opus("user", "delete", "dave", var=var)
    assert deleted.returncode == 0, deleted.stderr
    added = opus("user", "add", "dave", var=var)
    assert added.returncode == 0, added.stderr
    assert list(service.list_jobs(dave, "sleep")) == []
    with pytest.raises(Forbidden):
        service.get_job(dave, "sleep", old.id)
    admin = Caller("root", frozenset({"admin"}))
    owners = [s.owner for s in service.list_jobs(admin, "sleep")]
    assert len(owners) == 1 and owners[0].startswith("deleted:dave:")
    assert owners[0] in deleted.stdout  # it says where they went
