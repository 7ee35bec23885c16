"""Module the ``dramatiq`` CLI loads in each worker process: broker first, then the actors."""

from __future__ import annotations

from core.settings import get_settings
from workers.broker import install_broker

broker = install_broker(get_settings())

import workers.actors  # noqa: E402,F401  (actors register on the broker installed above)
