"""Module the ``dramatiq`` CLI loads in each worker process: broker first, then the actors."""

from __future__ import annotations

from core.logs import configure_logging
from core.settings import get_settings
from workers.broker import install_broker

settings = get_settings()
configure_logging(settings.log_level, settings.log_format)
broker = install_broker(settings)

import workers.actors  # noqa: E402,F401  (actors register on the broker installed above)
from workers import context, dispatch  # noqa: E402

# The database is the source of truth: re-send jobs and tasks whose message the broker lost (a
# Redis restart, say) or whose worker died. Every worker process runs a sweeper thread; the
# "sweeper" lease lets one of them work at a time.
dispatch.start_sweeper(context.runtime)
# Before this process takes its first message (the Dramatiq CLI starts consuming once this import ends).
dispatch.warm_up(context.runtime)
