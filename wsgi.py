"""WSGI entry point for any WSGI server: ``application = create_app(load_settings())``.

The background reconciler runs in this process; with several server processes use
``opus maintenance`` from cron instead, or keep it in one of them.
"""

from opus.server.app import create_app
from opus.settings import load_settings

application = create_app(load_settings(), start_reconciler=True)
