#!/bin/sh
id -u alice >/dev/null 2>&1 || useradd --uid 1001 --shell /bin/bash --groups admins,sshusers alice
id -u bob >/dev/null 2>&1 || useradd --uid 1002 --shell /bin/zsh --groups sshusers bob
usermod --lock bob
id -u carol >/dev/null 2>&1 || useradd --uid 1003 --shell /bin/sh carol
