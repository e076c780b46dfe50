"""The admin fixtures (SQLite and real PostgreSQL stores, admin client, two organizations)."""
from tests.admin.conftest import admin, orgs, store  # noqa: F401  (pytest fixtures re-exported)
