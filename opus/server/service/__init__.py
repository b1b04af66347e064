"""The service layer: the one way to a job, for every interface.

``JobService`` (jobs.py) is the job life cycle and the access rules; ``JobValidator``
(validation.py) checks what clients send; ``JobFiles`` (jobfiles.py) is a job's
directory; inputs.py saves uploads and fetches URL inputs; reconciler.py catches what
signals missed. Routes and pages call the JobService with the caller, never a store.
"""

from opus.server.service.jobs import JobService
from opus.server.service.reconciler import Reconciler, ReconcileReport, reconcile

__all__ = ["JobService", "ReconcileReport", "Reconciler", "reconcile"]
