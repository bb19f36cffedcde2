"""Domain errors: what services raise when they refuse, in the domain's words.

A service (worklist, reports, orders, accounts, ...) says *why* it refuses;
it never speaks HTTP, so HL7, DICOM or a command line can call it too. The
HTTP mapping is made once, in `plugin.http.Router.dispatch`
(`HTTP_STATUS`); a DIMSE or HL7 front end maps the same classes its own way.
"""


class DomainError(Exception):
    """A refusal with a message for the person (or system) who asked."""

    def __init__(self, message, *, headers=None):
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})  # e.g. Retry-After; ignored outside HTTP


class Invalid(DomainError):
    """The input is wrong: a missing or malformed field, a value out of range."""


class NotFound(DomainError):
    """No such thing (or none the asker may know about)."""


class Conflict(DomainError):
    """The thing is in a state that forbids this: claimed by someone else, already signed, changed meanwhile."""


class Forbidden(DomainError):
    """The asker may not do this to this object."""


class Unauthenticated(DomainError):
    """No one, or not the right one, is signed in."""


class Locked(DomainError):
    """Too many failed attempts: wait before trying again."""


class TooLarge(DomainError):
    """The input is larger than this server takes."""


class Unsupported(DomainError):
    """The input's kind (media type, transfer syntax, ...) is not one this server takes."""


class Unavailable(DomainError):
    """A component this needs (database, disk) is not answering."""


class RemoteFailed(DomainError):
    """A remote node (another PACS, a modality) refused or failed what was asked of it."""


class RemoteTimedOut(DomainError):
    """A remote node did not answer in time."""
