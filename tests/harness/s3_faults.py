"""An S3 fault proxy: forwards path-style S3 requests to an upstream server (moto) and fails a seeded share of them.

    python -m harness.s3_faults --upstream http://127.0.0.1:PORT --port P [--ready-file F]

Between the workers and moto, it answers a chosen share of requests the way S3 fails in production: 503 SlowDown,
500 InternalError, a reset connection (before or after the request reached the store: the lost-answer case) or a
slow answer. Which request fails is drawn from ``random.Random(seed)``, one draw per request, so one request order
gives the same faults every time.

The admin API shares the port, under ``/_fault_proxy/`` (``_`` is never in a bucket name, so no bucket clashes):

* ``PUT /_fault_proxy/faults`` ``{"seed": 7, "rules": [{"kind": "slowdown", "probability": 0.1,
  "operations": ["PutObject"]}, {"kind": "slow", "probability": 0.05, "delay": 2.0}]}``; ``DELETE`` clears them.
* ``GET /_fault_proxy/stats``: requests, by operation, faults by kind and by operation;
  ``POST /_fault_proxy/stats/reset`` zeroes them.

Standard library only (ThreadingHTTPServer, http.client): the test processes need nothing installed for it, and a
proxy that must reset a TCP connection at a chosen moment wants the socket in hand, which a framework hides.
Request bodies are read whole before anything is decided (a fault must know the request was received in full;
50 MB bodies fit in memory on a test machine); answers are streamed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import struct
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ADMIN_PREFIX = "/_fault_proxy/"
KINDS = ("slowdown", "internal", "reset", "reset_after", "slow")
OPERATIONS = (
    "PutObject",
    "UploadPart",
    "CreateMultipartUpload",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "CopyObject",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "DeleteObjects",
    "ListObjects",
    "HeadBucket",
    "Other",
)
# Connection-level headers are the proxy's own on each side; everything else passes through unchanged.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding"}
# The chunked framing of a request body is forwarded as received, so its Transfer-Encoding goes too. Expect:
# 100-continue was answered here already (the body is read before anything is forwarded); SigV4 never signs it.
NOT_FORWARDED = (HOP_BY_HOP - {"transfer-encoding"}) | {"expect"}
ERROR_BODIES = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}


def classify(method: str, target: str, headers: Any) -> str:
    """The S3 operation of a path-style request, from its method, query and headers."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    bucket, _, key = parts.path.lstrip("/").partition("/")
    if not bucket:
        return "Other"  # ListBuckets
    if method == "PUT" and key:
        if "uploadId" in query and "partNumber" in query:
            return "UploadPart"
        return "CopyObject" if headers.get("x-amz-copy-source") else "PutObject"
    if method == "POST" and key:
        if "uploads" in query:
            return "CreateMultipartUpload"
        return "CompleteMultipartUpload" if "uploadId" in query else "Other"
    if method == "POST":
        return "DeleteObjects" if "delete" in query else "Other"
    if method == "DELETE" and key:
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "GET" and key:
        return "Other" if "uploadId" in query else "GetObject"  # ListParts is not a read of the data
    if method == "GET":
        return "Other" if set(query) & {"uploads", "location", "versioning", "policy", "acl"} else "ListObjects"
    if method == "HEAD":
        return "HeadObject" if key else "HeadBucket"
    return "Other"


@dataclass(frozen=True)
class Rule:
    kind: str
    probability: float
    operations: frozenset[str] | None = None
    delay: float = 0.0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Rule:
        kind, probability = raw["kind"], float(raw["probability"])
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (one of {', '.join(KINDS)})")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability} is not in [0, 1]")
        operations = raw.get("operations")
        unknown = set(operations or ()) - set(OPERATIONS)
        if unknown:
            raise ValueError(f"unknown operations {sorted(unknown)} (known: {', '.join(OPERATIONS)})")
        return cls(kind, probability, frozenset(operations) if operations else None, float(raw.get("delay", 0.0)))

    def applies_to(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations


class FaultPlan:
    """The rules and the seeded generator; the counters. Shared by the handler threads, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: list[Rule] = []
        self.random = random.Random(0)
        self.reset_stats()

    def configure(self, seed: int, rules: list[Rule]) -> None:
        with self.lock:
            self.random, self.rules = random.Random(seed), rules

    def reset_stats(self) -> None:
        self.requests = 0
        self.by_operation: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.faults_by_operation: defaultdict[str, Counter[str]] = defaultdict(Counter)
        # The requests that failed (method and target): the same request seen again is the client's retry.
        self.failed: set[tuple[str, str]] = set()
        self.retried = 0

    def draw(self, operation: str, request: tuple[str, str]) -> Rule | None:
        """The fault for ``request`` (method, target), if any: one draw, walked over the matching rules'
        cumulative shares, so the faults depend only on the seed and the order of the requests."""
        with self.lock:
            self.requests += 1
            self.by_operation[operation] += 1
            if request in self.failed:
                self.failed.discard(request)
                self.retried += 1
            if not self.rules:
                return None
            draw, cumulative = self.random.random(), 0.0
            for rule in self.rules:
                if rule.applies_to(operation):
                    cumulative += rule.probability
                    if draw < cumulative:
                        self.faults[rule.kind] += 1
                        self.faults_by_operation[operation][rule.kind] += 1
                        if rule.kind != "slow":
                            self.failed.add(request)
                        return rule
            return None

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "by_operation": dict(self.by_operation),
                "faults": dict(self.faults),
                "faults_by_operation": {op: dict(kinds) for op, kinds in self.faults_by_operation.items()},
                "retried": self.retried,
            }


class FaultProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many workers' connection pools at once: a short accept queue would refuse connections, a fault nobody asked for.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], upstream: str):
        super().__init__(address, ProxyHandler)
        split = urlsplit(upstream)
        self.upstream = (split.hostname or "127.0.0.1", split.port or 80)
        self.plan = FaultPlan()


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the S3 clients' pools expect
    server: FaultProxyServer
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would flood the log; the stats say what happened

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _handle(self) -> None:
        body = self._read_body()
        if self.path.startswith(ADMIN_PREFIX):
            self._admin(body)
            return
        operation = classify(self.command, self.path, self.headers)
        rule = self.server.plan.draw(operation, (self.command, self.path))
        kind = rule.kind if rule else None
        if kind in ERROR_BODIES:
            self._send_error_xml(*ERROR_BODIES[kind])
        elif kind == "reset":
            self._reset()
        elif kind == "reset_after":
            response = self._forward(body)
            while response.read(1024 * 1024):  # the write takes effect upstream; its answer is lost
                pass
            self._reset()
        else:
            if kind == "slow" and rule is not None:
                time.sleep(rule.delay)
            self._relay(self._forward(body))

    # --- the request ------------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        """The request body as received: chunked bodies keep their framing (forwarded byte for byte)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raw = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                raw += size_line
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the empty line
                        line = self.rfile.readline(65537)
                        raw += line
                        if line in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += self.rfile.read(size + 2)  # the chunk and its CRLF
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes) -> http.client.HTTPResponse:
        """Send the request upstream on this thread's keep-alive connection (a fresh one if the kept one died)."""
        for attempt in (1, 2):
            connection = self._upstream_connection(fresh=attempt == 2)
            try:
                # The client's own Host header goes through: it is part of what SigV4 signed.
                connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in NOT_FORWARDED:
                        connection.putheader(name, value)
                connection.endheaders(body or None)
                response = connection.getresponse()
            except (ConnectionError, http.client.HTTPException, OSError):
                connection.close()
                if attempt == 2:
                    raise
                continue
            return response
        raise AssertionError("unreachable")

    def _upstream_connection(self, fresh: bool) -> http.client.HTTPConnection:
        if fresh or self._upstream is None:
            if self._upstream is not None:
                self._upstream.close()
            self._upstream = http.client.HTTPConnection(*self.server.upstream, timeout=300)
        return self._upstream

    # --- the answer ------------------------------------------------------------------------------------------

    def _relay(self, response: http.client.HTTPResponse) -> None:
        """Stream the upstream answer back: with its length when it gave one, else re-chunked."""
        status = response.status
        self.send_response_only(status, response.reason)
        length = None
        for name, value in response.getheaders():
            if name.lower() == "content-length":
                length = value
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        chunked = length is None and self.command != "HEAD" and status not in (204, 304)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command != "HEAD":
            while block := response.read1(1024 * 1024):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        response.close()
        if response.will_close and self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def _send_error_xml(self, status: int, code: str, message: str) -> None:
        request_id = f"{random.getrandbits(64):016X}"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{urlsplit(self.path).path}</Resource><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", request_id)
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        """Drop the connection with a TCP RST (linger 0), not a clean close: the client sees 'connection reset'."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the buffered files hold the socket open: close them, then the socket really closes
        self.wfile.close()
        self.connection.close()
        self.close_connection = True

    def finish(self) -> None:
        if not self.wfile.closed:
            super().finish()
        if self._upstream is not None:
            self._upstream.close()

    # --- the admin API ----------------------------------------------------------------------------------------

    def _admin(self, body: bytes) -> None:
        route = (self.command, urlsplit(self.path).path.removeprefix(ADMIN_PREFIX).rstrip("/"))
        plan = self.server.plan
        try:
            if route == ("PUT", "faults"):
                payload = json.loads(body or b"{}")
                rules = [Rule.parse(rule) for rule in payload.get("rules", [])]
                plan.configure(int(payload.get("seed", 0)), rules)
                self._send_json(200, {"seed": payload.get("seed", 0), "rules": len(rules)})
            elif route == ("DELETE", "faults"):
                plan.configure(0, [])
                self._send_json(200, {"rules": 0})
            elif route == ("GET", "stats"):
                self._send_json(200, plan.stats())
            elif route == ("POST", "stats/reset"):
                with plan.lock:
                    plan.reset_stats()
                self._send_json(200, plan.stats())
            else:
                self._send_json(404, {"error": f"no admin route {route[0]} {route[1]}"})
        except (ValueError, KeyError, TypeError) as error:
            self._send_json(400, {"error": str(error)})

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the S3 server, e.g. http://127.0.0.1:5000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-file", type=Path, help="written once the proxy listens")
    args = parser.parse_args(argv)
    server = FaultProxyServer((args.host, args.port), args.upstream)
    if args.ready_file:
        args.ready_file.write_text(f"{args.host}:{server.server_address[1]}\n")
    print(f"S3 fault proxy on {args.host}:{server.server_address[1]} -> {args.upstream}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
