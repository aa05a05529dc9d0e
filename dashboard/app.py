"""Entry point of the dashboard (`streamlit run dashboard/app.py`): page set-up, navigation, sidebar."""

from __future__ import annotations

import streamlit as st

from releasehealth.dashboard import components, data

st.set_page_config(page_title="release-health", page_icon=":material/monitor_heart:", layout="wide")
page = st.navigation(
    [
        st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("views/service.py", title="Service", icon=":material/timeline:"),
        st.Page("views/release.py", title="Release", icon=":material/difference:"),
        st.Page("views/sources.py", title="Sources", icon=":material/dns:"),
    ]
)
components.sidebar(data.describe(), data.refresh)
if page.url_path != "sources":  # the Sources page shows the same, in detail
    components.source_banner(data.source_health())
page.run()
