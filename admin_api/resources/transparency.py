"""The organization's transparency log: size, signed tree heads, proofs, entries and public keys.

Each organization has its own RFC 9162-style log over its audit events. Everything here can be
checked offline with `python -m casemate_verify` (see casemate_verify/cli.py).
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from admin_api.context import Ctx
from admin_api.http import REQUEST_ID, bad_request, dumps, not_found
from admin_api.routing import RouteTable
from admin_api.schemas import array, obj
from admin_api.store.tlog import log_id_for
from admin_api.transparency import TLOG, TransparencyLog

routes = RouteTable()

HEX = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
STH = obj({"log_id": {"type": "string"}, "tree_size": {"type": "integer"}, "root_hash": HEX,
           "timestamp": {"type": "integer", "description": "Unix milliseconds."}, "key_id": {"type": "string"},
           "signature": {"type": "string", "description": "Ed25519 signature, base64."}})
SIZE = obj({"log_id": {"type": "string"}, "tree_size": {"type": "integer"}})
INCLUSION = obj({"leaf_index": {"type": "integer"}, "tree_size": {"type": "integer"}, "leaf_hash": HEX,
                 "proof": array(HEX), "sth": {"anyOf": [STH, {"type": "null"}]}})
CONSISTENCY = obj({"first": {"type": "integer"}, "second": {"type": "integer"}, "proof": array(HEX)})
KEY = obj({"key_id": {"type": "string"}, "version": {"type": "integer"}, "algorithm": {"type": "string"},
           "current": {"type": "boolean"}, "public_key": {"type": "string", "description": "Raw 32 bytes, base64."}})
SIZE_PARAM = {"type": "integer", "minimum": 0, "maximum": 2**53}


def _log(ctx: Ctx) -> tuple[TransparencyLog, str]:
    return ctx.request.app[TLOG], log_id_for(ctx.tenant_id)


@routes.route("GET", "/api/v1/transparency-log/size", summary="Number of leaves in the organization's log",
              tag="transparency", permission="audit:read", response=SIZE)
async def log_size(ctx: Ctx) -> Any:
    _, log_id = _log(ctx)
    return {"log_id": log_id, "tree_size": await ctx.store.log_size(log_id)}


@routes.route("GET", "/api/v1/transparency-log/sth", summary="The current signed tree head",
              tag="transparency", permission="audit:read", response=STH,
              description="Re-signed when the log grew or the newest head is older than `sth_max_age_s`.")
async def get_sth(ctx: Ctx) -> Any:
    tlog, log_id = _log(ctx)
    return (await tlog.head(log_id)).to_json()


@routes.route("POST", "/api/v1/transparency-log/sth", summary="Sign a tree head now", tag="transparency",
              permission="audit:read", response=STH, status=201)
async def sign_sth(ctx: Ctx) -> Any:
    tlog, log_id = _log(ctx)
    return (await tlog.sign_head(log_id)).to_json()


@routes.route("GET", "/api/v1/transparency-log/proof/{leaf_index}", summary="Inclusion proof of one leaf",
              tag="transparency", permission="audit:read", response=INCLUSION,
              query={"tree_size": {**SIZE_PARAM, "description": "Prove against this size (default: a fresh head)."}})
async def inclusion_proof(ctx: Ctx) -> Any:
    tlog, log_id = _log(ctx)
    raw = ctx.param("leaf_index")
    if not raw.isdigit() or len(raw) > 16:
        raise not_found("leaf")
    index = int(raw)
    head = None
    size = ctx.query.get("tree_size")
    if size is None:
        head = await tlog.head(log_id)
        size = head.tree_size
    else:
        head = await tlog.head_of_size(log_id, size)
    if index >= size:
        raise not_found("leaf")
    try:
        proof = await tlog.inclusion(log_id, index, size)
    except IndexError:
        raise not_found("leaf") from None
    leaf = await ctx.store.leaf_hash_at(log_id, index)
    if leaf is None:
        raise not_found("leaf")
    return {"leaf_index": index, "tree_size": size, "leaf_hash": leaf.hex(), "proof": [p.hex() for p in proof],
            "sth": None if head is None else head.to_json()}


@routes.route("GET", "/api/v1/transparency-log/consistency", summary="Consistency proof between two tree sizes",
              tag="transparency", permission="audit:read", response=CONSISTENCY,
              query={"first": SIZE_PARAM, "second": SIZE_PARAM})
async def consistency_proof(ctx: Ctx) -> Any:
    tlog, log_id = _log(ctx)
    first, second = ctx.query.get("first"), ctx.query.get("second")
    if first is None or second is None:
        raise bad_request("first and second are required", field="first" if first is None else "second")
    if first > second:
        raise bad_request("first must not exceed second", field="first")
    try:
        proof = await tlog.consistency(log_id, first, second)
    except IndexError:
        raise bad_request("second is beyond the log's size", field="second") from None
    return {"first": first, "second": second, "proof": [p.hex() for p in proof]}


@routes.route("GET", "/api/v1/transparency-log/keys", summary="Public keys that sign tree heads",
              tag="transparency", permission="audit:read", response=array(KEY))
async def signing_keys(ctx: Ctx) -> Any:
    tlog, _ = _log(ctx)
    return tlog.keys()


@routes.route("GET", "/api/v1/transparency-log/entries", tag="transparency", permission="audit:read",
              summary="Every leaf of the log in order, as JSON Lines (for `casemate-verify log`)",
              query={"tree_size": SIZE_PARAM}, envelope=False, media_type="application/x-ndjson",
              response={"type": "string"},
              description="One line per leaf: the event with `leaf_index`, or `{leaf_index, leaf_hash, purged}` "
                          "for an event removed by retention.")
async def log_entries(ctx: Ctx) -> Any:
    _, log_id = _log(ctx)
    size = ctx.query.get("tree_size")
    if size is None:
        size = await ctx.store.log_size(log_id)
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store",
                                       "X-Request-ID": ctx.request.get(REQUEST_ID, "")})
    await resp.prepare(ctx.request)
    buf = bytearray()
    async for entry in ctx.store.iter_log_entries(log_id, size):
        buf += dumps(entry) + b"\n"
        if len(buf) >= 64 * 1024:
            await resp.write(bytes(buf))
            buf.clear()
    if buf:
        await resp.write(bytes(buf))
    await resp.write_eof()
    return resp
