"""A refusal from the catalogue as the HTTP response the client gets."""

from __future__ import annotations

import functools
import json
import re

from aiohttp import web

from gateway.core.refusals import Refusal

__all__ = ["PLAIN_ID", "render"]

# Request ids the gateway hands out or keeps (`gateway.core.headers.request_id`) need no escaping.
PLAIN_ID = re.compile(r"[A-Za-z0-9._-]*")


@functools.lru_cache(maxsize=256)
def _body_head(error: str, description: str) -> bytes:
    """The JSON body up to the request id's value (the texts are the gateway's own, from a
    fixed catalogue, so this stays small)."""
    whole = json.dumps({"error": error, "error_description": description, "request_id": ""})
    return whole[: -len('"}')].encode()


def render(refusal: Refusal, request_id: str) -> web.Response:
    """The JSON response for a refusal (never cached): ``json.dumps`` of error,
    error_description and request_id, byte for byte."""
    if PLAIN_ID.fullmatch(request_id):
        body = _body_head(refusal.error, refusal.description) + request_id.encode() + b'"}'
    else:
        body = json.dumps(
            {
                "error": refusal.error,
                "error_description": refusal.description,
                "request_id": request_id,
            }
        ).encode()
    return web.Response(
        status=refusal.status,
        body=body,
        content_type="application/json",
        headers={**refusal.headers, "Cache-Control": "no-store"},
    )
