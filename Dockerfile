# Casemate: the same install path as `make run` (a venv, `pip install .`, `casemate serve`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="" \
    CASEMATE_DATA_DIR=/var/lib/casemate \
    CASEMATE_HS_CACHE_DIR=/var/lib/casemate/hyperscan \
    CASEMATE_HOST=0.0.0.0 \
    CASEMATE_ADMIN_HOST=0.0.0.0 \
    PATH=/opt/casemate/.venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/casemate --create-home casemate

WORKDIR /opt/casemate
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY pipeline ./pipeline
COPY detectors ./detectors
COPY admin_api ./admin_api
COPY bench ./bench
COPY casemate_sdk ./casemate_sdk
COPY casemate_verify ./casemate_verify
RUN python -m venv .venv \
 && .venv/bin/pip install --no-cache-dir -U pip \
 && .venv/bin/pip install --no-cache-dir .

USER casemate
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/ready || exit 1
ENTRYPOINT ["casemate"]
CMD ["serve"]
