# kcp-ingress: one static binary on a distroless, non-root base.
#   docker build -t kcp-ingress .
# (Not built in CI: no Docker engine runs there. The build stage is plain
# cargo for the musl target, so `cargo build --target x86_64-unknown-linux-musl`
# on a machine with musl-tools reproduces it.)

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY e2e ./e2e
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin kcp-ingress \
 && cp target/x86_64-unknown-linux-musl/release/kcp-ingress /kcp-ingress

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /kcp-ingress /kcp-ingress
USER 65532:65532
ENTRYPOINT ["/kcp-ingress"]
