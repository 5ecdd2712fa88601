#!/usr/bin/env bash
# Builds what a GPU machine runs (it needs no Rust toolchain; docs/testing.md)
# into the git-ignored folder gpu-bundle/:
#
#   gpu-bundle/tests/<name>   release test binaries (debug info stripped): gpu
#                             (tests/gpu/: the kernels that are not ops, the GPU
#                             scorer and trainer, NVRTC) and lib (the library's
#                             unit tests, with every op's CUDA tests beside it in
#                             src/ops/<op>/tests.rs)
#   gpu-bundle/dasnas         the command line (debug info stripped)
#   gpu-bundle/nvrtc/         libnvrtc + builtins, only with --with-nvrtc DIR
#                             (~114 MB: leave it out; the GPU machine has
#                             NVRTC in its CUDA toolkit and PyTorch's wheel)
#   gpu-bundle/*.py           the PyTorch reference formulation and training, and
#                             python_gpu_smoke.py (the Python package on the GPU)
#   gpu-bundle/wheel/         the Python package's abi3 wheel (when maturin is here)
#   gpu-bundle/run.sh         the checks, writing one report (see below)
#
# run.sh, on the GPU machine:
#   1. picks the NVRTC library and sets DASNAS_NVRTC to it (so a toolkit's
#      libnvrtc.so on the system path cannot win by accident), links it as
#      nvrtc-link/libnvrtc.so: $NVRTC_LIB (a folder) if set, else ./nvrtc,
#      else PyTorch's nvidia/cu13/lib, else the CUDA toolkit's, else the
#      first libnvrtc.so.13 found;
#   2. `dasnas devices` (card, driver and NVRTC versions, compatibility);
#   3. every test binary with --include-ignored --skip emulated (the GPU
#      variants of the GPU tests, plus every plain test) and REQUIRE_GPU=1,
#      REQUIRE_NVRTC=1, a timeout each (TIMEOUT, default 240 s);
#   4. with SANITIZE=1 and compute-sanitizer present: the tests of the
#      kernels that are not ops (gpu, kernels::) and the CUDA-vs-CPU tests
#      of the ReLU, add, pool, global-average-pool and linear forward
#      kernels (lib) under its memcheck and racecheck tools (SAN_TIMEOUT,
#      default 120 s each);
#   5. `dasnas bench --device cuda` (NB201, B = 128; BENCH_CELLS, default
#      2000) with 4 and 8 lanes, the fast-training bench, NB101's cells/hour
#      (NB101_CELLS, default 300) and the projection to all of NB101, and, where
#      PyTorch sees the GPU, the PyTorch reference formulation on 50 of the
#      same cells and PyTorch training of 4 of them;
#   5b. with the wheel: unpacks it (no pip, no index: the GPU machine has
#      no downloads) and runs python_gpu_smoke.py, the same wheel as on a
#      CPU machine scoring on the GPU, checked against its CPU scores;
#   6. writes report.md (also to $OUT/ when set): date, card, driver and
#      NVRTC, every binary's result, the bench and reference figures, the
#      failures. The report is written whatever fails (commit it under
#      results/gpu/ with the date); run.sh exits non-zero when anything
#      failed.
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
tests=(gpu)
# The library's unit tests too: an op's folder carries its own GPU tests.
test_args=(--lib)
for t in "${tests[@]}"; do test_args+=(--test "$t"); done

# Prints "kind<TAB>name<TAB>path" for every executable artifact in cargo's
# JSON (the test build also builds the dasnas binary, for tests/cli/).
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
bin_artifacts=$(cargo build --release --message-format=json --bin dasnas | executables)

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
        lib:dasnas) strip_copy "$path" "$out/tests/lib"; found=$((found + 1)) ;;
        bin:dasnas) dasnas_path=$path ;;
    esac
done <<< "$artifacts"$'\n'"$bin_artifacts"
if [ "$found" -ne $((${#tests[@]} + 1)) ]; then
    echo "gpu-bundle: expected $((${#tests[@]} + 1)) test binaries (tests and lib), cargo reported $found" >&2
    exit 1
fi
[ -n "$dasnas_path" ] || { echo "gpu-bundle: cargo reported no dasnas binary" >&2; exit 1; }
strip_copy "$dasnas_path" "$out/dasnas"
cp scripts/torch_reference.py scripts/torch_train_bench.py scripts/python_gpu_smoke.py "$out/"
rm -rf "$out/wheel"
if command -v maturin >/dev/null; then
    maturin build --release --quiet -m bindings/python/Cargo.toml -o "$out/wheel"
else
    echo "gpu-bundle: no maturin here: the bundle has no Python wheel" >&2
fi
git rev-parse --short HEAD > "$out/COMMIT" 2>/dev/null || echo unknown > "$out/COMMIT"
git status --porcelain | grep -q . && echo "$(cat "$out/COMMIT") (uncommitted changes)" > "$out/COMMIT" || true

if [ -n "$nvrtc_dir" ]; then
    mkdir -p "$out/nvrtc"
    cp "$nvrtc_dir"/libnvrtc.so.* "$nvrtc_dir"/libnvrtc-builtins.so.* "$out/nvrtc/"
fi

cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# The GPU checks of this bundle (see scripts/gpu-bundle.sh for what each
# step does). Env: NVRTC_LIB (folder with libnvrtc.so.13), TIMEOUT (per
# test binary, default 240 s), BENCH_CELLS (default 2000), SANITIZE=1 (run
# compute-sanitizer too), SAN_TIMEOUT (default 120 s), OUT (a folder the
# report is copied to). Extra arguments go to every test binary.
set -u
cd "$(dirname "$0")"
here=$(pwd)
timeout_s=${TIMEOUT:-240}
bench_cells=${BENCH_CELLS:-2000}
export REQUIRE_GPU=1 REQUIRE_NVRTC=1
mkdir -p logs
report=$here/report.md
rows=()
failed=0
failed_names=()
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Writes the report; runs on every exit, so a failed or interrupted run
# still leaves one.
write_report() {
    {
        echo "# dasnas GPU bundle report"
        echo
        echo "- date (UTC): $(date -u '+%Y-%m-%d %H:%M')"
        echo "- commit: $(cat COMMIT 2>/dev/null || echo unknown)"
        echo "- host: $(hostname 2>/dev/null || echo ?), $(nproc 2>/dev/null || echo ?) CPU cores"
        if command -v nvidia-smi >/dev/null; then
            echo "- nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
        else
            echo "- nvidia-smi: not found"
        fi
        echo "- DASNAS_NVRTC: ${DASNAS_NVRTC:-unset}"
        echo
        echo "## dasnas devices"
        echo
        echo '```'
        cat logs/devices.log 2>/dev/null || echo "(not run)"
        echo '```'
        echo
        echo "## Results"
        echo
        echo "| check | result | tests passed / failed / ignored | seconds |"
        echo "|---|---|---|---|"
        for r in ${rows[@]+"${rows[@]}"}; do
            IFS='|' read -r a b c d <<< "$r"
            echo "| $a | $b | $c | $d |"
        done
        echo
        echo "## Throughput (NB201, B = 128)"
        echo
        for lanes in 4 8; do
            if [ -s "logs/bench_l$lanes.log" ]; then
                echo "### dasnas bench --device cuda --lanes $lanes --cells $bench_cells"
                echo
                echo '```'
                grep -v '^{' "logs/bench_l$lanes.log" | head -n 40
                echo '```'
                grep '^{' "logs/bench_l$lanes.log" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("\n**%.1f cells/s** (%.3f ms/cell) on %s, %d lanes\n" % (d["cells_per_s"], d["ms_per_cell"], d.get("gpu","?"), d["lanes"]))' 2>/dev/null
            fi
        done
        if [ -s logs/torch.log ]; then
            echo "### PyTorch reference formulation on the same GPU, 50 of the same cells"
            echo
            echo '```'
            tail -n 1 logs/torch.log
            echo '```'
            echo
        fi
        if [ -s logs/bench_nb101.log ]; then
            echo "### dasnas bench --device cuda --space nb101 --cells ${NB101_CELLS:-300}"
            echo
            grep '^{' logs/bench_nb101.log | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("**NB101: %.1f cells/s = %.0f cells/hour** on %s; all 423,624 cells: %.1f h on this GPU, %.1f h on 8\n" % (d["cells_per_s"], 3600*d["cells_per_s"], d.get("gpu","?"), 423624/d["cells_per_s"]/3600, 423624/d["cells_per_s"]/3600/8))' 2>/dev/null
            echo
        fi
        if [ -s logs/measures_cuda.jsonl ] && [ -s logs/measures_cpu.jsonl ]; then
            echo "### Training-free measures: dasnas score --sample 20 --batch 64 --measures $gpu_measures"
            echo
            python3 -c '
import json, sys
def load(p):
    return {d["arch"]: d for d in map(json.loads, open(p))}
gpu, cpu = load("logs/measures_cuda.jsonl"), load("logs/measures_cpu.jsonl")
ms = lambda t: sum(d["ms"] for d in t.values()) / max(len(t), 1)
print("ms per cell, every measure and the scores: GPU %.1f, CPU %.1f (%d cells)\n" % (ms(gpu), ms(cpu), len(gpu)))
names = [k for k in sys.argv[1].split(",")]
print("| measure | largest relative GPU-CPU difference |\n|---|---|")
for k in names:
    diffs = [abs(g[k] - cpu[a][k]) / max(abs(cpu[a][k]), 1e-30) for a, g in gpu.items()
             if a in cpu and g.get(k) is not None and cpu[a].get(k) is not None]
    print("| %s | %s |" % (k, "%.1e" % max(diffs) if diffs else "-"))
print()
' "$gpu_measures" 2>/dev/null
        fi
        if [ -s logs/bench_train.log ]; then
            echo "### dasnas bench --device cuda --train-steps 50 --train-batch 64 --cells 16"
            echo
            echo '```'
            cat logs/bench_train.log
            echo '```'
            echo
        fi
        if [ -s logs/torch_train.log ]; then
            echo "### PyTorch training on the GPU, 4 of the same cells, 50 steps at batch 64"
            echo
            echo '```'
            cat logs/torch_train.log
            echo '```'
            echo
        fi
        if [ ${#failed_names[@]} -gt 0 ]; then
            echo "## Failures"
            echo
            for name in "${failed_names[@]}"; do
                echo "### $name (logs/$name.log)"
                echo
                echo '```'
                grep -E -A3 "panicked|^error|ERROR SUMMARY|FAILED|failures:" "logs/$name.log" 2>/dev/null | grep -v "^--$" | head -n 40
                echo '```'
                echo
            done
        fi
        echo
        if [ "$failed" -eq 0 ]; then echo "**all passed**"; else echo "**$failed failed**"; fi
    } > "$report"
    if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
        cp "$report" "$OUT/report.md"
        tar czf "$OUT/logs.tar.gz" logs 2>/dev/null
    fi
}
trap write_report EXIT

# 1. NVRTC: the library the kernels are compiled with, named explicitly.
pick_nvrtc() {
    local d
    for d in "${NVRTC_LIB:-}" "$here/nvrtc" \
        $(python3 -c 'import nvidia, os; [print(os.path.join(p, "cu13", "lib")) for p in nvidia.__path__]' 2>/dev/null) \
        /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        [ -n "$d" ] && [ -e "$d/libnvrtc.so.13" ] && { echo "$d/libnvrtc.so.13"; return; }
    done
    find / -name 'libnvrtc.so.13' -not -path '/proc/*' 2>/dev/null | head -n 1
}
nv=$(pick_nvrtc)
if [ -n "$nv" ]; then
    export DASNAS_NVRTC=$nv
    mkdir -p nvrtc-link
    ln -sf "$nv" nvrtc-link/libnvrtc.so
    ln -sf "$nv" nvrtc-link/libnvrtc.so.13
    export LD_LIBRARY_PATH="$(dirname "$nv")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# Runs one check: name, timeout, command...; records result and counts.
check() {
    local name=$1 t=$2; shift 2
    local start; start=$(now)
    timeout "$t" "$@" > "logs/$name.log" 2>&1
    local rc=$?
    local secs; secs=$(since "$start")
    local counts; counts=$(grep -E "^test result" "logs/$name.log" | awk '{p+=$4; f+=$6; i+=$8} END { if (NR) printf "%d / %d / %d", p, f, i; else printf "-" }')
    local status
    if [ "$rc" -eq 0 ]; then status=passed
    elif [ "$rc" -eq 124 ]; then status="FAILED (timeout ${t}s)"
    else status="FAILED (exit $rc)"; fi
    if [ "$rc" -ne 0 ]; then failed=$((failed + 1)); failed_names+=("$name"); fi
    rows+=("$name|$status|$counts|$secs")
}

# 2. What the machine is.
check devices 120 ./dasnas devices

# 3. The tests: GPU variants and plain tests, not the emulated ones.
for t in tests/*; do
    check "$(basename "$t")" "$timeout_s" "$t" --include-ignored --skip emulated "$@"
done

# 4. compute-sanitizer, when asked for and present.
if [ "${SANITIZE:-0}" = 1 ]; then
    if command -v compute-sanitizer >/dev/null; then
        for tool in memcheck racecheck; do
            check "sanitizer-$tool-kernels" "${SAN_TIMEOUT:-120}" compute-sanitizer --tool "$tool" \
                --error-exitcode 99 tests/gpu --include-ignored --skip emulated --test-threads 1 \
                kernels::
            check "sanitizer-$tool-ops" "${SAN_TIMEOUT:-120}" compute-sanitizer --tool "$tool" \
                --error-exitcode 99 tests/lib --include-ignored --skip emulated --test-threads 1 \
                relu_is_bit_identical add_is_bit_identical pool_matches_cpu linear_matches_cpu
        done
    else
        rows+=("compute-sanitizer|not on this machine|-|0")
    fi
fi

# 5. Throughput, then the PyTorch reference on the same cells.
for lanes in 4 8; do
    check "bench_l$lanes" 300 ./dasnas bench --device cuda --lanes "$lanes" --cells "$bench_cells"
done
check bench_train 300 ./dasnas bench --device cuda --train-steps 50 --train-batch 64 --cells 16
# NB101 cells/hour on one GPU (whole-space planning: 423,624 cells).
check bench_nb101 240 ./dasnas bench --device cuda --space nb101 --cells "${NB101_CELLS:-300}"
# The training-free measures on the GPU beside the CPU, on the same 20
# cells at B = 64.
gpu_measures=l2_norm,grad_norm,snip,plain,fisher,jacov,epe_nas,zico,synflow,meco,meco_opt,zen,az_expressivity,az_progressivity,az_trainability
check measures_cuda 300 ./dasnas score --device cuda --sample 20 --seed 0 --batch 64 --measures "$gpu_measures" --out logs/measures_cuda.jsonl
check measures_cpu 300 ./dasnas score --device cpu --sample 20 --seed 0 --batch 64 --measures "$gpu_measures" --out logs/measures_cpu.jsonl
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    timeout 120 ./dasnas score --sample 51 --seed 0 --device cuda > logs/sample51.jsonl 2>logs/sample51.err
    python3 -c 'import json; [print(json.loads(l)["arch"]) for l in open("logs/sample51.jsonl")]' > logs/archs51.txt
    check torch 300 python3 torch_reference.py logs/archs51.txt --device cuda
    : > logs/torch_train.log
    for arch in $(head -n 4 logs/archs51.txt); do
        timeout 120 python3 torch_train_bench.py "$arch" --device cuda --steps 50 --batch 64 2>&1 | tail -n 1 >> logs/torch_train.log
    done
else
    rows+=("PyTorch reference|not run: torch does not see a GPU|-|0")
fi

# 5b. The Python package: the wheel unpacked (a wheel is a zip), on the path.
wheel=$(ls wheel/dasnas-*.whl 2>/dev/null | head -n 1)
if [ -n "$wheel" ]; then
    rm -rf pylib && python3 -m zipfile -e "$wheel" pylib
    check python_gpu_smoke 300 env PYTHONPATH="$here/pylib" python3 python_gpu_smoke.py --cells 40
else
    rows+=("python_gpu_smoke|not run: the bundle has no wheel|-|0")
fi

write_report
cat "$report"
[ "$failed" -eq 0 ]
RUN
chmod +x "$out/run.sh"
echo "gpu-bundle: $(du -sh "$out" | cut -f1) in $out/:" >&2
ls -la "$out" "$out/tests" >&2
