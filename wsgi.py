"""WSGI entry point for any WSGI server: ``application``, OPUS with its settings.

The background threads (the reconciler; on PostgreSQL the change-feed listener) run in
this process; with several server processes use ``opus maintenance`` from cron instead,
or keep them in one of them. WAIT requests hold a thread each here (parking needs
`opus serve`).
"""

import os

from opus.server.app import create_application
from opus.settings import load_settings

# What the server creates (SQLite's journals, job files) is its account's alone.
os.umask(0o077)
_opus = create_application(load_settings())
_opus.background.start()
application = _opus.wsgi
