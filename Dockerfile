# The release-health app: CLI, API (release-health serve), dashboard (release-health dashboard) and the
# live demo fleet (release-health simulate --serve). docker-compose.yml runs each with its own command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY releasehealth ./releasehealth
COPY collectors ./collectors
COPY queries ./queries
COPY scoring ./scoring
COPY dashboard ./dashboard
COPY simulator ./simulator
RUN pip install . \
    && useradd --create-home --uid 10001 app \
    && mkdir -p /data \
    && chown app:app /data

# The history store (SQLite) lives here; compose mounts a named volume on it.
VOLUME ["/data"]
USER app
WORKDIR /home/app

CMD ["release-health", "--help"]
