# The lenscast consumer image: the base dependencies only (onnxruntime, confluent-kafka, fastavro,
# SQLAlchemy, psycopg2, ...). No torch, no lenstronomy: those are the trainer's (`.[train]`).
# Secrets are never baked in: passwords arrive at run time as files (compose secrets).
#
#   docker build -t lenscast:0.1.0 .
#   docker run --rm lenscast:0.1.0 --help

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/lenscast/venv
ENV PATH=/opt/lenscast/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lenscast lenscast
COPY model model
COPY consumer consumer
COPY db db
COPY tools tools
COPY plotting plotting
COPY trainer trainer
# `.` with no extras is the consumer runtime (the trainer's and plotting's code is there, their
# packages are not: `lenscast train` says which extra it needs); the build fails if torch,
# matplotlib or tqdm ever come in with it.
RUN pip install . && ! pip show torch matplotlib tqdm > /dev/null 2>&1

FROM python:3.11.13-slim-bookworm
LABEL org.opencontainers.image.title="lenscast" \
      org.opencontainers.image.description="Streaming strong-lens modeller: Kafka alerts -> ONNX mass model -> images and time delays -> PostgreSQL"
COPY --from=build /opt/lenscast/venv /opt/lenscast/venv
COPY consumer/samples /opt/lenscast/samples
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin lenscast
ENV PATH=/opt/lenscast/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER lenscast
WORKDIR /tmp
ENTRYPOINT ["lenscast"]
CMD ["consume"]
