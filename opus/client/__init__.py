"""The clients of OPUS: the web client the server serves, and the Python client library.

Two things live in this package, and only the second is imported here:

- **The web client** — ``web.py`` (the page tree, which opus/server/app.py merges into
  the server's root application) and the page modules beside it (``jobpages.py``,
  ``newjob.py``, ``admin.py``, ``previews.py``…). They are part of the server: they
  import bottle and call the JobService. Import them by their module names
  (``from opus.client import web``).
- **The Python client library** — for scripts, notebooks and the `opus` client verbs
  (``api.py``: ``Client``; ``jobs_api.py``: ``Job``; ``models.py`` the records it
  returns; ``errors.py``; ``config.py`` the saved logins; ``transport.py``,
  ``uwsdoc.py``, ``downloads.py`` its HTTP, UWS XML and file sides; ``batch.py`` and
  its siblings many datasets at once; ``commands.py`` and its siblings the `opus`
  verbs). It needs requests and the standard library
  (the ``client`` extra of pyproject.toml), never the server's packages: no bottle,
  SQLAlchemy, lxml, PyYAML or voprov, which tests/test_structure.py checks.

```python
from opus.client import Client
job = Client.from_login().submit("sleep", {"duration": 2})
print(job.wait(timeout=60), [r.id for r in job.results()])
```
"""

from opus.client.api import Client
from opus.client.config import Login, Logins
from opus.client.errors import (
    AuthenticationFailed,
    BadRequest,
    Conflict,
    Forbidden,
    JobFailed,
    LoginError,
    NotFound,
    OpusError,
    PayloadTooLarge,
    PermissionDenied,
    RequestRefused,
    ServerError,
    TooManyRequests,
    Unreachable,
    WaitTimeout,
)
from opus.client.jobs_api import Job
from opus.client.models import (
    Definition,
    ErrorSummary,
    InputSpec,
    JobInfo,
    JobRef,
    JobType,
    Parameter,
    ParameterSpec,
    Progress,
    Result,
    ResultSpec,
    Source,
)
from opus.core.phases import Phase

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "Client",
    "Conflict",
    "Definition",
    "ErrorSummary",
    "Forbidden",
    "InputSpec",
    "Job",
    "JobFailed",
    "JobInfo",
    "JobRef",
    "JobType",
    "Login",
    "LoginError",
    "Logins",
    "NotFound",
    "OpusError",
    "Parameter",
    "ParameterSpec",
    "PayloadTooLarge",
    "PermissionDenied",
    "Phase",
    "Progress",
    "RequestRefused",
    "Result",
    "ResultSpec",
    "ServerError",
    "Source",
    "TooManyRequests",
    "Unreachable",
    "WaitTimeout",
]
