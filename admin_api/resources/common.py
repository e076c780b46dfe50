"""Checks shared by resource handlers."""
from __future__ import annotations

from typing import Any

from admin_api.context import Ctx
from admin_api.http import forbidden, not_found
from admin_api.ids import is_uuid
from admin_api.roles import ROLE_PERMISSIONS


def path_id(ctx: Ctx, name: str, what: str) -> str:
    """A UUID path parameter; anything else is simply not found."""
    value = ctx.param(name)
    if not is_uuid(value):
        raise not_found(what)
    return value


def own_tenant(ctx: Ctx, name: str = "tenant_id") -> str:
    """The `{tenant_id}` path parameter, which must be the caller's tenant (others are not found)."""
    tid = ctx.param(name)
    if tid != ctx.tenant_id:
        raise not_found("organization")
    return tid


def check_grantable(ctx: Ctx, role: str) -> None:
    """A caller cannot hand out a role with permissions they do not hold."""
    if not ROLE_PERMISSIONS[role] <= ctx.me.permissions:
        raise forbidden(f"you cannot grant the role {role}")


def changed_fields(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The subset of `body` naming updatable fields (present keys only; null is a value)."""
    return {n: body[n] for n in names if n in body}
