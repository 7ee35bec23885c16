"""Process-wide resources for the console: one runtime and one connection to the queue."""

from __future__ import annotations

import streamlit as st

from core.runtime import Runtime, open_runtime
from core.settings import get_settings
from workers import dispatch


@st.cache_resource(show_spinner="Preparing Heron (first start trains the starter model)…")
def runtime() -> Runtime:
    opened = open_runtime(get_settings())
    dispatch.start(opened)
    return opened
