# syntax=docker/dockerfile:1
# Container image of terway-exporter.
#   docker build -t terway-exporter .
#   docker run --rm -p 9417:9417 terway-exporter demo --listen-address=0.0.0.0:9417
# The builder stage turns the project and every dependency into wheels (it is the only stage that
# reaches PyPI); the final stage installs those wheels offline and keeps no compiler, no pip cache
# and no pip. The numeric user matches the Helm chart's runAsUser, so runAsNonRoot can verify it.

FROM python:3.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="terway-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the Terway CNI on Alibaba Cloud" \
      org.opencontainers.image.source="https://github.com/terway-exporter/terway-exporter" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are bind-mounted, not copied, so they never land in a layer of the final image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/terway_exporter-*.whl \
    && pip uninstall --yes pip setuptools wheel \
    && groupadd --system --gid 10001 terway-exporter \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin terway-exporter
USER 10001:10001
EXPOSE 9417
ENTRYPOINT ["terway-exporter"]
CMD ["serve"]
