"""What a route handler sees: the caller, the validated input and the app's services."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from admin_api.http import REQUEST_ID
from admin_api.store import Store

if TYPE_CHECKING:
    from admin_api.settings import AdminSettings
    from admin_api.throttle import LoginThrottle
    from admin_api.tokens import TokenIssuer

log = logging.getLogger("casemate.admin")

STORE: web.AppKey[Store] = web.AppKey("store", Store)
SETTINGS: web.AppKey[AdminSettings] = web.AppKey("settings")
ISSUER: web.AppKey[TokenIssuer] = web.AppKey("issuer")
THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("throttle")
STARTED_AT: web.AppKey[float] = web.AppKey("started_at", float)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, bound to one tenant."""

    kind: Literal["user", "api_key"]
    id: str
    tenant_id: str
    role: str
    permissions: frozenset[str]

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.id}"


class Ctx:
    """One admin request after authentication and validation."""

    __slots__ = ("after", "body", "limit", "principal", "query", "request")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.principal: Principal | None = None
        self.body: dict[str, Any] = {}
        self.query: dict[str, Any] = {}
        self.limit = 50
        self.after: str | None = None

    @property
    def store(self) -> Store:
        return self.request.app[STORE]

    @property
    def settings(self) -> AdminSettings:
        return self.request.app[SETTINGS]

    @property
    def issuer(self) -> TokenIssuer:
        return self.request.app[ISSUER]

    @property
    def me(self) -> Principal:
        """The caller (routes that are not public always have one)."""
        assert self.principal is not None
        return self.principal

    @property
    def tenant_id(self) -> str:
        return self.me.tenant_id

    @property
    def request_id(self) -> str:
        return self.request.get(REQUEST_ID, "")

    def param(self, name: str) -> str:
        return self.request.match_info[name]

    async def changed(self) -> None:
        """Tell the data plane to re-read the change feed now (best effort; polling converges anyway)."""
        notify = self.settings.notify_change
        if notify is not None:
            try:
                await notify()
            except Exception as exc:  # noqa: BLE001 - a lost nudge only delays convergence to the next poll
                log.warning("change notification failed: %s", exc.__class__.__name__)
