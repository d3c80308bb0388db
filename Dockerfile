# The `lake` image: one static-ish binary on a slim Debian.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin lake

FROM debian:bookworm-slim
# curl: the compose healthchecks ask /readyz.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/lake /usr/local/bin/lake
WORKDIR /lake
# The shipped daily SQL and checks; mount your own folder over /lake/sql to change them.
COPY sql ./sql
ENV LAKE_DIR=/lake/data
ENTRYPOINT ["lake"]
