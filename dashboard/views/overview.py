"""Overview page: the latest release of every service, riskiest first; it refreshes itself every TTL."""

from __future__ import annotations

import time
from datetime import timedelta

import streamlit as st

from releasehealth.dashboard import components, data

st.title("Fleet overview")


@st.fragment(run_every=timedelta(seconds=data.TTL_SECONDS))
def overview() -> None:
    # Re-run alone every TTL: the cached fleet has expired by then, so this asks the sources again
    # while the filters, and the rest of the page, stay as they are.
    catalogue = components.unwrap(data.catalogue())
    status, progress = components.evaluating(f"{len(catalogue.services)} services")
    team_of = {s.name: s.team for s in catalogue.services}
    started = time.perf_counter()
    pending = st.empty()  # the releases, while they are judged (only when the fleet is not cached)
    loaded = data.fleet(progress, components.show_pending(pending, team_of))
    pending.empty()
    components.evaluated(status, loaded, time.perf_counter() - started, f"Evaluated {len(catalogue.services)} services")
    evaluations = components.unwrap(loaded)
    components.action_counts(evaluations)
    shown = components.overview_filters(evaluations, team_of)
    components.fleet_table(shown, team_of)
    components.attention_links(shown)
    components.release_picker(shown)


overview()
