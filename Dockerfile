# The modelgate operator image: built with the Rust toolchain, run as a
# non-root user from a distroless base with nothing but the binary.
#   docker build -t modelgate/modelgate:0.1.0 .
#
# Both bases are pinned by digest (the multi-platform index of the tag), so
# a rebuild takes the same bytes whatever the tag points at later. To move
# a pin, resolve the tag and check the result before you commit it (see
# docs/operations.md, "Verifying the image"):
#   crane digest rust:1.95-bookworm
#   crane digest gcr.io/distroless/cc-debian12:nonroot
FROM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Cargo loads every workspace member's manifest, even to build one binary.
COPY crates ./crates
COPY bench ./bench
# The operator, and the plugin whose `console` the chart's console runs.
RUN cargo build --release --locked --bin modelgate --bin kubectl-modelgate \
 && strip target/release/modelgate target/release/kubectl-modelgate

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
LABEL org.opencontainers.image.title="modelgate" \
      org.opencontainers.image.description="Kubernetes operator that holds AI model rollouts until a five-gate approval has passed" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/release/modelgate /usr/local/bin/modelgate
COPY --from=build /src/target/release/kubectl-modelgate /usr/local/bin/kubectl-modelgate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/modelgate"]
