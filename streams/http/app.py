"""`agentmem api`: the HTTP API's app factory and launcher.

:func:`create_api` assembles the FastAPI app: the routes (:mod:`streams.http.routes`),
the error handlers (:mod:`streams.http.errors`), request metrics and ``/metrics``, and
a lifespan that starts and stops the backend the routes serve from, made by
``sdk_factory`` (by default the SDK, :class:`streams.client.sdk.AgentMem`; unit tests
pass a fake). API keys (``settings.api_keys``) decide which tenants a caller may touch.
"""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from processors.metrics import Metrics, build_metrics
from streams.client.sdk import AgentMem
from streams.http.auth import KeyRing
from streams.http.body_limit import BodyLimit
from streams.http.deps import Backend
from streams.http.errors import install_error_handlers
from streams.http.routes import router
from streams.settings import Settings

SdkFactory = Callable[[Settings], Backend]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    sdk: Backend = app.state.sdk_factory(app.state.settings)
    await sdk.start()
    app.state.sdk = sdk
    try:
        yield
    finally:
        await sdk.stop()


async def _observe(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Counts and times each request by route template, method and status."""
    metrics: Metrics = request.app.state.metrics
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    metrics.api_requests.labels(path, request.method, str(response.status_code)).inc()
    metrics.api_seconds.labels(path, request.method).observe(time.perf_counter() - started)
    return response


def create_api(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    *,
    sdk_factory: SdkFactory = AgentMem,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The API app. ``metrics`` must be registered on ``registry`` (served at /metrics);
    by default both are new."""
    registry = registry or CollectorRegistry()
    app = FastAPI(
        title="AgentMem Stream",
        version="0.1.0",
        description="Memory for AI agents: publish memories, search them, read their history.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.keyring = KeyRing.parse(settings.api_keys.get_secret_value())
    app.state.metrics = metrics or build_metrics(registry)
    app.state.sdk_factory = sdk_factory
    app.middleware("http")(_observe)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    install_error_handlers(app)
    app.include_router(router)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def run_api(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    import uvicorn

    uvicorn.run(
        create_api(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
    )
    return 0
