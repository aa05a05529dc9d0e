"""Entry point of the dashboard (`streamlit run dashboard/app.py`): page set-up, navigation, the header above every page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from releasehealth.dashboard import components, data

# A local file, and pages without icons: Streamlit makes a page's Material icon (or emoji) the tab's icon,
# fetched from fonts.gstatic.com, and the dashboard must work, and stay silent, without leaving the machine.
FAVICON = str(Path(__file__).with_name("favicon.png"))

st.set_page_config(page_title="release-health", page_icon=FAVICON, layout="wide")
page = st.navigation(
    [
        st.Page("views/overview.py", title="Overview", default=True),
        st.Page("views/service.py", title="Service"),
        st.Page("views/release.py", title="Release"),
        st.Page("views/calibration.py", title="Calibration"),
        st.Page("views/sources.py", title="Sources"),
    ],
    position="top",  # no sidebar: the width goes to the tables (at 1280 px a sidebar took a quarter of it)
)
st.set_page_config(page_title=f"{page.title} · release-health")  # the tab says which page it is
components.header(data.describe(), data.refresh)
if page.url_path != "sources":  # the Sources page shows the same, in detail
    components.source_banner(data.source_health())
page.run()
