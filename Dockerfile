# The modelgate operator image: built with the Rust toolchain, run as a
# non-root user from a distroless base with nothing but the binary.
#   docker build -t modelgate/modelgate:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
# Cargo loads every workspace member's manifest, even to build one binary.
COPY bench ./bench
RUN cargo build --release --locked --bin modelgate \
 && strip target/release/modelgate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/modelgate /usr/local/bin/modelgate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/modelgate"]
