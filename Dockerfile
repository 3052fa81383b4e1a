# syntax=docker/dockerfile:1
#
# portrait-bot: a small runtime image with the release binary as its entrypoint.
#
#   docker build -t portrait-bot .
#   docker run --rm -e DISCORD_TOKEN=… -v portrait-data:/data portrait-bot          # the bot
#   docker run --rm -v portrait-data:/data portrait-bot check                       # any subcommand
#
# Fly.io builds this file on `fly deploy` (see fly.toml and the README's deploy guide).
#
# Stages: `chef` (the Rust toolchain plus cargo-chef) → `planner` (a recipe of the dependency
# graph, which changes only when Cargo.toml/Cargo.lock do) → `builder` (dependencies compiled
# from the recipe in their own cached layer, then the crate itself) → `runtime`.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Every dependency, compiled once and cached until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin portrait-bot
# The crate. migrations/ and assets/ are read at compile time (`sqlx::migrate!` embeds the SQL
# migrations, `include_bytes!` the default portrait), so they must be here before the build.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY assets ./assets
# Cargo reads every target named in Cargo.toml, so the bench and test sources come too (they
# are not built).
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin portrait-bot \
    && install -m 0755 target/release/portrait-bot /usr/local/bin/portrait-bot

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# CA certificates for HTTPS to Discord, R2 and PostgreSQL; nothing else is needed at run time
# (SQLite is compiled in; TLS is rustls). Unpinned on purpose: it should carry Debian's latest.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A non-root user owning /data, where the Fly volume is mounted (Fly mounts it for the image's
# user) and where relative defaults such as data/… land.
RUN groupadd --system --gid 10001 portrait \
    && useradd --system --uid 10001 --gid portrait --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin portrait \
    && mkdir -p /data \
    && chown portrait:portrait /data
COPY --from=builder /usr/local/bin/portrait-bot /usr/local/bin/portrait-bot
USER 10001:10001
WORKDIR /data
# Keep state on the volume: the SQLite database, and the local object folder (used only when
# R2 is not configured). fly.toml and `docker run -e` override these.
ENV DATABASE_URL=sqlite:///data/portraits.db \
    LOCAL_STORAGE_DIR=/data/objects
# /healthz and /metrics (HTTP_ADDR); Fly scrapes /metrics and checks /healthz here.
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/portrait-bot"]
CMD ["run"]
