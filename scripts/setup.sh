#!/usr/bin/env bash
# Installs what is missing and builds: Debian packages (libtorch, OpenBLAS, json headers, build tools),
# npm packages (npm ci), the native addon (cmake-js, incremental) and the TypeScript (tsc).
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(libtorch-dev libopenblas0-pthread libgloo-dev nlohmann-json3-dev cmake ninja-build g++ make)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Without OpenBLAS libtorch falls back to the reference BLAS (~100x slower matrix products): make sure the
# libblas.so.3 alternative points at OpenBLAS.
if ! readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null | grep -q openblas; then
  echo "setup: warning: libblas.so.3 is not OpenBLAS ($(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo missing))" >&2
fi

# onnxruntime-node (a dev dependency, for ONNX export tests) would otherwise try to download a CUDA add-on
# from a host this machine cannot reach; its CPU binaries ship inside the npm package.
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  BLOCKPRUNE_SKIP_BUILD=1 npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: building the native addon (cmake-js)"
npx --no-install cmake-js build --out build --parallel "$(nproc)" 2>&1 | grep -vE "^\s*$|^info|^\[" || true
test -f build/Release/blockprune.node || { echo "setup: native build failed" >&2; npx --no-install cmake-js build --out build; exit 1; }
echo "setup: compiling TypeScript"
# From scratch: a file moved or deleted in lib/ or test/ would otherwise leave its old .js in dist/, which ava
# would still run and the package would still ship.
rm -rf dist
npx --no-install tsc -p tsconfig.json
