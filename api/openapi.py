"""OpenAPI details Litestar cannot infer: routes that accept more than one body format."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

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
