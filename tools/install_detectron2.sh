#!/usr/bin/env bash
# Build detectron2 from source into the project's Python environment (detectron2 publishes no
# package on a registry; its own install guide builds it from its repository).
#
#   bash tools/install_detectron2.sh [--constraints FILE] [SOURCE]
#
# SOURCE: detectron2's official repository (default), another git URL (git+https://...), a local
#         source tarball (.tar.gz) or a local source folder.
# --constraints FILE: pip constraints for detectron2's own dependencies (CI passes
#         requirements/ci.txt so that every version is the pinned one).
# PYTHON: the interpreter to install into (default: .venv/bin/python when the project has one,
#         else python3).
#
# The build runs without pip's build isolation, against the torch already installed (a build
# against another torch fails at import time). It needs a C++ compiler; where torch sees a GPU
# (or FORCE_CUDA=1) also a CUDA toolkit (nvcc) of the CUDA major version torch was built with;
# elsewhere a CPU-only build is made, which is all the labeler needs on a CPU.
# A wheel built from a source archive is cached (DAAF_DETECTRON2_CACHE, default
# ~/.cache/daaf-reid/detectron2-wheels; empty = never) for the same Python and torch build.
set -euo pipefail

main() {
repo="$(cd "$(dirname "$0")/.." && pwd)"
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

OFFICIAL="git+https://github.com/facebookresearch/detectron2.git"
constraints=()
source_arg=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --constraints) [ $# -ge 2 ] && [ -f "$2" ] || { echo "error: install_detectron2.sh: --constraints needs a file, got '${2:-}'" >&2; exit 2; }
                   constraints+=(-c "$(absolute "$2")"); shift 2 ;;
    -*) echo "error: install_detectron2.sh: unknown option '$1' (expected --constraints FILE or a SOURCE)" >&2; exit 2 ;;
    *) [ -z "$source_arg" ] || { echo "error: install_detectron2.sh: give one SOURCE, got '$source_arg' and '$1'" >&2; exit 2; }
       source_arg="$1"; shift ;;
  esac
done
source_arg="${source_arg:-$OFFICIAL}"

fail() { echo "error: install_detectron2.sh: $*" >&2; exit 2; }

if [ -z "${PYTHON:-}" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || fail "no Python interpreter '$PYTHON' (set PYTHON=...)"

case "$source_arg" in
  git+*|http://*|https://*) pip_source="$source_arg" ;;
  *) [ -e "$source_arg" ] || fail "SOURCE '$source_arg' is neither a file, a folder nor a git URL"
     if [ -d "$source_arg" ]; then
       [ -f "$source_arg/setup.py" ] || fail "SOURCE folder '$source_arg' has no setup.py (expected detectron2's source tree)"
     else
       case "$source_arg" in *.tar.gz|*.tgz|*.zip) ;; *) fail "SOURCE file '$source_arg' is not a .tar.gz, .tgz or .zip source archive" ;; esac
     fi
     pip_source="$(absolute "$source_arg")" ;;
esac

# What torch was built with, and what this machine can compile with.
torch_info=$("$PYTHON" -c 'import torch; print(torch.__version__, torch.version.cuda or "none", int(torch.cuda.is_available()))' 2>/dev/null) \
  || fail "torch is not importable with $PYTHON: install the project first (bash tools/setup_env.sh)"
read -r torch_version torch_cuda gpu_visible <<<"$torch_info"
compiler="${CXX:-}"
if [ -z "$compiler" ]; then
  for candidate in c++ g++ clang++; do
    if command -v "$candidate" >/dev/null 2>&1; then compiler="$candidate"; break; fi
  done
fi
[ -n "$compiler" ] && command -v "$compiler" >/dev/null 2>&1 \
  || fail "no C++ compiler found (c++, g++ or clang++; or set CXX): install one, e.g. apt-get install g++"
# detectron2 compiles its CUDA ops when torch sees a GPU (or FORCE_CUDA=1), with the nvcc of CUDA_HOME.
if [ "$torch_cuda" != "none" ] && { [ "$gpu_visible" = 1 ] || [ "${FORCE_CUDA:-0}" = 1 ]; }; then
  nvcc="${CUDA_HOME:+$CUDA_HOME/bin/nvcc}"
  [ -n "$nvcc" ] && [ -x "$nvcc" ] || nvcc=$(command -v nvcc || true)
  [ -n "$nvcc" ] || fail "torch $torch_version sees a GPU but no nvcc was found: install the CUDA $torch_cuda toolkit and set CUDA_HOME"
  nvcc_cuda=$("$nvcc" --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
  if [ "${nvcc_cuda%%.*}" != "${torch_cuda%%.*}" ]; then
    fail "CUDA mismatch: $nvcc is CUDA $nvcc_cuda but torch $torch_version was built with CUDA $torch_cuda; install the matching CUDA toolkit (or the torch build for CUDA $nvcc_cuda)"
  fi
  echo "detectron2: with CUDA ops (nvcc $nvcc_cuda, torch $torch_version)"
else
  echo "detectron2: CPU ops only (torch $torch_version sees no GPU)"
fi

log=$(mktemp "${TMPDIR:-/tmp}/detectron2-build.XXXXXX.log")
versions='import importlib.metadata as m, json; print(json.dumps({d.metadata["Name"].lower(): d.version for d in m.distributions()}))'
before=$("$PYTHON" -c "$versions")

# A wheel built from a source archive is kept, keyed by the archive's SHA-256 and by the Python,
# torch and CUDA build it was compiled against, so a new environment installs it in seconds.
# Set DAAF_DETECTRON2_CACHE= (empty) to always build.
cache_root="${DAAF_DETECTRON2_CACHE-${XDG_CACHE_HOME:-$HOME/.cache}/daaf-reid/detectron2-wheels}"
cache=""
if [ -n "$cache_root" ] && [ -f "$pip_source" ]; then
  key=$("$PYTHON" -c 'import sys, torch; print(f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}-gpu{int(torch.cuda.is_available())}")')
  cache="$cache_root/$(sha256sum "$pip_source" | cut -c1-16)-$key-force${FORCE_CUDA:-0}"
fi

# detectron2's model_zoo imports pkg_resources, which setuptools 82 removed; a build without
# isolation uses the environment's setuptools and wheel; ninja (on PATH) compiles on every core.
export PATH="$(dirname "$PYTHON"):$PATH"
pip_install() { "$PYTHON" -m pip install "${constraints[@]}" "$@" >>"$log" 2>&1; }
if [ -n "$cache" ] && ls "$cache"/detectron2-*.whl >/dev/null 2>&1; then
  echo "detectron2: installing the wheel built earlier from this source ($cache)"
  pip_install "$cache"/detectron2-*.whl || fail "installing the cached wheel $cache failed (remove that folder to rebuild; log: $log)"
else
  echo "detectron2: building from $source_arg (a few minutes of compiling; log: $log)"
  wheels=$(mktemp -d "${TMPDIR:-/tmp}/detectron2-wheel.XXXXXX")
  if ! pip_install "setuptools>=64,<82" wheel ninja \
     || ! "$PYTHON" -m pip wheel --no-deps --no-build-isolation -w "$wheels" "$pip_source" >>"$log" 2>&1 \
     || ! pip_install "$wheels"/detectron2-*.whl; then
    cause=$(grep -m1 -E "error: command '.*' failed|fatal error: .*No such file|CUDA version .* mismatches|No matching distribution|Could not find a version|ResolutionImpossible|Failed to build|ERROR: .*" "$log" || true)
    fail "building detectron2 from $source_arg failed${cause:+: $(echo "$cause" | tr -s ' ' | cut -c1-300)} (full log: $log)"
  fi
  if [ -n "$cache" ]; then
    mkdir -p "$cache.tmp$$" && cp "$wheels"/detectron2-*.whl "$cache.tmp$$"/ && rm -rf "$cache" && mv "$cache.tmp$$" "$cache" || true
  fi
  rm -rf "$wheels"
fi

# It must import, with its compiled ops and its model zoo (pkg_resources).
check=$("$PYTHON" -W ignore -c 'import detectron2, detectron2._C, detectron2.model_zoo; print(detectron2.__version__)' 2>&1) \
  || fail "detectron2 was installed but does not import: $(echo "$check" | tail -n 1) (log: $log)"

# Installing detectron2 must change nothing the project had pinned.
after=$("$PYTHON" -c "$versions")
changed=$("$PYTHON" -c '
import json, sys
before, after = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in sorted(before):
    if name not in ("setuptools", "wheel", "ninja") and after.get(name, before[name]) != before[name]:
        print(f"{name} {before[name]} -> {after[name]}")
' "$before" "$after")
if [ -n "$changed" ]; then
  echo "warning: installing detectron2 changed these packages (align the project's pins with detectron2's):" >&2
  echo "$changed" | sed 's/^/  /' >&2
fi
echo "detectron2 $check installed from $source_arg into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
rm -f "$log"
}

main "$@"
