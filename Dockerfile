# Multi-stage build: compile in the Rust image, run in a slim Debian with a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY email ./email
COPY migration ./migration
COPY src ./src
RUN cargo build --release --locked --bin authauth

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app authauth \
 && mkdir -p /app && chown authauth /app
COPY --from=build /src/target/release/authauth /usr/local/bin/authauth
USER authauth
WORKDIR /app
ENV APP_ENV=production HOST=0.0.0.0 PORT=3000
EXPOSE 3000
# Liveness over plain HTTP with bash's /dev/tcp (the slim image has no curl).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3000 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["authauth"]
CMD ["serve"]
