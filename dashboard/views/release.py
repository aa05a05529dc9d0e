"""Release page: one release against its baseline, with the evidence; deep-linked by ?service=&version=."""

from __future__ import annotations

import streamlit as st

from dashboard import components, data

st.title("Release")
catalogue = components.unwrap(data.catalogue())
left, right = st.columns(2)
with left:
    service = components.select_param(
        "Service", "service", [s.name for s in catalogue.services], clears=("version",)
    )
if service is None:
    st.info("Choose a service, or open a release from the overview.")
    st.stop()
deploys = components.unwrap(data.deploys(service))
with right:
    version = components.select_param("Version", "version", [d.version for d in reversed(deploys)], default_first=True)
components.release(components.unwrap(data.release(service, version)), catalogue)
if st.toggle("Show every release of this service"):
    components.release_history(components.unwrap(data.releases(service)))
