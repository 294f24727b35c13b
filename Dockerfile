# The `velostream` binary in a small runtime image.
#
#   docker build -t velostream:local .
#   docker run --rm velostream:local --help
#
# Stage 1 builds a release binary and strips it (its symbols go to the `symbols`
# stage); the last stage is debian:bookworm-slim with only
# what the binary links dynamically (checked with `ldd`): libssl3/libcrypto
# (librdkafka's and the ClickHouse client's TLS), zlib1g, libgcc-s1 and libc6
# (the last three are part of the base image), plus ca-certificates for the
# system trust store. It runs as the unprivileged user `velostream`
# (uid 10001). Ports: 9464 (producer metrics) and 9465 (consumer metrics)
# when started with --metrics-addr 0.0.0.0:PORT, as infra/docker-compose.yml does.

FROM rust:1.95-bookworm AS build
# The C toolchain and headers librdkafka (bundled by rdkafka-sys) builds with.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p velostream --bin velostream \
    && mkdir -p /out /symbols \
    && objcopy --only-keep-debug target/release/velostream /symbols/velostream.debug \
    && cp target/release/velostream.dwp /symbols/ \
    && strip --strip-all -o /out/velostream target/release/velostream \
    && objcopy --add-gnu-debuglink=/symbols/velostream.debug /out/velostream

# The symbols split out of the shipped binary (118 MB stripped; benches/RESULTS.md,
# "Binary size"): `docker build --target symbols --output type=local,dest=symbols .`
# writes velostream.debug (symbols and line tables, found through the binary's
# .gnu_debuglink) and velostream.dwp (the rest of the DWARF).
FROM scratch AS symbols
COPY --from=build /symbols/ /

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 velostream \
    && useradd --system --uid 10001 --gid velostream --home-dir /data --shell /usr/sbin/nologin velostream \
    && mkdir -p /data && chown velostream:velostream /data
COPY --from=build /out/velostream /usr/local/bin/velostream
COPY sql/transforms /usr/share/velostream/transforms
USER 10001:10001
WORKDIR /data
EXPOSE 9464 9465
ENTRYPOINT ["/usr/local/bin/velostream"]
CMD ["--help"]
