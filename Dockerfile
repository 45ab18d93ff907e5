# The orca-cluster image: one static binary and nothing else.
#
#   docker build -t ghcr.io/orca-cache/orca-cluster:VERSION .
#   docker push ghcr.io/orca-cache/orca-cluster:VERSION
#
# VERSION is the workspace version (Cargo.toml, [workspace.package]), the tag
# deploy/kubernetes/deployment.yaml names (.ci/static-image checks that they agree).
# .ci/static-image builds the binary with the same command as the build stage below and runs it
# in an empty root directory as the same numeric user, so what this image holds is known to be
# enough: no libc, no /etc, no CA bundle (the fill RPC trusts only the CA file it is given).

# Build stage: the Rust toolchain, the musl target, and musl-gcc (musl-tools) for ring's C and
# assembly parts. The target is x86_64: on another build host, build with --platform linux/amd64.
ARG RUST_IMAGE=rust:1-bookworm
FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p orca-cluster-cli
# Debug info off (the release profile keeps line tables), symbols kept for readable backtraces.
RUN strip --strip-debug -o /orca-cluster target/x86_64-unknown-linux-musl/release/orca-cluster

# Final stage: the binary alone, run as a non-root numeric user (so Kubernetes' runAsNonRoot
# can check it).
FROM scratch
COPY --from=build /orca-cluster /orca-cluster
USER 65532:65532
# 8444: the fill RPC (`node --listen`); 8445: /healthz, /readyz, /peers (`node --admin-listen`).
EXPOSE 8444 8445
ENTRYPOINT ["/orca-cluster"]
CMD ["demo"]
