"""Release page: one release against its baseline, with the evidence; deep-linked by
?service=&version=&baseline=."""

from __future__ import annotations

import time

import streamlit as st

from releasehealth.dashboard import components, data
from releasehealth.format import unknown_version_text

st.title("Release")
catalogue = components.unwrap(data.catalogue())
names = [s.name for s in catalogue.services]
left, middle, right = st.columns(3)
with left:
    service = components.select_param("Service", "service", names, clears=("version", "baseline"))
if service is None:
    st.info("Choose a service, or open a release from the overview.")
    st.stop()
if service not in names:
    components.not_found(f"No service named {service!r} is configured (known: {', '.join(names) or 'none'}).")
deploys = components.unwrap(data.deploys(service))
versions = [d.version for d in reversed(deploys)]
with middle:
    version = components.select_param("Version", "version", versions, default_first=True, clears=("baseline",))
if version is not None and version not in versions:
    components.not_found(unknown_version_text(service, version, versions, catalogue.policy.lookback) + ".")
with right:
    baseline = components.baseline_select(catalogue, deploys, version)
status, progress = components.evaluating(f"{service} {version or '(latest)'}")
started = time.perf_counter()
loaded = data.release(service, version, baseline, progress=progress)
components.evaluated(status, loaded, time.perf_counter() - started, f"Evaluated {service} {version or '(latest)'}")
evaluation = components.unwrap(loaded)
components.evaluation_steps(status, evaluation)
components.release(evaluation, catalogue)
components.service_link(service)
