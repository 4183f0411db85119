"""A refusal from the catalogue as the HTTP response the client gets."""

from __future__ import annotations

import json

from aiohttp import web

from gateway.core.refusals import Refusal

__all__ = ["render"]


def render(refusal: Refusal, request_id: str) -> web.Response:
    """The JSON response for a refusal (never cached)."""
    body = {
        "error": refusal.error,
        "error_description": refusal.description,
        "request_id": request_id,
    }
    return web.Response(
        status=refusal.status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={**refusal.headers, "Cache-Control": "no-store"},
    )
