# syntax=docker/dockerfile:1
# One image for every imu-har service; docker-compose.yml picks the command
# (har gateway / windower / classifier / recorder / dashboard / train ...).
FROM python:3.11-slim

# Which extras to install: "all" (every service and training, with TensorFlow,
# and "phone": the phone gateway's HTTP servers and certificate) or e.g.
# "gateway,phone,classifier,recorder,dashboard" for a smaller runtime image.
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
# A fresh named volume takes the owner of its mount point: /phone (the phone
# gateway's token and certificate, docker-compose.yml) must be the har user's.
RUN mkdir -p /data /models /phone \
 && chown har:har /data /models /phone

USER har
VOLUME ["/data", "/models"]
# dashboard; phone page and push over HTTPS; Sensor Logger push over HTTP
EXPOSE 8501 8765 8766
CMD ["har", "--help"]
