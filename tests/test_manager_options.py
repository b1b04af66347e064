"""Manager options (``slurm_*`` job parameters): checked by the manager at creation,
stored with the job, handed to the manager at submission, never exported to the job's
script."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import webtest

from opus.core.layout import BATCH_SCRIPT, INTERNAL_DIR
from opus.server.app import create_app
from opus.server.managers import ManagedJob
from opus.server.managers.local import LocalManager
from opus.server.service import JobService


class OptionsManager(LocalManager):
    """The local manager, accepting one option and recording what it was given."""

    name = "options"
    option_names = frozenset({"slurm_mem"})

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[ManagedJob] = []

    def check_options(self, options: Mapping[str, str]) -> dict[str, str]:
        checked = {}
        for name, value in options.items():
            if name not in self.option_names:
                raise ValueError(f"{name} is not an option of the {self.name} manager")
            if not re.fullmatch(r"[0-9]+[KMG]?", value.strip()):
                raise ValueError(f"{name}: {value!r} is not a memory size")
            checked[name] = value.strip()
        return checked

    def submit(self, job: ManagedJob, batch_script: Path) -> str:
        self.submitted.append(job)
        return super().submit(job, batch_script)


def test_the_local_manager_refuses_slurm_options(app) -> None:
    response = app.post("/rest/sleep", {"duration": "1", "SLURM_MEM": "1G"}, status=400)
    assert "slurm_mem is not an option of the local manager" in response.text
    assert "<jobref" not in app.get("/rest/sleep").text


def test_options_reach_the_manager_and_not_the_script(settings, service: JobService) -> None:
    manager = OptionsManager()
    service.manager = manager
    app = webtest.TestApp(create_app(settings, service))
    bad = app.post("/rest/sleep", {"duration": "1", "slurm_mem": "1G; rm -rf /"}, status=400)
    assert "is not a memory size" in bad.text
    app.post("/rest/sleep", {"duration": "1", "slurm_cpus": "2"}, status=400)

    location = app.post("/rest/sleep", {"duration": "0", "Slurm_Mem": " 2G"}).location
    job_id = location.rsplit("/", 1)[1]
    assert "2G" in app.get(f"/rest/sleep/{job_id}/parameters/slurm_mem").text
    # Options change like parameters while the job is PENDING.
    app.post(f"/rest/sleep/{job_id}/parameters", {"slurm_mem": "3G"})
    app.post(f"/rest/sleep/{job_id}/phase", {"PHASE": "RUN"})
    [submitted] = manager.submitted
    assert submitted.options == {"slurm_mem": "3G"}
    assert submitted.jobname == "sleep"
    batch = (service.files.directory(job_id) / INTERNAL_DIR / BATCH_SCRIPT).read_text()
    assert "export duration=" in batch
    assert "slurm_mem" not in batch
