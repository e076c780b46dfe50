"""Platform administration: every organization, and suspending or reactivating one."""
from __future__ import annotations

from typing import Any

from admin_api.audit import audit
from admin_api.context import Ctx
from admin_api.http import unprocessable
from admin_api.resources.common import path_id
from admin_api.roles import PLATFORM_ADMIN
from admin_api.routing import RouteTable
from admin_api.schemas import TENANT, array, obj

routes = RouteTable()

STATUS = {"type": "string", "enum": ["active", "suspended"]}
LIST_QUERY = {"status": STATUS}
SET_STATUS = obj({"status": STATUS, "reason": {"type": "string", "minLength": 1, "maxLength": 500}},
                 ("status", "reason"))


@routes.route("GET", "/api/v1/platform/tenants", summary="Every organization on this server", tag="platform",
              permission=PLATFORM_ADMIN, paginated=True, query=LIST_QUERY, response=array(TENANT))
async def list_all_tenants(ctx: Ctx) -> Any:
    return await ctx.store.list_all_tenants(status=ctx.query.get("status"), limit=ctx.limit, after=ctx.after)


@routes.route("PUT", "/api/v1/platform/tenants/{tenant_id}/status",
              summary="Suspend or reactivate an organization (its keys stop or resume on the proxy)",
              tag="platform", permission=PLATFORM_ADMIN, body=SET_STATUS, response=TENANT)
async def set_tenant_status(ctx: Ctx) -> Any:
    tid = path_id(ctx, "tenant_id", "organization")
    before = await ctx.store.get_tenant(tid)
    if before["settings"].get("platform") is True and ctx.body["status"] == "suspended":
        raise unprocessable("the platform organization cannot be suspended")
    after = await ctx.store.update_tenant(tid, status=ctx.body["status"])
    await ctx.changed()
    details = {"reason": ctx.body["reason"]}
    await audit(ctx, "tenant.status", "tenant", tid, before={"status": before["status"]},
                after={"status": after["status"]}, details=details)
    if tid != ctx.tenant_id:    # the affected organization's own trail shows it too
        await audit(ctx, "tenant.status", "tenant", tid, before={"status": before["status"]},
                    after={"status": after["status"]}, details=details, tenant_id=tid)
    return after
