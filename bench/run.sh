#!/usr/bin/env bash
# One command for the benchmark: builds toyc (release) and the test-host image, installs
# the peers (ansible-core and pyinfra from PyPI, at the versions shared/bench/peers
# measured) into a venv under bench/.work, then measures everything in one run.
# Options pass to bench.py (bench.py --help):
#   bench/run.sh                    # everything (about 1 h): N=10 and N=50 on container hosts, toyc,
#                                   # pyinfra and Ansible at RTT 0, 20 and 80 ms, the deploy example;
#                                   # then N=200 and N=480 on loopback sshd hosts, toyc beside plain ssh
#   bench/run.sh --sizes 10 --reps 3 --rtt 0 --no-ansible --no-scale --max-wait 0   # a quick iteration
#   bench/run.sh --scale            # only the scale runs
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
case " $* " in *" --no-scale "*) ;; *)
    # the scale runs' loopback hosts are sshd daemons on this machine; installed without
    # starting the system's own sshd (policy-rc.d), which would take port 22
    if [ ! -x /usr/sbin/sshd ]; then
        policy=/usr/sbin/policy-rc.d
        made=
        [ -e $policy ] || { printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; made=1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-server >&2
        [ -z "$made" ] || rm -f $policy
    fi ;;
esac
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
