#!/usr/bin/env bash
# One command for the benchmark: builds toyc (release) and the test-host image, installs
# the peers (ansible-core and pyinfra from PyPI, at the versions shared/bench/peers
# measured) into a venv under bench/.work, then measures everything in one run.
# Options pass to bench.py:
#   bench/run.sh                              # N=10 and N=50: toyc, pyinfra, Ansible
#   bench/run.sh --sizes 10 --reps 3 --no-ansible --max-wait 0   # a quick iteration
#   bench/run.sh --rtt 0,20,80                # every case again 20 and 80 ms away (delay_proxy.py)
#   bench/run.sh --scale --rtt 0,80           # N=200 and N=480: toyc beside plain ssh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
peers=$(cd "${TOYC_BENCH_PEERS:-$here/../../shared/bench/peers}" 2>/dev/null && pwd) || {
    echo "bench: the peers' workload is not at ../shared/bench/peers (beside the repository)" >&2
    exit 1
}
pins="ansible-core==2.19.14 pyinfra==3.10.0" # the versions of $peers/RESULTS.md
venv=$here/.work/venv
if [ ! -x "$venv/bin/pyinfra" ] || [ ! -x "$venv/bin/ansible-playbook" ]; then
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install -q $pins
fi
cargo build --release --locked --bin toyc
tests/hosts/build-image.sh >/dev/null
{
    echo "date: $(date -u +%FT%TZ)"
    echo "machine: $(nproc) cores, $(free -h | awk '/Mem:/ {print $2}') memory, kernel $(uname -r)"
    echo "openssh: $(ssh -V 2>&1)"
    echo "toyc: $(target/release/toyc --version)"
    echo "peers: $peers; $("$venv/bin/pip" list 2>/dev/null | grep -iE '^(ansible-core|pyinfra|paramiko|gevent) ' | tr -s ' ' | paste -sd, -)"
} | tee "$here/.work/versions.txt" >&2
trap '"$here/hosts.sh" stop' EXIT
TOYC_BENCH_PEERS=$peers python3 "$here/bench.py" "$@"
