"""Errors a user can act on.

Every error junto raises for a user mistake or an environment problem is a :class:`JuntoError`:
a message that names the problem and a ``hint`` that names the fix. The CLI prints both and exits
with ``exit_code`` instead of a traceback.
"""

from __future__ import annotations


class JuntoError(Exception):
    """Base class: ``message`` says what is wrong, ``hint`` what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(JuntoError):
    """A configuration file or option is invalid (a usage error: exit code 2).

    ``param``, when known, names the offending field (the gateway reports it as the OpenAI error's ``param``).
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, *, param: str | None = None):
        super().__init__(message, hint)
        self.param = param


class ModelNotAvailable(JuntoError):
    """A model file is missing and cannot be fetched."""


class ServerStartError(JuntoError):
    """A managed model server failed to start; ``log_tail`` holds its last log lines."""

    def __init__(self, message: str, hint: str | None = None, log_tail: str = ""):
        super().__init__(message, hint)
        self.log_tail = log_tail

    def __str__(self) -> str:
        text = super().__str__()
        if self.log_tail:
            text += "\n  last log lines:\n" + "\n".join("    " + line for line in self.log_tail.splitlines())
        return text


class BackendError(JuntoError):
    """A deployment could not be reached or answered badly."""

    def __init__(self, message: str, hint: str | None = None, *, deployment: str = "", retryable: bool = False,
                 status_code: int | None = None):
        super().__init__(message, hint)
        self.deployment = deployment
        self.retryable = retryable
        self.status_code = status_code

    @property
    def client_fault(self) -> bool:
        """The deployment refused the request itself (HTTP 4xx other than 408/429): the caller's error to fix.

        Such a refusal says nothing about the deployment's health: it must never cool it down for others.
        """
        return self.status_code is not None and 400 <= self.status_code < 500 and self.status_code not in (408, 429)
