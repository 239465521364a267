"""The one place registry errors become responses: the OCI JSON envelope."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dockyard.errors import RegistryError, RequestInvalid


def error_body(error: RegistryError) -> bytes:
    entry: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.detail is not None:
        entry["detail"] = error.detail
    return json.dumps({"errors": [entry]}, separators=(",", ":"), default=str).encode()


def render_error(error: RegistryError, *, head: bool = False) -> Response:
    body = error_body(error)
    headers = {"Docker-Distribution-API-Version": "registry/2.0", **error.headers}
    if head:
        headers["Content-Length"] = str(len(body))
        return Response(b"", status_code=error.status, headers=headers, media_type="application/json")
    return Response(body, status_code=error.status, headers=headers, media_type="application/json")


async def small_body(request: Request, limit: int, what: str = "the body") -> bytes:
    """A request body that must be small (a form, a JSON document): refused past ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestInvalid(f"{what} is larger than {limit} bytes")
    return bytes(body)
