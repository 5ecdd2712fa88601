#!/usr/bin/env bash
# The one test command (README, docs/testing.md, .ci/run): the Rust tests of the crate and its
# bindings, then the Python package's tests (pytest) against a wheel built
# from this checkout and installed in a virtual environment (target/pyenv).
# Needs: cargo, python3 (>= 3.10) with venv and pip, maturin, pytest;
# numpy comes from the package index the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

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
DASNAS_BIN="$ROOT/target/release/dasnas" "$VENV/bin/python" -m pytest -q -p no:cacheprovider .
