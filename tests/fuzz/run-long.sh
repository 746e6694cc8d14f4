#!/usr/bin/env bash
# The dedicated fuzz run of issue 6: at least 1,000,000 inputs per parser (RUNS, default
# 2,000,000). Output also in tests/out/fuzz/long.log.
# Takes a few minutes per target on a busy 2-core machine; one core at a time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/../out/fuzz"
RUNS=${RUNS:-2000000} bash "$here/run.sh" 2>&1 | tee "$here/../out/fuzz/long.log"
