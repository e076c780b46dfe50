"""Roles and the permission strings every admin route declares."""
from __future__ import annotations

from types import MappingProxyType

READ = ("tenants:read", "members:read", "users:read", "keys:read", "policies:read", "providers:read",
        "killswitch:read", "requests:read", "gateway:read", "cache:read")
ALL = READ + ("tenants:write", "tenants:delete", "members:write", "users:write", "keys:write", "policies:write",
              "providers:write", "killswitch:write", "gateway:write", "cache:write", "audit:read", "checks:review")

# `platform:admin` is never part of a role: it is granted to owners and admins of the platform tenant
# (the one `casemate bootstrap` creates) and guards global switches and platform-wide purges.
PLATFORM_ADMIN = "platform:admin"

ROLE_PERMISSIONS: MappingProxyType[str, frozenset[str]] = MappingProxyType({
    "owner": frozenset(ALL),
    "admin": frozenset(p for p in ALL if p != "tenants:delete"),
    "security_admin": frozenset(READ + ("keys:write", "policies:write", "killswitch:write", "audit:read",
                                        "cache:write", "checks:review")),
    "member": frozenset(("tenants:read", "keys:read", "policies:read", "providers:read", "killswitch:read",
                         "requests:read", "gateway:read", "gateway:write")),
    "viewer": frozenset(READ),
    "auditor": frozenset(READ + ("audit:read",)),
})
ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)
PLATFORM_ROLES = frozenset(("owner", "admin"))


def permissions_for(role: str, *, platform: bool = False) -> frozenset[str]:
    """The permissions of `role` (empty for an unknown role); `platform` adds platform:admin to owners/admins."""
    perms = ROLE_PERMISSIONS.get(role, frozenset())
    if platform and role in PLATFORM_ROLES:
        return perms | {PLATFORM_ADMIN}
    return perms


def assignable_roles(granted: frozenset[str]) -> list[str]:
    """Roles a caller holding `granted` may hand out: never more than the caller has."""
    return [r for r, perms in ROLE_PERMISSIONS.items() if perms <= granted]
