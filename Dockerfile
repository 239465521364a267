# dockyard registry image.
#   docker build -t dockyard .
#   docker run -p 5000:5000 -v dockyard-data:/var/lib/dockyard dockyard
# One node: SQLite and blobs in /var/lib/dockyard. Several nodes: see examples/compose.yaml and
# docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DOCKYARD_DATA_DIR=/var/lib/dockyard

RUN groupadd --system --gid 10001 dockyard \
 && useradd --system --uid 10001 --gid dockyard --home-dir /var/lib/dockyard --shell /usr/sbin/nologin dockyard \
 && mkdir -p /var/lib/dockyard/storage \
 && chown -R dockyard:dockyard /var/lib/dockyard

WORKDIR /opt/dockyard
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && rm -rf /opt/dockyard/src /opt/dockyard/build

USER dockyard
WORKDIR /var/lib/dockyard
VOLUME /var/lib/dockyard
EXPOSE 5000

# SIGTERM lets requests in flight finish (server.graceful_timeout, default 30 s): stop with a
# longer timeout, e.g. `docker stop -t 45`.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=4)"]

CMD ["dockyard", "serve", "--host", "0.0.0.0", "--data-dir", "/var/lib/dockyard"]
