"""An httpx client that follows redirects the way Go's net/http does, Authorization included.

httpx drops the ``Authorization`` header on a redirect to another origin (scheme, host *and*
port). Go's client (``shouldCopyHeaderOnRedirect``, Go 1.21 and later) keeps it when the new host
name is the same as the one asked, whatever the port, or a subdomain of it, and drops it
otherwise. docker, containerd, skopeo, oras and the OCI conformance suite are built on Go's
client, so this is what an object store behind a registry's redirect receives from them.
"""

from __future__ import annotations

import httpx


def is_domain_or_subdomain(sub: str, parent: str) -> bool:
    """Go's net/http isDomainOrSubdomain."""
    if sub == parent:
        return True
    if ":" in sub or "%" in sub:  # an IPv6 address is no one's subdomain
        return False
    return sub.endswith(f".{parent}")


class GoRedirectClient(httpx.Client):
    """``httpx.Client`` with Go's rule for sensitive headers on redirects (see the module docstring)."""

    def _redirect_headers(self, request: httpx.Request, url: httpx.URL, method: str) -> httpx.Headers:
        headers = super()._redirect_headers(request, url, method)
        authorization = request.headers.get("Authorization")
        if authorization is not None and is_domain_or_subdomain(url.host, request.url.host):
            headers["Authorization"] = authorization
        return headers
