#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, 30 by default), starting from
# the corpus kept in fuzz/corpus. New inputs go to a scratch directory, so the checkout stays
# as it is; a crash stops the run, fails it, and leaves its input in fuzz/artifacts/<target>/
# (make it a regression test in the crate, then add it to the corpus). FUZZ_TARGETS picks
# some targets only.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-30}"
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/genro-asgi/target}-fuzz"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cargo +nightly fuzz build --target-dir "$target_dir"
for target in ${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}; do
  mkdir -p "$scratch/$target"
  echo "fuzzing $target for ${seconds}s"
  # The run's own status decides, not the filter's.
  set +e
  cargo +nightly fuzz run --target-dir "$target_dir" "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>&1 | grep -E '^(Done|stat::number_of_executed_units)|panicked|ERROR|SUMMARY|artifact'
  status=${PIPESTATUS[0]}
  set -e
  [ "$status" -eq 0 ] || { echo "fuzz target $target failed; its input is in fuzz/artifacts/$target/" >&2; exit 1; }
done
