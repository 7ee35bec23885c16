"""What several controllers share: database ids as path parameters, paging bounds."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter, QueryParameter

from core.services import MAX_ROW_ID

# Database ids: anything outside their columns is a 422 here, not an overflow in the driver.
RowId = Annotated[int, Parameter(ge=1, le=MAX_ROW_ID)]
# Paging of every list: checked by Litestar (a 422 naming the parameter) and shown in the OpenAPI docs.
Limit = Annotated[int, Parameter(ge=1, le=1000, description="How many items (1–1000).")]
Offset = Annotated[int, Parameter(ge=0, le=10**9, description="How many items to skip.")]
# Job ids a caller skipped, left out of the review queue (``?exclude=ID&exclude=ID``).
Exclude = Annotated[
    list[str] | None, QueryParameter(max_items=1000, description="Job ids to leave out (skipped items).")
]
