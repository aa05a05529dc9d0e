"""The Streamlit dashboard: fleet overview, release evidence and source health (run with `release-health demo`)."""
