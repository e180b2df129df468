# syntax=docker/dockerfile:1
#
# The CCAG image: both services and the `ccag` CLI in one small image that
# runs as a non-root user and has no shell.
#
#   docker build -t ccag .
#   docker run --rm ccag ccag-dataplane            # the default command
#   docker run --rm ccag ccag-controlplane
#   docker run --rm ccag ccag --help
#
# BuildKit is needed (the default builder of current Docker) for the cache
# mounts: the cargo registry and the target directory survive between
# builds, so a rebuild after a source change compiles only what changed.

ARG RUST_IMAGE=rust:1-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# The portal: a static bundle the control plane embeds.
FROM ${NODE_IMAGE} AS portal
WORKDIR /src
COPY portal/package.json portal/package-lock.json portal/
RUN npm ci --prefix portal --no-fund --no-audit
COPY proto proto
COPY portal portal
RUN npm run --prefix portal build

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# No system packages are needed beyond the image's gcc: protoc comes
# vendored (protoc-bin-vendored), aws-lc-sys builds with its cc builder and
# pregenerated bindings on x86_64 and aarch64 Linux, and SQLite is bundled.
COPY . .
COPY --from=portal /src/portal/dist portal/dist
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p ccag-controlplane -p ccag-dataplane \
 && mkdir -p /out/bin /out/var/lib/ccag/dataplane \
 && cp target/release/ccag-controlplane target/release/ccag-dataplane target/release/ccag /out/bin/

# glibc, CA certificates and tzdata; no shell, no package manager.
# The :nonroot tag runs as uid/gid 65532 ("nonroot").
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/bin/ /usr/local/bin/
# The state directory, owned by nonroot so that a named volume mounted here
# starts out writable (Docker copies the ownership into a new volume).
COPY --from=build --chown=65532:65532 /out/var/lib/ccag /var/lib/ccag
USER nonroot
# In a container the listeners bind every interface; the binaries' own
# defaults (127.0.0.1) suit a laptop, not a pod.
ENV CCAG_DATAPLANE_ADDR=0.0.0.0:8080 \
    CCAG_DATAPLANE_ADMIN_ADDR=0.0.0.0:9464 \
    CCAG_GRPC_ADDR=0.0.0.0:8091 \
    CCAG_HTTP_ADDR=0.0.0.0:8081 \
    CCAG_DATA_DIR=/var/lib/ccag \
    CCAG_DATAPLANE_STATE_DIR=/var/lib/ccag/dataplane
# 8080: data plane, the Anthropic API; 9464: data plane admin (/metrics,
# /health, /ready); 8091: control plane gRPC (admin API, data-plane stream);
# 8081: control plane HTTP (sign-in, /setup, /health, /ready, /metrics).
EXPOSE 8080 9464 8091 8081
CMD ["/usr/local/bin/ccag-dataplane"]
