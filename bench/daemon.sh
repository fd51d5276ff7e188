#!/usr/bin/env bash
# One command for the daemon's benchmark (bench/README.md, "The daemon"): builds toyc
# (release) and the test-host image, installs adnanh/webhook (Debian's `webhook`) and
# PostgreSQL when missing, then measures in one run: webhooks accepted by toyc with
# SQLite, toyc with PostgreSQL and webhook; push to first host changed for 1 and 20 hosts.
# Options pass to daemon_bench.py:
#   bench/daemon.sh                                      # everything (about 5 min here)
#   bench/daemon.sh --reps 1 --no-first-host             # the webhooks only, once
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
missing=()
command -v webhook >/dev/null || missing+=(webhook)
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y -q "${missing[@]}" >/dev/null
fi
cargo build --release --locked --bin toyc
tests/hosts/build-image.sh >/dev/null
mkdir -p "$here/.work/daemon"
{
    echo "date: $(date -u +%FT%TZ)"
    echo "machine: $(nproc) cores, $(free -h | awk '/Mem:/ {print $2}') memory, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "toyc: $(target/release/toyc --version) ($(git rev-parse --short HEAD))"
    echo "webhook: $(webhook -version 2>&1 | head -1)"
    echo "python: $(python3 --version 2>&1)"
} | tee "$here/.work/daemon/versions.txt" >&2
trap '"$here/hosts.sh" stop' EXIT
python3 "$here/daemon_bench.py" "$@"
