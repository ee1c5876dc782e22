# ff as one container: the HTTP API (`ff serve`) with its in-process job workers.
#
#   docker build -t ff .
#   docker run -p 8000:8000 -v ff-models:/models -v ff-data:/data ff
#
# Models are not baked in unless FF_BAKED_MODELS names them (below): they live in the /models
# volume and are downloaded on first use (or pre-seeded there, or copied from the bucket's
# FF_MODELS_S3_PREFIX; see docs/deploy.md). compose.yaml runs this image next to MinIO.

# --- ONNX Runtime: the same PyPI wheel and extraction as scripts/setup, for the build platform.
FROM python:3.12-slim-bookworm AS onnxruntime
WORKDIR /src
COPY scripts/setup scripts/setup
RUN scripts/setup

# --- The `ff` binary.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
# Line tables (profile.release debug = 1) are for local profiling; the image ships a stripped
# binary, a fraction of the size.
RUN CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --bin ff \
 && cp target/release/ff /usr/local/bin/ff

# --- Runtime: Debian slim with ffmpeg, the ONNX Runtime library and a non-root user.
FROM debian:bookworm-slim
# Debian's stable security updates replace package versions in place, so pinning them would break
# the build at the next point release; the base image tag is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin ff \
 && mkdir -p /models /data \
 && chown ff:ff /models /data
COPY --from=onnxruntime /src/.ort/lib/libonnxruntime.so.1.31.1 /usr/local/lib/libonnxruntime.so.1.31.1
COPY --from=builder /usr/local/bin/ff /usr/local/bin/ff
# The try-it page ff serves at /, also as a static file for a web server in front (it calls the
# API at its own origin).
COPY shared/service/assets/index.html /usr/share/ff/www/index.html

# Models baked into the image, for a container-image Lambda function (or an offline host) whose
# cold start fetches nothing: e.g. --build-arg FF_BAKED_MODELS="face_swapper face_detector
# face_landmarker face_recognizer content_analyser". Downloaded and verified here (CRC32 sidecar,
# and the catalogue's SHA-256 where FaceFusion publishes one); a model that fails fails the build.
# Before VOLUME, which would discard what a later step writes to /models.
ARG FF_BAKED_MODELS=""
# The names are meant to split into separate arguments.
# hadolint ignore=SC2086
RUN if [ -n "$FF_BAKED_MODELS" ]; then \
      FF_MODELS_DIR=/models ff models download $FF_BAKED_MODELS \
      && chown -R ff:ff /models && chmod -R a+rX /models; \
    fi

ENV ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so.1.31.1 \
    FF_MODELS_DIR=/models \
    FF_DATA_DIR=/data \
    FF_HOST=0.0.0.0 \
    FF_PORT=8000 \
    RUST_LOG=info,ort=warn
VOLUME ["/models", "/data"]
# Numeric, so orchestrators that check "runs as non-root" can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
# Exec form with an explicit shell so FF_PORT is expanded at check time, not at build time.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS \"http://127.0.0.1:${FF_PORT}/api/v1/health\" > /dev/null || exit 1"]
ENTRYPOINT ["/usr/local/bin/ff"]
CMD ["serve"]
