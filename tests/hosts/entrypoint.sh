#!/bin/sh
# Entry point of the toyc test-host image (installed as /usr/local/sbin/toyc-entrypoint).
# Prepares the host like a freshly provisioned server, then runs sshd in the
# foreground as the container's main process.
set -eu

# The image ships without host keys so that every container gets its own, like
# a real host. The key is kept across `docker stop`/`docker start` (the container
# filesystem survives), again like a real host across a reboot.
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
    rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub
    ssh-keygen -q -t ed25519 -N '' -C "root@$(hostname)" -f /etc/ssh/ssh_host_ed25519_key
fi

# sshd refuses to start without its privilege-separation directory.
install -d -m 0755 -o root -g root /run/sshd

# The harness bind-mounts its client public key read-only; sshd's StrictModes
# wants the copies owned by the account and not writable by others.
if [ -f /toyc/authorized_keys ]; then
    install -d -m 0700 -o root -g root /root/.ssh
    install -m 0600 -o root -g root /toyc/authorized_keys /root/.ssh/authorized_keys
    install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
    install -m 0600 -o deploy -g deploy /toyc/authorized_keys /home/deploy/.ssh/authorized_keys
else
    echo "toyc-entrypoint: /toyc/authorized_keys is not mounted: nobody can log in" >&2
fi

# -D: stay in the foreground as PID 1; -e: log to stderr, so `docker logs` shows it.
exec /usr/sbin/sshd -D -e
