"""A fault-injecting HTTP proxy on loopback, in front of a real server (Prometheus, noida-db): every
request is forwarded, and the answer handed to the proxy's current fault, which may change it, delay it,
replace it or drop the connection. The faults the fault suite runs are built here."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

# Headers that belong to one hop, or that the proxy sets itself for the body it sends.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass(frozen=True)
class Exchange:
    """One request as the proxy received it, and the answer it is about to send."""

    method: str
    path: str
    query: dict[str, list[str]]
    request_headers: dict[str, str]
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def promql(self) -> str:
        """The PromQL of a Prometheus query (GET parameters or a form body), "" for anything else."""
        return (self.query.get("query") or [""])[0]

    def json(self) -> Any:
        return json.loads(self.body)

    def with_json(self, payload: Any) -> Exchange:
        return replace(self, body=json.dumps(payload).encode())


class Drop(Exception):
    """Raised by a fault: close the connection without answering."""


Fault = Callable[[Exchange], Exchange]


class FaultProxy:
    """Forwards everything to `upstream`; `fault` (None: none) decides what each answer becomes. The
    headers of every request are kept in `seen`, as a gateway in front of Thanos or Mimir would see them.

    With `remember`, a search (Elasticsearch's _search and _msearch) that upstream answered with 200 is
    answered again from memory when the same request comes back (method, path and body byte for byte;
    not the headers: noida-db checks no credentials): the suites judge the same releases over a data set
    that never changes, and noida-db takes 0.2-0.4 s a search, a second or two a release. The fault
    still applies to every answer, remembered or not."""

    def __init__(self, upstream: str, *, remember: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault: Fault | None = None
        self.seen: list[dict[str, str]] = []
        self.remember = remember
        self.remembered: dict[tuple[str, str, bytes], requests.Response] = {}
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                proxy._handle(self)

            do_POST = do_PUT = do_HEAD = do_DELETE = do_GET  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @contextmanager
    def injecting(self, fault: Fault) -> Iterator[None]:
        """Apply `fault` to every answer inside the block, and none after it."""
        self.fault = fault
        try:
            yield
        finally:
            self.fault = None

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        self.seen.append(dict(handler.headers.items()))
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        if body and "form-urlencoded" in handler.headers.get("Content-Type", ""):
            query |= parse_qs(body.decode("utf-8", errors="replace"))
        upstream = self._forward(handler.command, handler.path, headers, body)
        exchange = Exchange(
            handler.command, parts.path, query, dict(handler.headers.items()), upstream.status_code,
            {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}, upstream.content,
        )
        try:
            answer = self.fault(exchange) if self.fault is not None else exchange
        except Drop:
            handler.close_connection = True
            return
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(answer.body)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> requests.Response:
        key = (method, path, body)
        memorable = self.remember and urlsplit(path).path.endswith(("/_search", "/_msearch"))
        if memorable:
            with self.lock:
                known = self.remembered.get(key)
            if known is not None:
                return known
        upstream = requests.request(method, self.upstream + path, headers=headers, data=body, timeout=60)
        if memorable and upstream.status_code == 200:
            with self.lock:
                self.remembered[key] = upstream
        return upstream


class _QuietServer(http.server.ThreadingHTTPServer):
    """A client that gave up on a hang closes its end: the proxy's failed write is expected, and printing
    its traceback on stderr would land in the output of the front end under test."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


# ---- faults ---------------------------------------------------------------------------------------------


def on_queries(fault: Fault) -> Fault:
    """The fault for Prometheus' query endpoints only (the health check, /-/ready and the rest pass)."""
    return lambda e: fault(e) if e.path.startswith("/api/v1/query") else e


def on_range_queries(fault: Fault) -> Fault:
    """The fault for Prometheus' range queries only: the metrics judged, not the deploy scan's instant queries."""
    return lambda e: fault(e) if e.path.endswith("/query_range") else e


def on_searches(fault: Fault) -> Fault:
    """The fault for Elasticsearch's searches only (the client's product check of GET / passes)."""
    return lambda e: fault(e) if e.path.endswith(("/_search", "/_msearch")) else e


def drop(_: Exchange) -> Exchange:
    raise Drop()


def hang(seconds: float) -> Fault:
    def fault(e: Exchange) -> Exchange:
        time.sleep(seconds)
        return e
    return fault


def status(code: int, body: bytes = b"", content_type: str = "application/json") -> Fault:
    return lambda e: replace(e, status=code, body=body, headers={**e.headers, "Content-Type": content_type})


def garbage(e: Exchange) -> Exchange:
    page = b"<html><body><h1>Bad gateway</h1><p>the upstream went away</p></body></html>"
    return replace(e, body=page, headers={**e.headers, "Content-Type": "text/html"})


def truncated(e: Exchange) -> Exchange:
    return replace(e, body=e.body[: max(1, len(e.body) // 2)])


def prometheus_payload(change: Callable[[dict[str, Any]], None]) -> Fault:
    """A fault that changes the JSON of a successful Prometheus answer in place."""
    def fault(e: Exchange) -> Exchange:
        if e.status != 200:
            return e
        payload = e.json()
        change(payload)
        return e.with_json(payload)
    return fault


def warnings(*texts: str) -> Fault:
    """Prometheus (Thanos, Mimir) answering with part of the data, and saying so in `warnings`."""
    return prometheus_payload(lambda payload: payload.__setitem__("warnings", list(texts)))


def series_of(payload: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = payload.get("data", {}).get("result", [])
    return result


def points_of(series: dict[str, Any]) -> Iterator[list[Any]]:
    yield from series.get("values") or ([series["value"]] if "value" in series else [])
