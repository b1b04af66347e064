"""The OPUS domain, free of any framework: what a job is and the rules it follows.

Phases and their transition table, the error family every interface renders, the
records the service hands out (jobs, their parameters and results, users, the caller),
the time helpers and the layout of a job's directory. Nothing here imports bottle,
SQLAlchemy, lxml or cheroot (a test checks it): the server, the web client and the
command-line client all build on these modules, and the client needs no server code.
"""
