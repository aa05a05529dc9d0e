"""Overview page: the latest release of every service, riskiest first."""

from __future__ import annotations

import streamlit as st

from dashboard import components, data

st.title("Fleet overview")
evaluations = components.unwrap(data.fleet())
components.action_counts(evaluations)
components.fleet_table(evaluations)
components.release_picker(evaluations)
