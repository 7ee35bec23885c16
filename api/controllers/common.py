"""What several controllers share: database ids as path parameters, paging bounds."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

from core.errors import Invalid

# Database ids: anything outside a 63-bit integer is a 422 here, not an overflow in the driver.
RowId = Annotated[int, Parameter(ge=1, le=2**63 - 1)]
MAX_OFFSET = 10**9


def paging(limit: int, offset: int) -> dict[str, int]:
    if not 1 <= limit <= 1000 or not 0 <= offset <= MAX_OFFSET:
        raise Invalid(f"limit must be 1–1000 and offset ≥ 0 (got limit={limit}, offset={offset}).")
    return {"limit": limit, "offset": offset}
