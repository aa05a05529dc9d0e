"""Service page: the last day of one service with its deploys, and every release's verdict; ?service=."""

from __future__ import annotations

import streamlit as st

from releasehealth.dashboard import components, data

st.title("Service")
catalogue = components.unwrap(data.catalogue())
names = [s.name for s in catalogue.services]
service = components.select_param("Service", "service", names)
if service is None:
    st.info("Choose a service, or open one from the overview.")
    st.stop()
if service not in names:
    components.not_found(f"No service named {service!r} is configured (known: {', '.join(names) or 'none'}).")
components.timeline(data.timeline(service))
st.subheader("Releases")
components.release_history(components.unwrap(data.releases(service)), service)
