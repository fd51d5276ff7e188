#!/usr/bin/env bash
# Container hosts for the benchmarks, from the test-host image (tests/hosts/):
#   hosts.sh start N   start bench-h1..hN, write .work/inventory.yml, .work/known_hosts, .work/hosts.list
#   hosts.sh stop      remove them
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=$here/.work
label=toyc-bench=1

stop_hosts() {
    ids=$(docker ps -aq --filter "label=$label")
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
}

start_hosts() {
    local n=$1 tag i c addr
    stop_hosts
    tag=$("$here/../tests/hosts/build-image.sh" | tail -1)
    mkdir -p "$W"
    [ -f "$W/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C toyc-bench -f "$W/id_ed25519"
    cp "$W/id_ed25519.pub" "$W/authorized_keys"
    for i in $(seq 1 "$n"); do
        docker run -d --hostname "h$i" --name "toyc-bench-h$i" --label "$label" \
            -v "$W/authorized_keys:/toyc/authorized_keys:ro" "$tag" >/dev/null &
    done
    wait
    : > "$W/known_hosts"; : > "$W/hosts.list"
    {
        echo "ssh: {user: root, identity: $W/id_ed25519, known_hosts: $W/known_hosts}"
        echo "hosts:"
    } > "$W/inventory.yml"
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
        echo "$addr $key" >> "$W/known_hosts"
        echo "h$i $addr" >> "$W/hosts.list"
        echo "  h$i: {address: $addr, vars: {root: /tmp/toybench/h$i}}" >> "$W/inventory.yml"
    done
    cp "$W/known_hosts" "$W/known_hosts.direct"
    echo "started $n hosts" >&2
}

case "${1:-}" in
    start) start_hosts "${2:?usage: hosts.sh start N}" ;;
    stop) stop_hosts ;;
    *) echo "usage: $0 start N | stop" >&2; exit 2 ;;
esac
