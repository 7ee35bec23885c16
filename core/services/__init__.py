"""Use cases: one function each — gather inputs, call the pure logic, persist, return."""
