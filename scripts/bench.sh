#!/usr/bin/env bash
# Runs the benchmark (bench/run.sh; see docs/PERFORMANCE.md). Arguments are passed through.
exec "$(dirname "${BASH_SOURCE[0]}")/../bench/run.sh" "$@"
