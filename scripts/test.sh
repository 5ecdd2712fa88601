#!/usr/bin/env bash
# The one test command (README, docs/testing.md, .ci/run): the Rust tests of the crate and its
# bindings, then the Python package's tests (pytest) against a wheel built
# from this checkout and installed in a virtual environment (target/pyenv).
# Needs: cargo, python3 (>= 3.10) with venv and pip, maturin, pytest;
# numpy comes from the package index the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

# NVRTC (the run-time kernel compiler) from NVIDIA's wheel, where `.ci/run`
# or a user put it (target/nvrtc), so the tests compile every kernel; without
# it those tests say they were skipped.
NVRTC_LIB="$ROOT/target/nvrtc/nvidia/cu13/lib"
if [ -e "$NVRTC_LIB/libnvrtc.so.13" ]; then
    export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
    echo "test.sh: no NVRTC in target/nvrtc; the kernel-compile tests will be skipped (install it with:" \
         "python3 -m pip install --no-deps --target target/nvrtc nvidia-cuda-nvrtc==13.0.88)" >&2
fi

# Rust: the core crate and every binding with Rust tests (the Python
# extension has none of its own: it is tested from Python below).
cargo test --release --workspace --exclude dasnas-python

# Python: build the abi3 wheel, install it in a fresh-enough venv, run pytest.
VENV="$ROOT/target/pyenv"
if [ ! -x "$VENV/bin/python" ]; then
    # System site packages: pytest (and maturin) come from the machine.
    python3 -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -c "import numpy" 2>/dev/null || "$VENV/bin/pip" install -q "numpy>=1.21"
rm -rf "$ROOT/target/wheels"
maturin build --release --quiet -m bindings/python/Cargo.toml -o "$ROOT/target/wheels"
"$VENV/bin/pip" install -q --force-reinstall --no-deps "$ROOT"/target/wheels/dasnas-*.whl
# From the tests folder, so `import dasnas` is the installed wheel, not the source tree.
cd bindings/python/tests
# -rs: every skipped test says why.
DASNAS_BIN="$ROOT/target/release/dasnas" "$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider .
