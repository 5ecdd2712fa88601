#!/usr/bin/env bash
# Which CUDA kernels the tests execute under the host emulation: runs the
# GPU tests (their ::emulated variants: the library's unit tests, with each
# op's in src/ops/<op>/tests.rs, and tests/gpu/) with DASNAS_EMU_TRACE set, then
# lists every `__global__` kernel (cuda/*.cu, src/ops/*/*.cu) with its launch count; exits
# non-zero when a kernel never ran.
set -euo pipefail
cd "$(dirname "$0")/.."
trace=$(mktemp)
trap 'rm -f "$trace"' EXIT
DASNAS_EMU_TRACE=$trace cargo test --release -q --lib --test gpu >/dev/null
missing=0
for f in cuda/*.cu src/ops/*/*.cu; do
    for k in $(grep -A1 "__global__" "$f" | grep -oE "[a-z_0-9]+\(" | tr -d '(' | grep -v "^__launch_bounds__$"); do
        n=$(grep -cx "$k" "$trace" || true)
        printf '%-32s %-22s %6d\n' "$k" "$(basename "$f")" "$n"
        [ "$n" -gt 0 ] || missing=$((missing + 1))
    done
done
echo "$missing kernels never launched under emulation"
[ "$missing" -eq 0 ]
