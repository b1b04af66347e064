"""The two errors of the JDL package: a broken definition, and a client's bad parameter."""

from __future__ import annotations


class JDLError(ValueError):
    """A job definition is broken.

    The message names the file (when known), the field and the problem, e.g.
    ``jdl/foo.yml: parameters[2].datatype: 'xs:integer' is not one of ...``. The parts are
    kept as attributes so that an editor can point at the faulty field.
    """

    def __init__(self, problem: str, *, field: str | None = None, source: str | None = None):
        self.problem = problem
        self.field = field
        self.source = source
        # A field may be a key of the document itself (an unknown key): quote it if it
        # holds line breaks, so that the message stays on one line.
        shown = field if field is None or field.isprintable() else repr(field)
        super().__init__(": ".join(part for part in (source, shown, problem) if part))

    def with_source(self, source: str) -> JDLError:
        """Return this error naming ``source``, unless it already names a file."""
        if self.source is not None:
            return self
        return JDLError(self.problem, field=self.field, source=source)


class ParameterError(ValueError):
    """A client gave a bad job parameter; the one-line message becomes an HTTP 400 reason,
    ``field`` the name of the parameter (as the client sent it) when one is to blame."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
