# syntax=docker/dockerfile:1
# Build: docker build -t responses-proxy .
# Run:   docker run -p 8000:8000 -e OPENAI_API_KEY=sk-... -e PROXY_API_KEYS=team-key -v responses:/data responses-proxy
# Config: mount a file at /config/config.yaml (the default PROXY_CONFIG); without one, the example config
# shipped there reads OPENAI_BASE_URL, OPENAI_API_KEY, PROXY_API_KEYS and PORT from the environment.
# Stored responses (POST /v1/responses served through chat): an SQLite file on /data (PROXY_RESPONSE_STORE); a
# volume mounted there keeps them across containers.

FROM python:3.12-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
# The pinned versions CI tests and audits, in a layer of their own that a code change does not rebuild.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . && /opt/venv/bin/pip check

FROM python:3.12-slim
# The user, and /data owned by it: a new named volume mounted there takes that owner, so the user can write it.
RUN useradd --create-home --uid 10001 proxy && mkdir /data && chown proxy:proxy /data
COPY --from=build /opt/venv /opt/venv
COPY config.example.yaml /config/config.yaml
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PORT=8000 \
    PROXY_CONFIG=/config/config.yaml \
    PROXY_RESPONSE_STORE=sqlite:///data/responses.db
VOLUME /data
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
# Flags after the image name are appended, e.g. `--workers 4` or `--log-level debug`.
ENTRYPOINT ["responses-proxy", "--host", "0.0.0.0"]
