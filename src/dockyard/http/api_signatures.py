"""``/api/v1``: a project's trusted signing keys, and who signed an image (cosign signatures).

Handlers unpack the request and call one ``SignatureService`` method, which checks the caller's
rights (keys: read by the project's members, changed by its admins; signatures: pull access).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dockyard.auth.principals import Principal
from dockyard.http.api import Operation
from dockyard.services.signatures import SignatureService

_P = "/api/v1/projects/{project}/keys"
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", _P, "list_keys", "List the public keys a project trusts for cosign signatures (members)."),
    Operation("POST", _P, "add_key",
              "Trust a PEM public key (ECDSA P-256, as `cosign generate-key-pair` writes cosign.pub) under a name "
              "(admin role); 409 if the name or the key is there already.",
              {"name": "string", "public_key": "string"}, ("name", "public_key"), status=201),
    Operation("DELETE", f"{_P}/{{name}}", "remove_key", "Stop trusting a key (admin role).", status=204),
    Operation("GET", "/api/v1/repositories/{name:path}/manifests/{reference}/signatures", "get_signatures",
              "Who signed an image (tag or digest): each cosign signature found through the sha256-<hex>.sig tag "
              "and the referrers, the trusted key it verifies with, or why it does not (pull access)."),
)


class SignaturesApi:
    operations = OPERATIONS

    def __init__(self, signatures: SignatureService) -> None:
        self.signatures = signatures

    async def _list_keys(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.signatures.list_keys(who, r.path_params["project"])

    async def _add_key(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.signatures.add_key(who, r.path_params["project"], b["name"], b["public_key"])

    async def _remove_key(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.signatures.remove_key(who, r.path_params["project"], r.path_params["name"])

    async def _get_signatures(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        p = r.path_params
        return await self.signatures.signatures_of(who, p["name"], p["reference"])
