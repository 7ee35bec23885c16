"""Heron's console: the router. Pages live in ui/pages/."""

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
    st.Page("pages/classify.py", title="Classify", icon="📄", default=True),
    st.Page("pages/review.py", title="Review", icon="🔍"),
]
if user.can("reviewer"):
    pages += [
        st.Page("pages/approvals.py", title="Approvals", icon="✅"),
        st.Page("pages/industries.py", title="Industries", icon="🏷️"),
    ]
pages += [
    st.Page("pages/models.py", title="Models", icon="📈"),
    st.Page("pages/activity.py", title="Activity", icon="🕑"),
]
st.navigation(pages).run()
