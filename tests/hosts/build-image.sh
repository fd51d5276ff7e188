#!/usr/bin/env bash
# Builds the toyc test-host image (a Debian bookworm with OpenSSH) if it is missing,
# and prints its tag as the last line of stdout.
#
# No container registry is reachable where the tests run, so the image cannot be
# pulled or built FROM a base image: the root filesystem is made with debootstrap
# from Debian's mirror and turned into an image with `docker import`.
#
# The tag is toyc-testhost:<hash>, <hash> being the first 12 hex digits of the
# sha256 over this script, the entrypoint, the sshd config and the package list:
# later runs reuse the image (this script then takes well under a second), and any
# change to the inputs builds a new one. Safe to run concurrently: builds are
# serialised with flock.
#
# Environment:
#   TOYC_DEBIAN_MIRROR  Debian mirror for debootstrap (default http://deb.debian.org/debian)
set -euo pipefail

# Everything but the tag goes to stderr, so callers can take stdout as the answer.
exec 3>&1 1>&2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=bookworm
mirror=${TOYC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3: so Ansible can be benchmarked against the same hosts;
# git: so a host can serve a bare repository over ssh.
packages=openssh-server,sudo,python3,iproute2,procps,git,ca-certificates,tar,gzip

hash=$({
    for f in "$here/build-image.sh" "$here/entrypoint.sh" "$here/sshd_config"; do
        printf '== %s\n' "$(basename "$f")"
        cat "$f"
    done
    printf '== packages\n%s\n%s\n' "$suite" "$packages"
} | sha256sum | cut -c1-12)
tag=toyc-testhost:$hash

have_image() { docker image inspect "$tag" >/dev/null 2>&1; }

finish() {
    docker tag "$tag" toyc-testhost:latest
    echo "$tag" >&3
    exit 0
}

# Fast path, without the lock: the image is already there.
if have_image; then finish; fi

# Root is needed for debootstrap, chroot and file ownership in the rootfs.
if [ "$(id -u)" -eq 0 ]; then as_root() { "$@"; }; else as_root() { sudo "$@"; }; fi

exec 9>/tmp/toyc-testhost.lock
echo "build-image: taking /tmp/toyc-testhost.lock (another build may hold it)" >&2
flock 9
# Another process may have built it while we waited for the lock.
if have_image; then finish; fi

start=$(date +%s)
echo "build-image: building $tag (debootstrap $suite, a few minutes)"

if ! command -v debootstrap >/dev/null 2>&1; then
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap debian-archive-keyring
fi

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/toyc-testhost.XXXXXX")
cleanup() {
    # An interrupted debootstrap leaves /proc and /sys mounted inside the rootfs:
    # unmount them (deepest first) before deleting, and never cross into another
    # filesystem while deleting.
    if [ -n "${tmp:-}" ] && [ -d "$tmp" ]; then
        awk -v t="$tmp/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
            while read -r m; do as_root umount -l "$m" || true; done
        as_root rm -rf --one-file-system "$tmp"
    fi
}
trap cleanup EXIT
root=$tmp/rootfs

as_root debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror"

# The non-root account of the tests: password field "*" (not "!" which marks the
# account locked, and sshd without PAM refuses locked accounts even for pubkeys).
as_root chroot "$root" useradd --create-home --shell /bin/bash --password '*' deploy
printf 'deploy ALL=(ALL) NOPASSWD:ALL\n' | as_root tee "$root/etc/sudoers.d/deploy" >/dev/null
as_root chmod 0440 "$root/etc/sudoers.d/deploy"
as_root chroot "$root" visudo -c -q

as_root install -m 0644 "$here/sshd_config" "$root/etc/ssh/sshd_config"
as_root install -m 0755 "$here/entrypoint.sh" "$root/usr/local/sbin/toyc-entrypoint"
as_root install -d -m 0755 "$root/run/sshd"
# Catch a broken sshd_config now rather than at the first container start
# (sshd -t needs a host key: use a throwaway one).
as_root chroot "$root" sh -c 'ssh-keygen -q -t ed25519 -N "" -f /tmp/k && sshd -t -o HostKey=/tmp/k; rc=$?; rm -f /tmp/k /tmp/k.pub; exit $rc'
# Host keys made by openssh-server's postinst would be shared by every container.
as_root sh -c "rm -f '$root'/etc/ssh/ssh_host_*"
# Each container should look like its own machine.
as_root sh -c ": > '$root/etc/machine-id'"

# As in Debian's official container images: packages installed later by a test
# must not try to start services (there is no init), and need no docs.
printf '#!/bin/sh\nexit 101\n' | as_root tee "$root/usr/sbin/policy-rc.d" >/dev/null
as_root chmod 0755 "$root/usr/sbin/policy-rc.d"
printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' |
    as_root tee "$root/etc/dpkg/dpkg.cfg.d/toyc-nodoc" >/dev/null

# Keep the image small: apt lists and caches are rebuilt by `apt-get update`;
# translations (47 MB) and docs serve nobody in a test host.
as_root sh -c "cd '$root' && rm -rf var/lib/apt/lists/* var/cache/apt/* var/cache/debconf/*-old \
    usr/share/man/* usr/share/info/* && find usr/share/locale -mindepth 1 ! -name locale.alias -delete && \
    find var/log -type f -delete && \
    find usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete"

as_root tar -C "$root" --numeric-owner -c . |
    docker import --change 'CMD ["/usr/local/sbin/toyc-entrypoint"]' - "$tag" >/dev/null

echo "build-image: built $tag in $(($(date +%s) - start)) s"
finish
