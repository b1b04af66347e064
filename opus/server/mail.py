"""E-mail to the admins of a server, sent in the background.

A message is a courtesy (a definition waits for approval, and the approval queue shows
it anyway), so a mail server that is slow or down never delays nor fails the request
that caused it: each message is sent by a short-lived daemon thread, and a failure is
logged. Nothing is sent while MAIL_HOST is empty.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from email.message import EmailMessage

from opus.settings import Settings

log = logging.getLogger("opus.mail")

# An SMTP exchange that takes longer than this is given up (and logged).
SMTP_TIMEOUT = 30.0


class Mailer:
    """Sends messages to MAIL_ADMINS through MAIL_HOST."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return bool(self.settings.MAIL_HOST)

    def tell_admins(self, subject: str, body: str) -> threading.Thread | None:
        """Send a message to the admins in the background; the thread sending it (tests
        join it), or None when mail is off."""
        if not self.enabled:
            return None
        message = EmailMessage()
        message["From"] = self.settings.MAIL_FROM
        message["To"] = ", ".join(self.settings.mail_admins)
        # Header injection is impossible: EmailMessage refuses line breaks in headers,
        # and the subject is built from a checked job name.
        message["Subject"] = subject
        message.set_content(body)
        thread = threading.Thread(target=self._send, args=(message,), name="opus-mail", daemon=True)
        thread.start()
        return thread

    def _send(self, message: EmailMessage) -> None:
        settings = self.settings
        try:
            smtp: smtplib.SMTP
            if settings.MAIL_SECURITY == "ssl":
                context = ssl.create_default_context()
                smtp = smtplib.SMTP_SSL(
                    settings.MAIL_HOST, settings.MAIL_PORT, timeout=SMTP_TIMEOUT, context=context
                )
            else:
                smtp = smtplib.SMTP(settings.MAIL_HOST, settings.MAIL_PORT, timeout=SMTP_TIMEOUT)
            with smtp:
                if settings.MAIL_SECURITY == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if settings.MAIL_USERNAME:
                    smtp.login(settings.MAIL_USERNAME, settings.MAIL_PASSWORD)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("mail %r to %s not sent: %s", message["Subject"], message["To"], exc)
