"""Exceptions raised by the store package.

Every message says what went wrong *and* how to fix it. The store imports none of the other
workbench packages, so these do not derive from ``concepts.WorkbenchError``; callers that want
one ``except`` clause for both can catch :class:`StoreError` alongside it.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose (user-facing)."""


class ValidationError(StoreError, ValueError):
    """An argument that cannot be stored (wrong type, too large, not valid JSON/UTF-8, ...).

    Nothing has been written when this is raised.
    """


class PermissionDenied(StoreError, PermissionError):
    """The actor's role does not allow the requested action. Nothing has been written."""


class StoreBusyError(StoreError, TimeoutError):
    """Another process kept the store file locked for longer than the store's busy timeout."""


class MigrationError(StoreError):
    """The database schema does not match the migrations shipped with this version."""


class ChainError(StoreError):
    """The event hash chain is broken (raised by :meth:`store.VerifyResult.raise_if_bad`)."""


class NotFoundError(StoreError, LookupError):
    """An intervention, event or file that does not exist."""
