# syntax=docker/dockerfile:1
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 proxy
COPY --from=build /install /usr/local
USER proxy
ENV PYTHONUNBUFFERED=1
EXPOSE 8000
# Mount a config file here (or point PROXY_CONFIG elsewhere); without one, OPENAI_BASE_URL/OPENAI_API_KEY are used.
ENV PROXY_CONFIG=""
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["responses-proxy", "--host", "0.0.0.0", "--port", "8000"]
