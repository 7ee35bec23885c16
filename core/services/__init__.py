"""Use cases: one function each — gather inputs, call the pure logic, persist, return."""

from core.db.tables import MAX_ROW_ID

# The largest id a row can have: whatever takes an id from outside (the API, the CLI) refuses one
# beyond it, as a bad argument, instead of letting the database driver overflow.
__all__ = ["MAX_ROW_ID"]
