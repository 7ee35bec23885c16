"""Heron's console: the router. Pages live in ui/pages/."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run ui/app.py` puts ui/ (not the repository) on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st

st.set_page_config(page_title="Heron", page_icon="🪶", layout="wide")
pages = [st.Page("pages/classify.py", title="Classify", icon="📄", default=True)]
st.navigation(pages).run()
