# Kilde: `kilde serve` in production mode, as a non-root user, on a read-only root filesystem.
# Build: docker build -t kilde:0.1.0 .      Run: see docs/operations.md (it needs KILDE_* env).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY schema ./schema
COPY policies ./policies
COPY connectors ./connectors
COPY sandbox ./sandbox
# wheels for Kilde and its dependencies, with OpenTelemetry (used when KILDE_OTLP_ENDPOINT is set)
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[otel]"

FROM python:3.11-slim
RUN groupadd --gid 10001 kilde \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kilde
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# nothing is written at run time: no bytecode caches, logs go to stderr, /tmp is a volume
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KILDE_MODE=production \
    KILDE_HOST=0.0.0.0 \
    KILDE_PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2); sys.exit(0)"]
ENTRYPOINT ["kilde"]
CMD ["serve"]
