"""Log output for every Heron process: readable lines, or one JSON object per line for collectors."""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter


def json_formatter() -> logging.Formatter:
    """``{"time", "level", "logger", "message", "process", "thread", …extra fields such as job_id}``,
    plus ``"exc_info"`` with the traceback when there is one (python-json-logger)."""
    return JsonFormatter(
        "{levelname}{name}{message}{process}{threadName}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger", "threadName": "thread"},
        timestamp="time",  # ISO 8601, UTC
    )


def configure_logging(level: str, fmt: str) -> None:
    """Send every logger (uvicorn's and Dramatiq's included) to stderr in ``fmt`` (text or json)."""
    handler = logging.StreamHandler()
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(json_formatter() if fmt == "json" else text)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
