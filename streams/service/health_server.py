"""The worker's HTTP endpoint: ``/metrics``, ``/healthz`` (liveness) and ``/readyz``
(readiness), from a daemon thread so that a busy or blocked event loop still answers
(and a blocked one shows up as not live).

``/healthz`` and ``/readyz`` answer 200 or 503 with a JSON body that names each
problem; an orchestrator restarts on liveness and routes or waits on readiness.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from processors.core.health import Health, Verdict
from processors.metrics import Metrics

log = logging.getLogger(__name__)


def _handler(registry: CollectorRegistry, health: Health, metrics: Metrics) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/healthz", "/readyz"):
                verdict = health.liveness() if path == "/healthz" else health.readiness()
                self._verdict("live" if path == "/healthz" else "ready", verdict)
            elif path in ("/metrics", "/"):
                metrics.worker_health.labels("live").set(1 if health.liveness().ok else 0)
                metrics.worker_health.labels("ready").set(1 if health.readiness().ok else 0)
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            else:
                self._send(404, "text/plain", b"not found: /metrics, /healthz, /readyz\n")

        def _verdict(self, check: str, verdict: Verdict) -> None:
            body = {"status": "ok" if verdict.ok else f"not {check}", "problems": verdict.problems}
            self._send(200 if verdict.ok else 503, "application/json", json.dumps(body).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per scrape would drown the worker's log

    return Handler


def start_health_server(
    host: str, port: int, registry: CollectorRegistry, health: Health, metrics: Metrics
) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler(registry, health, metrics))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    return server
