# ALUSKORT: one binary for every role (serve, serve --api-only, worker --stage ...).
# Multi-stage: built with the Kafka bus and the Redis and PostgreSQL backends, run as a non-root user
# on a slim base. Build from the repository root:  docker build -t aluskort .
FROM rust:1.95-bookworm AS build
# librdkafka is built from source by rdkafka's cmake-build (DEPENDENCIES.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --profile production --locked -p aluskort --features kafka \
 && strip target/production/aluskort

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/aluskort --create-home aluskort
COPY --from=build /src/target/production/aluskort /usr/local/bin/aluskort
COPY config/aluskort.example.toml /usr/share/aluskort/aluskort.example.toml
USER 10001:10001
WORKDIR /var/lib/aluskort
# Embedded state (the vector index of incident memory, playbook overrides) lives here; the case store,
# the bus and Redis are the servers the configuration names.
ENV ALUSKORT_CONFIG=/etc/aluskort/aluskort.toml
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/aluskort", "--data-dir", "/var/lib/aluskort"]
# Inside a container the API must listen beyond loopback; publish the port deliberately (see compose).
CMD ["serve", "--listen", "0.0.0.0:8080"]
