"""Heron's console: the router. Pages live in ui/views/ (not pages/: that folder name makes
Streamlit serve a page on its own, without this router, to a first visitor at its address)."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run ui/app.py` puts ui/ (not the repository) on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st

from ui.state import identity_sidebar

st.set_page_config(page_title="Heron", page_icon="🪶", layout="wide")
user = identity_sidebar()
pages = [
    st.Page("views/classify.py", title="Classify", icon="📄", default=True),
    st.Page("views/review.py", title="Review", icon="🔍"),
]
if user.can("reviewer"):
    pages += [
        st.Page("views/approvals.py", title="Approvals", icon="✅"),
        st.Page("views/industries.py", title="Industries", icon="🏷️"),
    ]
pages += [
    st.Page("views/models.py", title="Models", icon="📈"),
    st.Page("views/activity.py", title="Activity", icon="🕑"),
]
st.navigation(pages).run()
