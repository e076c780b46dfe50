"""Errors the store raises, independent of the database driver underneath."""
from __future__ import annotations


class StoreError(Exception):
    """Base class for store failures the caller can act on."""


class NotFoundError(StoreError):
    """The row does not exist in the caller's tenant (other tenants' rows look the same)."""


class ConflictError(StoreError):
    """A uniqueness rule was violated (duplicate email, key hash, policy name, ...)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or refused the connection."""
