#!/usr/bin/env bash
# Hosts for the benchmarks:
#   hosts.sh start N             N containers bench-h1..hN from the test-host image (tests/hosts/):
#                                each its own file system, processes and address
#   hosts.sh start N --loopback  N sshd daemons on this machine, host i on its own address
#                                127.1.a.b:22 (as ../shared/bench/peers measured): cheap enough
#                                for N=480, but every host shares the controller's file system
#   hosts.sh stop                remove either kind
# Writes .work/inventory.yml, .work/known_hosts (and .direct), .work/hosts.list
# ("name address port" per line) and .work/hosts.kind (containers or loopback).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=$here/.work
label=toyc-bench=1
L=$W/loopback

stop_hosts() {
    ids=$(docker ps -aq --filter "label=$label")
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
    local f pid
    for f in "$L"/h*.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        # only our own daemon: the pid must still be an sshd started with our config
        if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$L/sshd_config"; then
            kill "$pid"
        fi
        rm -f "$f"
    done
}

keys() {
    mkdir -p "$W"
    [ -f "$W/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C toyc-bench -f "$W/id_ed25519"
    cp "$W/id_ed25519.pub" "$W/authorized_keys"
}

# Write the inventory, known_hosts and hosts.list from lines "name address port key".
write_lists() {
    local name addr port key
    : > "$W/known_hosts"; : > "$W/hosts.list"
    echo "ssh: {user: root, identity: $W/id_ed25519, known_hosts: $W/known_hosts}" > "$W/inventory.yml"
    echo "hosts:" >> "$W/inventory.yml"
    while read -r name addr port key; do
        if [ "$port" = 22 ]; then echo "$addr $key"; else echo "[$addr]:$port $key"; fi >> "$W/known_hosts"
        echo "$name $addr $port" >> "$W/hosts.list"
        echo "  $name: {address: $addr, ssh: {port: $port}, vars: {root: /tmp/toybench/$name}}" >> "$W/inventory.yml"
    done
    cp "$W/known_hosts" "$W/known_hosts.direct"
}

start_containers() {
    local n=$1 tag i c addr key
    tag=$("$here/../tests/hosts/build-image.sh" | tail -1)
    for i in $(seq 1 "$n"); do
        docker run -d --hostname "h$i" --name "toyc-bench-h$i" --label "$label" \
            -v "$W/authorized_keys:/toyc/authorized_keys:ro" "$tag" >/dev/null &
    done
    wait
    for i in $(seq 1 "$n"); do
        c=toyc-bench-h$i
        addr=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$c")
        for _ in $(seq 1 100); do
            key=$(docker exec "$c" cat /etc/ssh/ssh_host_ed25519_key.pub 2>/dev/null) && break
            sleep 0.1
        done
        for _ in $(seq 1 100); do
            (exec 3<>"/dev/tcp/$addr/22") 2>/dev/null && break
            sleep 0.1
        done
        echo "h$i $addr 22 $key"
    done | write_lists
    echo containers > "$W/hosts.kind"
}

start_loopback() {
    local n=$1 i addr key
    [ -x /usr/sbin/sshd ] || { echo "hosts.sh: --loopback needs sshd (apt-get install openssh-server)" >&2; exit 1; }
    mkdir -p "$L" /run/sshd
    [ -f "$L/host_key" ] || ssh-keygen -q -t ed25519 -N '' -C toyc-bench-host -f "$L/host_key"
    cat > "$L/sshd_config" <<CFG
HostKey $L/host_key
AuthorizedKeysFile $W/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxSessions 64
MaxStartups 1000
PrintMotd no
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
# This machine's /root/.bashrc runs 'pyenv init' (about 140 ms); Debian's bash sources
# ~/.bashrc for ssh commands when SHLVL is unset. SHLVL=1 makes these hosts behave like
# a stock host, as in ../shared/bench/peers.
SetEnv SHLVL=1
CFG
    key=$(cut -d' ' -f1,2 "$L/host_key.pub")
    for i in $(seq 1 "$n"); do
        addr=127.1.$(( (i - 1) / 200 )).$(( 10 + (i - 1) % 200 ))
        /usr/sbin/sshd -f "$L/sshd_config" -o "ListenAddress=$addr:22" -o "PidFile=$L/h$i.pid" ||
            { echo "hosts.sh: sshd for h$i on $addr:22 did not start" >&2; exit 1; }
        echo "h$i $addr 22 $key"
    done | write_lists
    echo loopback > "$W/hosts.kind"
}

case "${1:-}" in
    start)
        stop_hosts
        keys
        if [ "${3:-}" = --loopback ]; then start_loopback "${2:?}"; else start_containers "${2:?usage: hosts.sh start N [--loopback]}"; fi
        echo "started ${2} $(cat "$W/hosts.kind") hosts" >&2 ;;
    stop) stop_hosts ;;
    *) echo "usage: $0 start N [--loopback] | stop" >&2; exit 2 ;;
esac
