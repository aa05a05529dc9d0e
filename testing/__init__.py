"""The real-server harness shared by tests/ and benchmarks/: Prometheus, noida-db, PostgreSQL, Streamlit
and the browser, started on loopback and stopped by PID; and the example configuration pointed at them.
Not part of the installed product: it is imported from the repository's root."""
