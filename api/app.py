"""The Litestar application factory."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from api.controllers import (
    ExamplesController,
    FeedbackController,
    IndustriesController,
    JobsController,
    ModelsController,
    TasksController,
    TrainingController,
    audit_trail,
    export,
    health,
    health_head,
    metrics,
    ready,
)
from api.errors import EXCEPTION_HANDLERS, document_errors
from api.openapi import COMPONENTS, document_security
from core.runtime import Runtime, open_runtime
from core.services import similar
from core.settings import Settings, get_settings
from workers import dispatch

log = logging.getLogger(__name__)
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def provide_runtime(state: State) -> Runtime:
    return state.runtime


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Litestar:
    """Build the API. Pass ``runtime`` to share one (tests); otherwise it is opened at start-up."""
    settings = settings or (runtime.settings if runtime else get_settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or open_runtime(settings)
        # Beside a worker process (`heron up`), send it the work; otherwise run workers here.
        dispatch.connect_beside_workers(app.state.runtime)
        similar.warm_up(app.state.runtime.engine)
        try:
            yield
        finally:
            if owned:
                dispatch.stop()
                app.state.runtime.close()

    app = Litestar(
        route_handlers=[
            JobsController,
            FeedbackController,
            IndustriesController,
            ModelsController,
            TasksController,
            TrainingController,
            ExamplesController,
            export,
            audit_trail,
            health,
            health_head,
            metrics,
            ready,
        ],
        lifespan=[lifespan],
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,  # the process's logging (text or JSON, see core.logs) stays as configured
        request_max_body_size=settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
        openapi_config=OpenAPIConfig(
            title="Heron",
            version="0.1.0",
            description="Classify documents into industries, with people in the loop.",
            path="/docs",
            render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin(path="/scalar")],
            components=COMPONENTS,
        ),
    )
    document_errors(app)
    document_security(app)
    return app
