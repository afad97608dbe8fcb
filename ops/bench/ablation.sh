#!/usr/bin/env bash
# The cost ladder in BENCHMARKS.md: capgate as shipped, capgate without its
# audit log, and capgate without its audit log and enforcement (pricing,
# ledger, duplicate guard), each side by side with nginx on the same load,
# per core (or on all cores). The two variants are throwaway builds of HEAD
# with the patches beside this script applied, in git worktrees under $WORK
# (removed after), built in target/ablation so that later runs reuse the
# dependencies.
#
#   bash ops/bench/ablation.sh                         # per core, interval durability
#   bash ops/bench/ablation.sh --durability sync       # args given replace the default
#                                                      # --durability interval, for every run
#   LAYOUT=all bash ops/bench/ablation.sh              # all cores instead of one
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
WORK=${WORK:-$(mktemp -d)}
variants=(audit audit-and-enforcement)
cleanup() { for v in "${variants[@]}"; do git -C "$repo" worktree remove --force "$WORK/$v" 2>/dev/null || true; done; }
trap cleanup EXIT

cargo build --release --locked
bins=("$repo/target/release/capgate")
for v in "${variants[@]}"; do
  git worktree add --quiet --detach "$WORK/$v" HEAD
  git -C "$WORK/$v" apply "$repo/ops/bench/ablate-$v.patch"
  (cd "$WORK/$v" && CARGO_TARGET_DIR="$repo/target/ablation" cargo build --release --locked --quiet)
  cp "$repo/target/ablation/release/capgate" "$WORK/capgate-$v"
  bins+=("$WORK/capgate-$v")
done

args=(--keys 1000 --connections 64 --duration 10 --rounds 3 --cap-usd 1000000)
[ "${LAYOUT:-core}" = all ] || args+=(--pin --workers 1)
[ $# -gt 0 ] || set -- --durability interval
names=("as shipped" "without the audit log" "without the audit log and enforcement")
for i in "${!bins[@]}"; do
  echo "== capgate ${names[$i]}"
  "${bins[$i]}" bench "${args[@]}" "$@" | grep -E '^capgate/nginx throughput|^- '
done
