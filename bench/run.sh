#!/usr/bin/env bash
# One command for the benchmark: builds toyc (release) and the test-host image,
# then measures everything in one run. Options pass to bench.py:
#   bench/run.sh                       # N=10 and N=50, 5 repetitions
#   bench/run.sh --sizes 10 --reps 3
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
cargo build --release --locked --bin toyc
tests/hosts/build-image.sh >/dev/null
{
    echo "date: $(date -u +%FT%TZ)"
    echo "machine: $(nproc) cores, $(free -h | awk '/Mem:/ {print $2}') memory, kernel $(uname -r)"
    echo "openssh: $(ssh -V 2>&1)"
    echo "toyc: $(target/release/toyc --version)"
} | tee /dev/null >&2
trap '"$here/hosts.sh" stop' EXIT
python3 "$here/bench.py" "$@"
