# syntax=docker/dockerfile:1.7
# One image for every photcal service. The service is the module run by
# `python -m`: the Kubernetes manifests pass it as the container's args, e.g.
#   docker run --rm -p 8080:8080 photcal:0.1.0 services.ingest
#   docker run --rm photcal:0.1.0 services.calibrate
# Pinned base (exact patch release and Debian suite, never `latest`); bump it
# deliberately, together with the tag used in deploy/k8s.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- build: resolve and install the pinned dependencies into a venv ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# README* matches nothing when the file is absent; pyproject.toml always matches
COPY pyproject.toml README* ./
COPY shared ./shared
COPY services ./services
COPY photcal_cli ./photcal_cli
COPY requirements.lock ./
# no extras and no tools/: the embedded servers, the simulator and the linters
# are development only ([dev], [test], [bench] in pyproject.toml)
RUN pip install --upgrade pip \
 && pip install -c requirements.lock . \
 && python -c "import services.ingest.app, services.calibrate.app, services.catalog.app, services.lightcurve.app, services.intake.app"

# ---- runtime: the venv only, no compilers, no sources, not root --------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="photcal" \
      org.opencontainers.image.description="Photometric calibration server (ingest, calibrate, photometry, catalog, lightcurve, notify)" \
      org.opencontainers.image.licenses="BSD-3-Clause"
# plate solving of uploaded frames (services/photometry/imaging/astrometry.py): astrometry.net's
# solve-field and the Tycho-2 index files for fields from 22' to 2000' (about 290 MB)
RUN apt-get update \
 && apt-get install -y --no-install-recommends astrometry.net astrometry-data-tycho2-07 \
    astrometry-data-tycho2-08 astrometry-data-tycho2-09 astrometry-data-tycho2-10-19 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 photcal \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/photcal --create-home \
            --shell /usr/sbin/nologin photcal \
 && mkdir -p /data \
 && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/photcal \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    PHOTCAL_HTTP_HOST=0.0.0.0 \
    PHOTCAL_DATA_DIR=/data
WORKDIR /home/photcal
USER 10001:10001
# gateway, calibrate, catalog, lightcurve (each serves /healthz /readyz /metrics)
EXPOSE 8080 8081 8082 8083
ENTRYPOINT ["python", "-m"]
CMD ["services.ingest"]
