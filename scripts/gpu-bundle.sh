#!/usr/bin/env bash
# Builds what the GPU machine runs (it has no Rust toolchain, DESIGN.md §4)
# into the git-ignored folder gpu-bundle/:
#
#   gpu-bundle/tests/<name>   release test binaries of tests/gpu_*.rs and
#                             tests/nvrtc_compile.rs (debug info stripped)
#   gpu-bundle/dasnas         the command line (debug info stripped)
#   gpu-bundle/nvrtc/         libnvrtc + builtins, only with --with-nvrtc DIR
#                             (~114 MB: leave it out when the GPU machine
#                             has NVRTC 13.0 itself)
#   gpu-bundle/torch_reference.py  the PyTorch reference formulation
#   gpu-bundle/run.sh         runs every test binary with REQUIRE_GPU=1 and
#                             REQUIRE_NVRTC=1 (a timeout each), then
#                             `./dasnas devices`, the throughput bench
#                             (`dasnas bench --device cuda`, 4 and 8 lanes)
#                             and, where PyTorch imports, the reference on
#                             50 of the same cells on the GPU; prints a table
#
# Usage: scripts/gpu-bundle.sh [--with-nvrtc DIR]   (DIR: .../nvidia/cu13/lib)
# Then carry gpu-bundle/ to the GPU machine and run gpu-bundle/run.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."

nvrtc_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --with-nvrtc) nvrtc_dir="${2:?--with-nvrtc needs a folder}"; shift 2 ;;
        *) echo "gpu-bundle: unknown argument $1" >&2; exit 2 ;;
    esac
done

command -v python3 >/dev/null || { echo "gpu-bundle: needs python3 (reads cargo's JSON)" >&2; exit 1; }

out=gpu-bundle
tests=(nvrtc_compile)
for f in tests/gpu_*.rs; do
    [ -e "$f" ] || continue
    tests+=("$(basename "$f" .rs)")
done
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done

# Prints "kind<TAB>name<TAB>path" for every executable artifact in cargo's
# JSON (the test build also builds the dasnas binary, for tests/cli*.rs).
executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        t = m["target"]
        print("\t".join([",".join(t["kind"]), t["name"], m["executable"]]))
'
}

echo "gpu-bundle: building ${tests[*]} and dasnas (release)" >&2
artifacts=$(cargo test --release --no-run --message-format=json "${test_args[@]}" | executables)

rm -rf "$out"
mkdir -p "$out/tests"
strip_copy() {
    cp "$1" "$2"
    chmod u+w "$2"
    strip --strip-debug "$2" 2>/dev/null || echo "gpu-bundle: strip failed on $2 (kept debug info)" >&2
}
found=0
dasnas_path=""
while IFS=$'\t' read -r kind name path; do
    case "$kind:$name" in
        test:*) strip_copy "$path" "$out/tests/$name"; found=$((found + 1)) ;;
        bin:dasnas) dasnas_path=$path ;;
    esac
done <<< "$artifacts"
if [ "$found" -ne "${#tests[@]}" ]; then
    echo "gpu-bundle: expected ${#tests[@]} test binaries, cargo reported $found" >&2
    exit 1
fi
[ -n "$dasnas_path" ] || { echo "gpu-bundle: cargo reported no dasnas binary" >&2; exit 1; }
strip_copy "$dasnas_path" "$out/dasnas"
cp scripts/torch_reference.py scripts/torch_train_bench.py "$out/"

if [ -n "$nvrtc_dir" ]; then
    mkdir -p "$out/nvrtc"
    cp "$nvrtc_dir"/libnvrtc.so.* "$nvrtc_dir"/libnvrtc-builtins.so.* "$out/nvrtc/"
fi

cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs this bundle's GPU checks (no Rust toolchain needed). Every test
# binary runs with REQUIRE_GPU=1 and REQUIRE_NVRTC=1, so a missing GPU or
# NVRTC fails instead of skipping. Logs go to logs/<name>.log.
# Env: TIMEOUT (seconds per binary, default 600); NVRTC_LIB (a folder with
# libnvrtc.so.13, prepended to LD_LIBRARY_PATH; ./nvrtc is used if present).
# Extra arguments are passed to every test binary (e.g. a test name filter).
set -u
cd "$(dirname "$0")"
here=$(pwd)
timeout_s=${TIMEOUT:-600}
export REQUIRE_GPU=1 REQUIRE_NVRTC=1
[ -d "$here/nvrtc" ] && export LD_LIBRARY_PATH="$here/nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -n "${NVRTC_LIB:-}" ] && export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p logs
now() { date +%s.%N; }
rows=()
failed=0
failed_names=()
for t in tests/*; do
    name=$(basename "$t")
    start=$(now)
    timeout "$timeout_s" "$t" "$@" > "logs/$name.log" 2>&1
    rc=$?
    secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" -eq 0 ]; then
        status=passed
    elif [ "$rc" -eq 124 ]; then
        status="failed (timeout ${timeout_s}s)"; failed=$((failed + 1)); failed_names+=("$name")
    else
        status="failed (exit $rc)"; failed=$((failed + 1)); failed_names+=("$name")
    fi
    rows+=("$name|$status|$secs")
done
start=$(now)
timeout 120 ./dasnas devices > logs/devices.log 2>&1
rc=$?
secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
if [ "$rc" -eq 0 ]; then rows+=("dasnas devices|passed|$secs"); else rows+=("dasnas devices|failed (exit $rc)|$secs"); failed=$((failed + 1)); fi

# Throughput: dasnas on the GPU (BENCH_CELLS cells, default 2000), then the
# PyTorch reference on 50 cells scored the same way (only when torch imports).
bench_cells=${BENCH_CELLS:-2000}
for lanes in 4 8; do
    start=$(now)
    timeout 300 ./dasnas bench --device cuda --lanes "$lanes" --cells "$bench_cells" > "logs/bench_l$lanes.log" 2>&1
    rc=$?
    secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" -eq 0 ]; then rows+=("bench, $lanes lanes|passed|$secs"); else rows+=("bench, $lanes lanes|failed (exit $rc)|$secs"); failed=$((failed + 1)); fi
done
# Fast training: 16 cells x 50 SGD steps at batch 64 on the GPU, then the
# same first 4 cells trained 50 steps by PyTorch on the GPU.
start=$(now)
timeout 300 ./dasnas bench --device cuda --train-steps 50 --train-batch 64 --cells 16 > logs/bench_train.log 2>&1
rc=$?
secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
if [ "$rc" -eq 0 ]; then rows+=("bench --train-steps|passed|$secs"); else rows+=("bench --train-steps|failed (exit $rc)|$secs"); failed=$((failed + 1)); fi
torch_line=""
torch_train=""
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    timeout 120 ./dasnas score --sample 16 --seed 0 --device cuda > logs/sample16.jsonl 2>/dev/null
    for arch in $(python3 -c 'import json; [print(json.loads(l)["arch"]) for l in list(open("logs/sample16.jsonl"))[:4]]'); do
        torch_train+="$(timeout 120 python3 torch_train_bench.py "$arch" --device cuda --steps 50 --batch 64 2>&1 | tail -n 1)"$'\n'
    done
    timeout 120 ./dasnas score --sample 51 --seed 0 --device cuda > logs/sample51.jsonl 2>/dev/null
    python3 -c 'import json,sys; [print(json.loads(l)["arch"]) for l in open("logs/sample51.jsonl")]' > logs/archs51.txt
    timeout 300 python3 torch_reference.py logs/archs51.txt --device cuda > logs/torch.log 2>&1
    torch_line=$(tail -n 1 logs/torch.log)
fi

echo "== dasnas devices"
cat logs/devices.log
for lanes in 4 8; do
    echo "== dasnas bench --device cuda --lanes $lanes --cells $bench_cells"
    cat "logs/bench_l$lanes.log" | grep -v '^{' | head -n 40
done
[ -n "$torch_line" ] && { echo "== PyTorch reference on the GPU, 50 cells"; echo "$torch_line"; }
echo "== dasnas bench --device cuda --train-steps 50 --train-batch 64 --cells 16"
cat logs/bench_train.log
[ -n "$torch_train" ] && { echo "== PyTorch training on the GPU, first 4 of the same cells, 50 steps at batch 64"; printf '%s' "$torch_train"; }
for name in ${failed_names[@]+"${failed_names[@]}"}; do
    echo "== $name: failures (from logs/$name.log)"
    grep -E -A1 "panicked" "logs/$name.log" | grep -v "^--$" | head -n 12
    grep -E "^test result" "logs/$name.log"
done
echo
printf '%-22s  %-24s  %8s\n' "binary" "result" "seconds"
printf '%-22s  %-24s  %8s\n' "------" "------" "-------"
for r in "${rows[@]}"; do
    IFS='|' read -r a b c <<< "$r"
    printf '%-22s  %-24s  %8s\n' "$a" "$b" "$c"
done
echo
if [ "$failed" -eq 0 ]; then echo "all passed"; else echo "$failed failed"; fi
[ "$failed" -eq 0 ]
RUN
chmod +x "$out/run.sh"
echo "gpu-bundle: $(du -sh "$out" | cut -f1) in $out/:" >&2
ls -la "$out" "$out/tests" >&2
