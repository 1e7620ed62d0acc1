# syntax=docker/dockerfile:1
# One image for every imu-har service; docker-compose.yml picks the command
# (har gateway / windower / classifier / recorder / dashboard / train ...).
FROM python:3.11-slim

# Which extras to install: "all" (every service and training, with TensorFlow)
# or e.g. "gateway,classifier,recorder,dashboard" for a smaller runtime image.
ARG EXTRAS=all
ARG UID=10001
ARG GID=10001

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HAR_MQTT_HOST=mosquitto

RUN groupadd --system --gid "${GID}" har \
 && useradd --system --uid "${UID}" --gid har --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin har

WORKDIR /app
# Dependencies first (pinned by constraints.txt), so code changes rebuild fast.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p imu_har services training \
 && touch imu_har/__init__.py services/__init__.py training/__init__.py \
 && pip install -c constraints.txt ".[${EXTRAS}]" \
 && pip uninstall -y imu-har

COPY imu_har ./imu_har
COPY services ./services
COPY training ./training
RUN pip install --no-deps -c constraints.txt ".[${EXTRAS}]" \
 && rm -rf build ./*.egg-info

COPY models ./models
COPY deploy/healthcheck.py ./deploy/healthcheck.py
RUN mkdir -p /data /models \
 && chown har:har /data /models

USER har
VOLUME ["/data", "/models"]
EXPOSE 8501
CMD ["har", "--help"]
