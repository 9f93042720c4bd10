"""Security headers on every answer: nosniff, no referrer, and a CSP (strict for pages, with
the framing they allow; `default-src 'none'` for everything else)."""

from __future__ import annotations

from sanic import Request
from sanic.response import HTTPResponse

# Pages may load scripts, styles and data only from this server: no inline code at all.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'"
)



def add_security_headers(request: Request, resp: HTTPResponse, *, frame_ancestors: str) -> None:
    """Headers on every answer; pages also get a strict CSP (`frame_ancestors` for framing)."""
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    content_type = resp.content_type or resp.headers.get("content-type", "")
    if content_type.startswith("text/html"):
        resp.headers.setdefault("Content-Security-Policy",
                                f"{PAGE_CSP}; frame-ancestors {frame_ancestors}")
        if frame_ancestors == "'none'":
            resp.headers.setdefault("X-Frame-Options", "DENY")
    elif "Content-Security-Policy" not in resp.headers:
        resp.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
