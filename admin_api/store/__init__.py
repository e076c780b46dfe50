"""Control-plane persistence: `open_store(url)` returns a `Store` over SQLite or PostgreSQL."""
from admin_api.store.base import Page
from admin_api.store.crypto import DecryptionError
from admin_api.store.errors import (
    ConflictError,
    NotFoundError,
    StoreError,
    StoreUnavailable,
)
from admin_api.store.sessions import Rotation
from admin_api.store.store import Store, open_store

__all__ = [
    "ConflictError",
    "DecryptionError",
    "NotFoundError",
    "Page",
    "Rotation",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]
