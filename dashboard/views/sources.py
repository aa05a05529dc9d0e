"""Sources page: whether each data source answers, how fast, and its last error."""

from __future__ import annotations

import streamlit as st

from releasehealth.dashboard import components, data

st.title("Sources")
components.source_health(components.unwrap(data.source_health()))
components.watch_section(data.watch_state())
