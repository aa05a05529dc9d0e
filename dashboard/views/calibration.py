"""Calibration page: the stored backtests (release-health backtest): the false-alarm rate each configuration
measured on the team's own history, the tolerance each metric needs, the incidents it caught."""

from __future__ import annotations

import streamlit as st

from releasehealth.dashboard import components, data

st.title("Calibration")
components.calibration(data.backtests(), st.query_params.get("backtest"))
