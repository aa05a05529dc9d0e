"""The dashboard as Streamlit's ASGI app (`streamlit run` finds `app` here), with its page told where the
server is.

Streamlit's frontend looks for its server by asking the page's own path first and the root after it, so a
deep link such as /release?service=... costs two 404s in the browser's console (/release/_stcore/health
and /release/_stcore/host-config; streamlit/streamlit#7074). Given the server's address in
`window.__streamlit.BACKEND_BASE_URL` (its embedding setting) it asks there only: each page's HTML carries it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from streamlit import config

# The pages' URL paths (st.navigation derives them from the views' file names; "" is the default page).
PAGE_PATHS = frozenset({"", "overview", "service", "release", "calibration", "sources"})
_HEAD = "<head>"


def backend_script(base_url_path: str) -> str:
    """The script that gives Streamlit's frontend its server's address: the origin and the base URL path."""
    path = "/" + base_url_path.strip("/")
    # JSON is a JavaScript literal; "<" escaped so no configured path can close the script element.
    literal = json.dumps(path).replace("<", "\\u003c")
    return f"<script>window.__streamlit = {{BACKEND_BASE_URL: new URL({literal}, window.location.origin).href}};</script>"


def page_html(streamlit_index: str, base_url_path: str) -> str:
    """Streamlit's index.html with `backend_script` first in its head (before the frontend's modules run)."""
    if _HEAD not in streamlit_index:
        raise ValueError("Streamlit's index.html has no <head>: its frontend changed, review dashboard/server.py")
    return streamlit_index.replace(_HEAD, _HEAD + backend_script(base_url_path), 1)


def page_path(request_path: str, base_url_path: str) -> str | None:
    """The page a request path names (None for anything else: assets, Streamlit's own routes)."""
    prefix = "/" + base_url_path.strip("/") if base_url_path.strip("/") else ""
    if prefix and not (request_path == prefix or request_path.startswith(prefix + "/")):
        return None
    name = request_path[len(prefix):].strip("/")
    return name if name in PAGE_PATHS else None


@cache
def _page_html(base_url_path: str) -> str:
    index = Path(st.__file__).with_name("static") / "index.html"
    return page_html(index.read_text(encoding="utf-8"), base_url_path)


class ServerAddressMiddleware:
    """Answers a page's GET with Streamlit's HTML plus the server's address; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        base_url_path = str(config.get_option("server.baseUrlPath") or "")
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and page_path(scope["path"], base_url_path) is not None:
            response = HTMLResponse(_page_html(base_url_path), headers={"Cache-Control": "no-cache"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


app = st.App(Path(__file__).with_name("app.py"), middleware=[Middleware(ServerAddressMiddleware)])
