# syntax=docker/dockerfile:1
# The orchestrator's image: `offerhub api`, `offerhub worker`, `offerhub migrate`, `offerhub
# sandbox run` (docker-compose.yml). Runtime dependencies only, at the versions of
# requirements.lock; the embedded PostgreSQL/Redis/Temporal binaries (the `embedded` extra of
# `make dev` and the tests) are not installed. Python 3.11, as the lock was resolved with.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/offerhub
WORKDIR /src
COPY requirements.lock pyproject.toml settings.py worker.py ./
COPY activities activities
COPY api api
COPY cli cli
COPY migrations migrations
COPY models models
COPY offerhub_sdk offerhub_sdk
COPY providers providers
COPY sandbox sandbox
COPY workflows workflows
RUN /opt/offerhub/bin/pip install -c requirements.lock . \
    && /opt/offerhub/bin/pip check

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 offerhub \
    && useradd --system --uid 10001 --gid offerhub --home-dir /app --create-home --shell /usr/sbin/nologin offerhub
COPY --from=build /opt/offerhub /opt/offerhub
ENV PATH=/opt/offerhub/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    API_HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
EXPOSE 4000
CMD ["offerhub", "api"]
