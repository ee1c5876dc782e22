#!/usr/bin/env bash
# Builds the Lambda layer every function of template.yaml runs with: the ONNX Runtime library that
# `ort` loads at run time (lib/), and static ffmpeg and ffprobe for video (bin/). ONNX Runtime and
# ffmpeg come from PyPI wheels (the source scripts/setup uses), ffprobe from an npm package, since
# no PyPI wheel ships one; building needs python3 with pip, and npm.
#
#   deploy/layer/build.sh OUT_DIR [x86_64|arm64]      (default x86_64, as in template.yaml)
#
# Lambda mounts a layer at /opt; template.yaml points ORT_DYLIB_PATH at /opt/lib and FF_FFMPEG at
# /opt/bin/ffmpeg (ffprobe is found beside it). `sam build` calls this through the Makefile beside it.
set -euo pipefail

ORT_VERSION="1.31.1"          # must match ff_pipeline::runtime::ORT_VERSION and scripts/setup
IMAGEIO_FFMPEG_VERSION="0.7.0" # ships ffmpeg 7.0.2 as a static binary
FFPROBE_NPM_VERSION="5.2.0"    # @ffprobe-installer/linux-*: a static ffprobe (johnvansickle build)

out="${1:?usage: build.sh OUT_DIR [x86_64|arm64]}"
arch="${2:-x86_64}"
case "$arch" in
  arm64) ort_platform="manylinux_2_28_aarch64"; ffmpeg_platform="manylinux2014_aarch64"; npm_cpu="arm64" ;;
  x86_64) ort_platform="manylinux_2_28_x86_64"; ffmpeg_platform="manylinux2014_x86_64"; npm_cpu="x64" ;;
  *) echo "unknown architecture '$arch' (arm64 or x86_64)" >&2; exit 2 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
download() {
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --platform "$1" --dest "$work" "$2"
}
download "$ort_platform" "onnxruntime==$ORT_VERSION"
download "$ffmpeg_platform" "imageio-ffmpeg==$IMAGEIO_FFMPEG_VERSION"
(cd "$work" && npm pack --silent "@ffprobe-installer/linux-$npm_cpu@$FFPROBE_NPM_VERSION" > /dev/null)

mkdir -p "$out/lib" "$out/bin"
python3 - "$work" "$out" "$ORT_VERSION" <<'PY'
import glob, os, shutil, sys, zipfile
work, out, version = sys.argv[1:]

def extract(wheel_glob, predicate, dest, mode):
    wheel = glob.glob(os.path.join(work, wheel_glob))[0]
    with zipfile.ZipFile(wheel) as z:
        member = next(m for m in z.namelist() if predicate(m))
        tmp = dest + ".part"
        with z.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    print(f"{os.path.basename(dest)} <- {os.path.basename(wheel)}")

name = f"libonnxruntime.so.{version}"
extract("onnxruntime-*.whl", lambda m: m.endswith("/capi/" + name), os.path.join(out, "lib", name), 0o755)
extract("imageio_ffmpeg-*.whl", lambda m: "/binaries/ffmpeg-" in m, os.path.join(out, "bin", "ffmpeg"), 0o755)
PY
tar -xzf "$work"/ffprobe-installer-linux-*.tgz -C "$work" package/ffprobe
install -m 0755 "$work/package/ffprobe" "$out/bin/ffprobe"
echo "ffprobe <- @ffprobe-installer/linux-$npm_cpu@$FFPROBE_NPM_VERSION"
ln -sf "libonnxruntime.so.$ORT_VERSION" "$out/lib/libonnxruntime.so"
echo "layer for $arch in $out"
