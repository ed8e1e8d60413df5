# The leadtime operator image: `docker build -t leadtime/operator:0.1.0 .`
# Two stages: the first builds a virtualenv with pinned dependencies, the second copies only that
# virtualenv onto a slim base and runs as an unprivileged user with no shell tools added.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/leadtime
ENV PATH=/opt/leadtime/bin:$PATH
WORKDIR /src
# Runtime dependencies and everything they pull in, pinned to the versions the test suite runs
# with. Installed before the source is copied so that a code change does not re-download them.
RUN pip install --no-deps \
      "aiohappyeyeballs==2.7.1" \
      "aiohttp==3.14.5" \
      "aiohttp-retry==2.9.1" \
      "aiosignal==1.4.0" \
      "annotated-types==0.7.0" \
      "attrs==26.1.0" \
      "certifi==2026.5.20" \
      "charset-normalizer==3.4.7" \
      "click==8.4.0" \
      "dateparser==1.5.0" \
      "durationpy==0.11" \
      "frozenlist==1.8.0" \
      "idna==3.13" \
      "iso8601==2.1.0" \
      "jsonpatch==1.33" \
      "jsonpointer==3.1.1" \
      "kopf==1.45.2" \
      "kubernetes==37.0.2" \
      "multidict==7.2.1" \
      "numpy==2.4.6" \
      "oauthlib==4.0.1" \
      "prometheus-api-client==0.7.2" \
      "prometheus-client==0.26.0" \
      "propcache==0.5.4" \
      "pydantic==2.14.3" \
      "pydantic-core==2.50.4" \
      "python-dateutil==4.0.0" \
      "python-json-logger==4.2.0" \
      "pytz==2026.6" \
      "PyYAML==6.0.3" \
      "regex==2026.5.9" \
      "requests==2.34.2" \
      "requests-oauthlib==2.0.0" \
      "typing-extensions==4.16.0" \
      "typing-inspection==0.4.5" \
      "tzdata==2026.6" \
      "tzlocal==5.4.5" \
      "urllib3==2.8.0" \
      "websocket-client==1.9.2" \
      "yarl==1.25.1"
COPY pyproject.toml README.md ./
COPY operator ./operator
# --no-deps: everything above is pinned; the project must not pull in anything newer. `pip check`
# fails the build if the pinned set is incomplete.
RUN pip install --no-deps . && pip check

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="leadtime" \
      org.opencontainers.image.description="Kubernetes operator that autoscales GPU model-serving replicas ahead of demand" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/leadtime/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=build /opt/leadtime /opt/leadtime
# A numeric UID so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["leadtime"]
CMD ["run"]
