"""OpenAPI details Litestar cannot infer: routes that accept more than one body format, and how
to send a key (the role each guarded route needs)."""

from __future__ import annotations

from dataclasses import dataclass
from inspect import cleandoc

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.utils.helpers import unwrap_partial

from api.auth import required_role

_INDUSTRY_FIELDS = {
    "industry_name": Schema(type=OpenAPIType.STRING, min_length=1, max_length=100),
    "description": Schema(type=OpenAPIType.STRING, max_length=5000),
    "num_synthetic_documents": Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=1000),
}


@dataclass
class IndustryCreateOperation(Operation):
    """``POST /api/industries/`` takes JSON, or a multipart form that adds example ``files``."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT, properties=_INDUSTRY_FIELDS, required=["industry_name"]
                    )
                ),
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties={
                            **_INDUSTRY_FIELDS,
                            "files": Schema(
                                type=OpenAPIType.ARRAY,
                                items=Schema(type=OpenAPIType.STRING, format="binary"),  # type: ignore[arg-type]
                            ),
                        },
                        required=["industry_name"],
                    )
                ),
            },
        )


# How a key is sent (api.auth.presented_key): either scheme is enough.
SECURITY_SCHEMES = {
    "bearer": SecurityScheme(type="http", scheme="bearer", description="Authorization: Bearer KEY"),
    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
}
EITHER_KEY = [{"bearer": []}, {"apiKey": []}]
COMPONENTS = Components(security_schemes=SECURITY_SCHEMES)


def document_security(app: Litestar) -> None:
    """Name the key and the role each guarded route needs, so that generated clients send a key and
    the interactive docs offer "Authorize". Open routes (/health, /ready) stay open. Without
    ``HERON_API_KEYS`` every local caller is an admin, and the key is not asked for."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            role = required_role(handler)
            if role is None:
                continue
            handler.security = EITHER_KEY
            needs = f"Needs the {role} role or higher (when API keys are configured)."
            told = handler.description or cleandoc(unwrap_partial(handler.fn).__doc__ or "")
            handler.description = f"{told}\n\n{needs}" if told else needs
