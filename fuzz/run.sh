#!/usr/bin/env bash
# Runs every fuzz target of roomd for a fixed number of executions, then
# minimises its corpus. Not part of CI: a full run takes a few minutes.
#
# Each target starts from fuzz/corpus/<target>/ and adds what it finds
# there; `cargo fuzz cmin` then keeps only the inputs that add coverage.
# A crash or failed property leaves its input in fuzz/artifacts/<target>/
# and makes the script exit with status 1 after the remaining targets ran.
#
# Usage: fuzz/run.sh [target...]
# Environment: RUNS (executions per target, default 200000), SEED (default 1).
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); a stable
# toolchain works because the targets run without a sanitizer.

set -euo pipefail

cd "$(dirname "$0")"

runs="${RUNS:-200000}"
seed="${SEED:-1}"
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    targets=(acl_entry update_document filter property_value)
fi
logs="target/fuzz-logs"
mkdir -p "$logs"

count_files() {
    find "$1" -type f | wc -l
}

cargo fuzz build --sanitizer none

failed=()
printf '%-16s %8s %8s %8s %8s %8s  %s\n' target runs seconds before found kept result
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    mkdir -p "$corpus"
    before=$(count_files "$corpus")

    start=$SECONDS
    result=ok
    if ! cargo fuzz run "$target" --sanitizer none "$corpus" -- \
        -runs="$runs" -seed="$seed" -len_control=0 -print_final_stats=1 \
        >"$logs/$target.log" 2>&1; then
        result="FAILED, see $logs/$target.log and artifacts/$target/"
        failed+=("$target")
    fi
    seconds=$((SECONDS - start))
    found=$(count_files "$corpus")

    # Without hit counters, cmin keeps one input per covered edge rather
    # than one per hit count, which keeps the corpus to a few hundred files.
    cargo fuzz cmin "$target" --sanitizer none "$corpus" -- -use_counters=0 \
        >"$logs/$target.cmin.log" 2>&1
    kept=$(count_files "$corpus")

    printf '%-16s %8s %8s %8s %8s %8s  %s\n' \
        "$target" "$runs" "$seconds" "$before" "$found" "$kept" "$result"
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "failed targets: ${failed[*]}" >&2
    exit 1
fi
