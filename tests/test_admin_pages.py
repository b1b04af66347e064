"""The admin pages in-process: refused to everybody but admins (403 page, no Admin link),
their contents (the index, the users page shell and its role choices, every owner's jobs
and the owner filter, the server's status figures), the ``owner`` argument of
JobService.list_user_jobs with the keyset paging both ways, ``?owner=`` of the JSON
``GET /jobs`` (admins only), the store's count of jobs by phase, the reconciler's
record of its last pass and the bounded, cached walk of VAR_PATH."""

from __future__ import annotations

import base64
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

import opus
from opus.core.access import ADMIN_ROLE, JDL_AUTHOR_ROLE, Caller
from opus.core.errors import Forbidden
from opus.core.phases import Phase
from opus.core.records import JobPage
from opus.core.times import utcnow
from opus.server import schema
from opus.server.service import JobService, reconcile
from opus.server.service.reconciler import last_pass
from opus.server.service.status import ACTIVE_PHASES, DiskUsageCache
from opus.server.storage.models import JobRow
from tests.client_helpers import PASSWORD, XSS, Browser, assert_inert, document

ADMIN_PATHS = ("/admin", "/admin/users", "/admin/jobs", "/admin/status")
ROOT = Caller("root", frozenset({ADMIN_ROLE}))
ALICE = Caller("alice")
BOB = Caller("bob")


class Site(Browser):
    """A server with alice (no roles) and root (an admin) as its users."""

    def __init__(self, tmp_path: Path, database_url: str, **settings: Any) -> None:
        super().__init__(tmp_path, database_url, **settings)
        self.root_token = self.users.add("root", [ADMIN_ROLE], PASSWORD)[1]


@pytest.fixture
def browser(tmp_path: Path, database_url: str) -> Site:
    """alice signed in."""
    signed_in = Site(tmp_path, database_url)
    signed_in.sign_in()
    return signed_in


@pytest.fixture
def admin(tmp_path: Path, database_url: str) -> Site:
    """root signed in."""
    signed_in = Site(tmp_path, database_url)
    signed_in.sign_in("root")
    return signed_in


def basic(name: str, token: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{name}:{token}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def pending(service: JobService, owner: Caller, count: int, jobname: str = "sleep") -> list[str]:
    """``count`` PENDING jobs of ``owner``, oldest first."""
    return [
        service.create_job(
            owner, jobname, {"duration": "1"}, control={"RUNID": f"{owner.name}-{i}"}
        ).id
        for i in range(count)
    ]


def newest_first(service: JobService, *job_ids: str) -> list[str]:
    """Job ids in the order of the lists: newest first by (creation time, id), jobs
    made in the same instant by id."""
    jobs = [service.store.get_job(job_id) for job_id in job_ids]
    keys = [(job.creation_time, job.id) for job in jobs if job is not None]
    return [job_id for _, job_id in sorted(keys, reverse=True)]


def listed_ids(answer: Any) -> list[str]:
    return [row.split("/", 1)[1] for row in document(answer).xpath("//tbody/tr/@data-job")]


# -- who may see them -----------------------------------------------------------------


def test_the_admin_pages_are_refused_to_others(browser: Site) -> None:
    for path in ADMIN_PATHS:
        answer = browser.get(path, status=403)
        assert answer.content_type == "text/html"
        assert "the admin pages are for admins only" in answer.text
        assert answer.headers["Cache-Control"] == "no-store"
    # No link to them on her pages.
    for path in ("/", "/jobs", "/profile"):
        assert not document(browser.get(path)).xpath('//a[@href="/admin"]'), path
    # A path under /admin that nothing answers: the HTML 404 page.
    missing = browser.get("/admin/nosuch", status=404)
    assert missing.content_type == "text/html" and "no page at /admin/nosuch" in missing.text


def test_anybody_not_signed_in_goes_to_sign_in(tmp_path: Path, database_url: str) -> None:
    anonymous = Browser(tmp_path, database_url)
    for path in ADMIN_PATHS:
        answer = anonymous.get(path, status=303)
        assert answer.location.endswith(f"/login?next={path}")


def test_anonymous_access_is_no_admin(tmp_path: Path, database_url: str) -> None:
    """With ALLOW_ANONYMOUS, the anonymous caller is never an admin: sign in first."""
    anonymous = Browser(tmp_path, database_url, ALLOW_ANONYMOUS=True)
    for path in ADMIN_PATHS:
        answer = anonymous.get(path, status=303)
        assert answer.location.endswith(f"/login?next={path}")
    assert not document(anonymous.get("/")).xpath('//a[@href="/admin"]')


def test_an_admin_gets_the_link_and_the_index(admin: Site) -> None:
    home = document(admin.get("/"))
    assert home.xpath('//nav//a[@href="/admin"]/text()') == ["Admin"]
    index = admin.get("/admin")
    assert_inert(index)
    page = document(index)
    assert page.xpath('//nav//a[@href="/admin"]/@aria-current') == ["page"]
    links = page.xpath("//main//a/@href")
    for path in ("/admin/users", "/admin/jobs", "/admin/jdl", "/admin/status"):
        assert path in links


# -- users ------------------------------------------------------------------------------


def test_the_users_page_lists_users_and_offers_the_roles(admin: Site) -> None:
    assert "CHECK_PERMISSIONS" in admin.get("/admin/users").text
    admin.users.add("carol", ["sleep", JDL_AUTHOR_ROLE])
    admin.users.set_active("carol", False)
    answer = admin.get("/admin/users")
    assert_inert(answer)
    page = document(answer)
    assert page.xpath("//tbody/tr/@data-user") == ["alice", "carol", "root"]
    carol = page.xpath('//tr[@data-user="carol"]')[0]
    assert carol.xpath('string(td[@data-cell="status"])') == "disabled"
    assert carol.xpath('string(td[@data-cell="roles"])') == f"sleep, {JDL_AUTHOR_ROLE}"
    # Readable without JavaScript, which managing users needs.
    assert "needs JavaScript" in page.xpath("string(//main//noscript)")
    assert page.xpath('//script[contains(@src, "/static/js/admin_users.js")]')
    # The roles: admin, jdl_author and every job type, in both forms.
    offered = page.xpath('//form[@id="create-user"]//input[@name="role"]/@value')
    job_types = admin.service.registry.names()
    assert set(offered) >= {ADMIN_ROLE, JDL_AUTHOR_ROLE, *job_types}
    assert page.xpath('//form[@id="manage-roles"]//input[@name="role"]/@value') == offered
    for box in page.xpath('//form[@id="create-user"]//input[@name="role"]'):
        assert page.xpath(f'//label[@for="{box.get("id")}"]'), box.get("value")
    # The page talks to SCIM, whose token is never in the page.
    assert page.xpath('//*[@id="admin-users"]/@data-scim') == ["/scim/v2"]
    assert page.xpath('//*[@id="admin-users"]/@data-self') == ["root"]
    assert admin.root_token not in answer.text


def test_the_users_page_search(admin: Site) -> None:
    for name in ("carol", "Caroline", "bob"):
        admin.users.add(name, [])
    page = document(admin.get("/admin/users?q=CAR"))
    # In the users' order (by name, in the database's collation).
    found = page.xpath("//tbody/tr/@data-user")
    assert sorted(found) == ["Caroline", "carol"]
    assert page.xpath('//input[@name="q"]/@value') == ["CAR"]
    none = admin.get("/admin/users?q=" + XSS[:60])
    assert_inert(none)
    assert document(none).xpath("//tbody/tr") == []
    assert not document(none).xpath('//*[@id="no-users"]/@hidden')
    admin.get("/admin/users?q=" + "x" * 65, status=400)


def test_the_role_note_follows_check_permissions(tmp_path: Path, database_url: str) -> None:
    checked = Site(tmp_path, database_url, CHECK_PERMISSIONS=True)
    checked.sign_in("root")
    assert "CHECK_PERMISSIONS" not in checked.get("/admin/users").text


def test_the_page_scim_calls_work_with_the_session(admin: Site) -> None:
    """What the page's script sends: the session cookie, and X-CSRF-Token on changes."""
    headers = admin.headers(Accept="application/scim+json")
    listing = admin.app.get("/scim/v2/Users", headers=headers)
    assert [u["userName"] for u in listing.json["Resources"]] == ["alice", "root"]
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "dave"}
    made = admin.app.post_json(
        "/scim/v2/Users", body, headers={**headers, "X-CSRF-Token": admin.csrf}, status=201
    )
    assert made.json["urn:opus:params:scim:schemas:extension:2.0:User"]["token"]
    # Without the CSRF token a change is refused.
    admin.app.delete("/scim/v2/Users/dave", headers=headers, status=403)
    admin.app.delete(
        "/scim/v2/Users/dave", headers={**headers, "X-CSRF-Token": admin.csrf}, status=204
    )


# -- every owner's jobs ------------------------------------------------------------------


def test_the_job_list_of_every_owner_and_of_one(admin: Site) -> None:
    service = admin.service
    alices = pending(service, ALICE, 2)
    bobs = pending(service, BOB, 3)
    answer = admin.get("/admin/jobs")
    assert_inert(answer)
    page = document(answer)
    assert listed_ids(answer) == newest_first(service, *bobs, *alices)
    owner_of = {**dict.fromkeys(alices, "alice"), **dict.fromkeys(bobs, "bob")}
    shown_owners = page.xpath('//tbody/tr/td[@data-cell="owner"]/a/text()')
    assert shown_owners == [owner_of[job_id] for job_id in listed_ids(answer)]
    assert page.xpath("//datalist//option/@value") == ["alice", "root"]
    only_bob = admin.get("/admin/jobs?owner=bob")
    assert listed_ids(only_bob) == newest_first(service, *bobs)
    assert document(only_bob).xpath("string(//h1)") == "Jobs of bob"
    assert document(only_bob).xpath('//input[@name="owner"]/@value') == ["bob"]
    # The other filters combine with it.
    combined = admin.get("/admin/jobs?owner=bob&run_id=bob-1&phase=PENDING&type=sleep")
    assert listed_ids(combined) == [bobs[1]]
    assert listed_ids(admin.get("/admin/jobs?owner=nobody")) == []
    assert "No jobs match." in admin.get("/admin/jobs?owner=nobody").text
    for query in ("limit=7", "phase=SLEEPING", "cursor=nonsense", "type=nosuch"):
        refused = admin.get(f"/admin/jobs?{query}", status="4*")
        assert refused.content_type == "text/html", query


def test_the_owner_list_pages_both_ways(admin: Site) -> None:
    service = admin.service
    bobs = []
    for _ in range(25):
        bobs += pending(service, BOB, 1)
        pending(service, ALICE, 1)
    first = admin.get("/admin/jobs?owner=bob&limit=20")
    assert listed_ids(first) == newest_first(service, *bobs)[:20]
    older = document(first).xpath('//a[@rel="next"]/@href')[0]
    assert "owner=bob" in older and "cursor=" in older
    second = admin.get(older)
    assert listed_ids(second) == newest_first(service, *bobs)[20:]
    assert not document(second).xpath('//a[@rel="next"]')
    back = document(second).xpath('//a[@rel="prev"]/@href')[0]
    assert "owner=bob" in back
    assert listed_ids(admin.get(back)) == newest_first(service, *bobs)[:20]


def test_bulk_abort_from_the_admin_list(admin: Site) -> None:
    alices = pending(admin.service, ALICE, 2)
    bobs = pending(admin.service, BOB, 1)
    back = "/admin/jobs?owner=alice"
    answer = admin.post(
        "/jobs/actions",
        [
            ("action", "abort"),
            ("job", f"sleep/{alices[0]}"),
            ("job", f"sleep/{bobs[0]}"),
            ("next", back),
        ],
    )
    assert answer.location.endswith(back)
    for job_id in (alices[0], bobs[0]):
        job = admin.service.store.get_job(job_id)
        assert job is not None and job.phase == Phase.ABORTED
    untouched = admin.service.store.get_job(alices[1])
    assert untouched is not None and untouched.phase == Phase.PENDING
    listing = document(admin.get(back))
    assert (
        listing.xpath(f'string(//tr[@data-job="sleep/{alices[0]}"]/td[@data-cell="phase"])').strip()
        == "ABORTED"
    )


# -- the owner argument of the service and of GET /jobs -----------------------------------


def test_list_user_jobs_by_owner(admin: Site) -> None:
    service = admin.service
    alices = newest_first(service, *pending(service, ALICE, 3))
    bobs = newest_first(service, *pending(service, BOB, 5))

    def ids(page: JobPage) -> list[str]:
        return [job.job_id for job in page.jobs]

    assert ids(service.list_user_jobs(ROOT, owner="alice")) == alices
    assert len(service.list_user_jobs(ROOT).jobs) == 8
    # A user may name themself; another owner is refused, never their own list instead.
    assert ids(service.list_user_jobs(ALICE, owner="alice")) == alices
    with pytest.raises(Forbidden):
        service.list_user_jobs(ALICE, owner="bob")
    # Keyset paging over one owner: down with the cursor, back up with newer.
    first = service.list_user_jobs(ROOT, owner="bob", limit=2)
    assert ids(first) == bobs[:2] and first.newer_cursor is None
    second = service.list_user_jobs(ROOT, owner="bob", limit=2, cursor=first.next_cursor)
    assert ids(second) == bobs[2:4]
    third = service.list_user_jobs(ROOT, owner="bob", limit=2, cursor=second.next_cursor)
    assert ids(third) == bobs[4:] and third.next_cursor is None
    assert third.newer_cursor is not None
    again = service.list_user_jobs(ROOT, owner="bob", limit=2, newer=third.newer_cursor)
    assert ids(again) == bobs[2:4]
    # An owner nobody is (NUL included, which PostgreSQL cannot even compare): no jobs.
    assert service.list_user_jobs(ROOT, owner="nobody").jobs == ()
    assert service.list_user_jobs(ROOT, owner="bo\x00b").jobs == ()


def test_get_jobs_owner_is_for_admins(admin: Site) -> None:
    service = admin.service
    alices = pending(service, ALICE, 2)
    bobs = pending(service, BOB, 3)
    root = {**basic("root", admin.root_token), "Accept": "application/json"}
    alice = {**admin.basic(), "Accept": "application/json"}
    answer = admin.app.get("/jobs?owner=bob", headers=root)
    assert [job["jobId"] for job in answer.json["jobs"]] == newest_first(service, *bobs)
    assert {job["ownerId"] for job in answer.json["jobs"]} == {"bob"}
    # OWNER, as every parameter of the list, in any case; paged with its cursor.
    first = admin.app.get("/jobs?OWNER=bob&LAST=2", headers=root).json
    rest = admin.app.get(f"/jobs?owner=bob&LAST=2&CURSOR={first['next']}", headers=root).json
    assert [job["jobId"] for job in first["jobs"] + rest["jobs"]] == newest_first(service, *bobs)
    assert len(admin.app.get("/jobs", headers=root).json["jobs"]) == 5
    # alice: her own name is fine, another owner's is 403 (JSON), twice is 400.
    own = admin.app.get("/jobs?owner=alice", headers=alice).json
    assert [job["jobId"] for job in own["jobs"]] == newest_first(service, *alices)
    refused = admin.app.get("/jobs?owner=bob", headers=alice, status=403)
    assert refused.json["error"]["status"] == 403
    assert "only admins" in refused.json["error"]["message"]
    twice = admin.app.get("/jobs?owner=bob&owner=alice", headers=root, status=400)
    assert twice.json["error"]["field"] == "OWNER"
    assert admin.app.get("/jobs?owner=%00", headers=root).json["jobs"] == []


# -- the server's status ----------------------------------------------------------------


def test_the_status_page(admin: Site) -> None:
    service = admin.service
    pending(service, ALICE, 3)
    pending(service, BOB, 1)
    answer = admin.get("/admin/status")
    assert_inert(answer)
    page = document(answer)

    def fact(name: str) -> str:
        return " ".join(page.xpath(f'string(//*[@data-fact="{name}"])').split())

    assert fact("manager") == "local"
    assert fact("dialect") == service.store.engine.dialect.name
    assert fact("version") == opus.__version__
    assert fact("revision") == schema.head_revision()
    assert fact("workers").startswith(f"{admin.settings.WORKERS} process")
    counts = {
        row.get("data-phase-count"): int(row.xpath("string(td[2])"))
        for row in page.xpath("//tr[@data-phase-count]")
    }
    assert counts == {str(phase): 4 if phase == Phase.PENDING else 0 for phase in ACTIVE_PHASES}
    assert fact("active") == "4"
    assert "No pass has run in this server process yet" in fact("reconciler")
    assert fact("disk").endswith("files") and "in memory" not in fact("disk")
    assert "Kept in the memory of this server process" in answer.text


def test_the_status_page_shows_the_last_reconciler_pass(admin: Site) -> None:
    service = admin.service
    doomed = pending(service, ALICE, 2)
    # Their destruction time has passed: the next pass destroys them.
    with service.store.engine.begin() as conn:
        conn.execute(
            update(JobRow)
            .where(JobRow.id.in_(doomed))
            .values(destruction_time=utcnow() - timedelta(minutes=1))
        )
    before = utcnow()
    report = reconcile(service)
    assert sorted(report.destroyed) == sorted(doomed)
    record = last_pass(service)
    assert record is not None and record.report is report and record.error is None
    assert record.started >= before - timedelta(seconds=1) and record.seconds >= 0
    page = document(admin.get("/admin/status"))
    facts = page.xpath('//*[@data-fact="reconciler"]')[0]
    assert facts.xpath('string(.//*[@data-count="destroyed"])') == "2"
    assert facts.xpath('string(.//*[@data-count="changed"])') == "0"
    assert facts.xpath(".//time/@datetime")


def test_a_failed_pass_is_recorded(admin: Site) -> None:
    service = admin.service
    if service.store.engine.dialect.name != "sqlite":
        pytest.skip("the database is taken away by removing its SQLite file")
    database = Path(service.store.engine.url.database or "")
    service.store.engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    with pytest.raises(Exception, match="no such table"):
        reconcile(service)
    record = last_pass(service)
    assert record is not None and record.report is None
    assert record.error is not None and "no such table" in record.error


def test_job_counts_are_for_admins(admin: Site) -> None:
    service = admin.service
    jobs = pending(service, BOB, 2)
    service.abort(BOB, "sleep", jobs[0])
    counts = service.job_counts(ROOT, [Phase.PENDING, Phase.ABORTED, Phase.EXECUTING])
    assert counts == {Phase.PENDING: 1, Phase.ABORTED: 1, Phase.EXECUTING: 0}
    assert service.job_counts(ROOT, []) == {}
    with pytest.raises(Forbidden):
        service.job_counts(BOB, [Phase.PENDING])


def test_the_walk_of_var_path(tmp_path: Path) -> None:
    top = tmp_path / "walked"
    (top / "a" / "b").mkdir(parents=True)
    (top / "one").write_bytes(b"x" * 1000)
    (top / "a" / "b" / "two").write_bytes(b"y" * 234)
    # A link is never followed: what it points to is not under VAR_PATH.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"z" * 100_000)
    os.symlink(outside, top / "a" / "link")
    os.symlink(outside / "big", top / "filelink")
    walks = DiskUsageCache(keep=60)
    usage = walks.of(top)
    assert (usage.size, usage.files, usage.complete) == (1234, 2, True)
    assert usage.free is not None and usage.free > 0
    # Kept for a minute: a new file is not seen until then.
    (top / "three").write_bytes(b"w" * 10)
    assert walks.of(top) is usage
    fresh = DiskUsageCache(keep=0).of(top)
    assert (fresh.size, fresh.files) == (1244, 3)
    # Bounded: a walk stops after so many entries, and says it saw only part.
    bounded = DiskUsageCache(keep=0, max_entries=2).of(top)
    assert not bounded.complete and bounded.size <= 1244
    gone = DiskUsageCache().of(tmp_path / "nothing here")
    assert (gone.size, gone.files, gone.complete) == (0, 0, True)
