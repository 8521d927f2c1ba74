# syntax=docker/dockerfile:1
#
# One image for the four services (DESIGN.md §1-§3). The command selects the service:
#
#   docker build -t sensor-backend:0.1.0 .
#   docker run -e SERVICE=auth    ... sensor-backend:0.1.0 sensor-auth     # :8001
#   docker run -e SERVICE=sensor  ... sensor-backend:0.1.0 sensor-sensor   # :8002
#   docker run -e SERVICE=events  ... sensor-backend:0.1.0 sensor-events   # :8003
#   docker run                    ... sensor-backend:0.1.0                 # gateway, :8000
#   docker run --rm ... sensor-backend:0.1.0 sensor-auth-admin rotate-key  # operator command
#
# SERVICE convention: SERVICE names the service the command starts (gateway, auth, sensor,
# events; default gateway). The HEALTHCHECK reads it to find the port (<SERVICE>_PORT, else
# the service's default port), so set both together, as docker-compose.microservices.yml and
# deploy/k8s do.
#
# The wheel installed below is built from exactly the files the tests test: pyproject.toml,
# the readme it names and src/ (.dockerignore lets nothing else into the build context).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src/ ./src/
# The project's wheel and one wheel per dependency, with the `pdf` extra (WeasyPrint, for
# GET /test/{id}/report.pdf) and the `tracing` extra (OpenTelemetry SDK and OTLP/HTTP
# exporter, imported only when OTEL_* variables configure tracing). Binary wheels only:
# every dependency ships manylinux (or pure Python) wheels for CPython 3.11 on amd64 and
# arm64, so no compiler is needed, and a dependency that would need one fails the build
# here instead of pulling gcc into the image.
RUN pip wheel --no-cache-dir --only-binary=:all: --wheel-dir /wheels '.[pdf,tracing]' .


FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="sensor-backend" \
      org.opencontainers.image.description="Gateway, auth, sensor and event services (one image, the command selects the service)" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it and fsGroup matches.
RUN groupadd --system --gid 10001 sensor \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin sensor

# What WeasyPrint loads at run time (its install notes for Debian): pango with its FreeType
# backend, HarfBuzz's subsetter for the embedded fonts, and DejaVu (the report's fallback
# font: the slim image has none). Versions are the base image's Debian release's.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Installed from the builder's wheels through a bind mount: the wheels never become a layer,
# and this stage has no compiler, no source tree and no network index (--no-index). The
# wheel with its `pdf` and `tracing` extras (pip's "<wheel file>[extra]" form).
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels \
       "$(echo /wheels/sensor_backend-*.whl)[pdf,tracing]" \
    && pip check

# Containers listen on every interface (the services default to 127.0.0.1), refuse
# placeholder secrets, and keep their local state (spools, JWKS cache) under one directory
# that compose mounts named volumes on and Kubernetes mounts PVCs or emptyDirs on.
ENV SERVICE=gateway \
    SENSOR_BACKEND_ENV=production \
    LOG_JSON=true \
    GATEWAY_HOST=0.0.0.0 \
    AUTH_HOST=0.0.0.0 \
    SENSOR_HOST=0.0.0.0 \
    EVENTS_HOST=0.0.0.0 \
    GATEWAY_SPOOL_DIR=/var/lib/sensor-backend/spool/gateway \
    SENSOR_SPOOL_DIR=/var/lib/sensor-backend/spool/sensor \
    EVENTS_SPOOL_DIR=/var/lib/sensor-backend/spool/events
# Owned by the service user: a fresh named volume mounted here copies this ownership.
RUN install -d -o 10001 -g 10001 -m 0750 \
        /var/lib/sensor-backend \
        /var/lib/sensor-backend/spool \
        /var/lib/sensor-backend/spool/gateway \
        /var/lib/sensor-backend/spool/sensor \
        /var/lib/sensor-backend/spool/events
WORKDIR /var/lib/sensor-backend

USER 10001:10001
EXPOSE 8000 8001 8002 8003
# uvicorn stops gracefully on SIGTERM (lifespan shutdown hooks run; 10 s budget).
STOPSIGNAL SIGTERM
# The slim image has no curl: urllib. Any non-2xx or connection error exits non-zero.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; s = os.environ.get('SERVICE', 'gateway'); p = os.environ.get(s.upper() + '_PORT') or {'gateway': 8000, 'auth': 8001, 'sensor': 8002, 'events': 8003}[s]; urllib.request.urlopen(f'http://127.0.0.1:{p}/health', timeout=4)"]
CMD ["sensor-gateway"]
