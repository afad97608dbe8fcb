#!/usr/bin/env bash
# Fuzz smoke test: build every cargo-fuzz target in fuzz/ and run each one
# for FUZZ_SECONDS seconds (default 20), starting from the seed corpora in
# fuzz/corpus/<target>/. Exits non-zero if any target fails to build, crashes,
# trips an assertion, leaks, or times out. Needs the nightly toolchain.
#
# Long run (one target, hours, all cores; new inputs kept in fuzz/corpus):
#   cd fuzz && cargo +nightly fuzz run <target> -- -max_total_time=14400 -jobs=$(nproc) -workers=$(nproc)
# then minimise what it found:
#   cd fuzz && cargo +nightly fuzz cmin <target>
# A crash is saved under fuzz/artifacts/<target>/; replay it with
#   cd fuzz && cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-...
#
# Environment:
#   FUZZ_SECONDS      seconds per target (default 20)
#   FUZZ_TARGETS      space-separated subset of targets (default: all)
#   FUZZ_TOOLCHAIN    toolchain for cargo-fuzz (default: nightly)
#   CARGO_TARGET_DIR  honoured (e.g. a scratch dir so the main build is untouched)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-20}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    echo "== installing the $toolchain toolchain"
    rustup toolchain install "$toolchain" --profile minimal
fi

targets="${FUZZ_TARGETS:-$(cargo "+$toolchain" fuzz list)}"

echo "== building fuzz targets"
cargo "+$toolchain" fuzz build

# New inputs go to a throwaway corpus dir so the checked-in seeds stay small.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
for t in $targets; do
    echo "== fuzzing $t for ${seconds}s"
    mkdir -p "$scratch/$t"
    set +e
    cargo "+$toolchain" fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$scratch/$t.log" 2>&1
    status=$?
    set -e
    grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|SUMMARY)' "$scratch/$t.log" || true
    if [ "$status" -ne 0 ]; then
        echo "!! $t FAILED (exit $status); last lines of its log:"
        tail -n 40 "$scratch/$t.log"
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "== fuzz smoke FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "== fuzz smoke passed: $(echo $targets | wc -w) targets, ${seconds}s each"
