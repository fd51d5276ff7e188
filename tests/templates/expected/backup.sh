#!/bin/sh
# #
# Ansible managed
#
set -eu
TARGET=s3://backups/shop
STAMP=$(date +%Y%m%d)
tar -czf "/var/backups/$(basename /etc)-$STAMP.tar.gz" --exclude='*.tmp' --exclude='cache/*' /etc
tar -czf "/var/backups/$(basename /srv/shop)-$STAMP.tar.gz" --exclude='*.tmp' --exclude='cache/*' /srv/shop
tar -czf "/var/backups/$(basename '/home/user with space')-$STAMP.tar.gz" --exclude='*.tmp' --exclude='cache/*' '/home/user with space'
find /var/backups -mtime +14 -delete
# runs at minute 32
