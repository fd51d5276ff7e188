#!/bin/sh
# Render every template of the corpus with Ansible's own template module into
# expected/NAME (NAME.j2 without .j2), which tests/template_corpus.rs compares toyc's
# output with, byte for byte, on a real host. CI does not need Ansible; run this after
# adding or changing a template, and commit what it writes.
#
# Needs ansible-core 2.19.14 with Jinja2 3.1.6 (ANSIBLE points at its `ansible`):
#   python3 -m venv /tmp/j2 && /tmp/j2/bin/pip install jinja2==3.1.6 pyyaml ansible-core==2.19.14 \
#       passlib==1.7.4 bcrypt==4.0.1   (password_hash; passlib 1.7.4 fails with bcrypt 4.1+)
# One command renders them all: a play of one `template` task looping over the corpus.
set -eu
cd "$(dirname "$0")"
ANSIBLE_PLAYBOOK=${ANSIBLE_PLAYBOOK:-/tmp/j2/bin/ansible-playbook}
rm -rf expected
mkdir expected
cat > .regenerate.yml <<'PLAY'
- hosts: h1
  connection: local
  gather_facts: false
  tasks:
    - name: render the corpus
      ansible.builtin.template:
        src: "{{ item | basename }}"
        dest: "{{ playbook_dir }}/expected/{{ item | basename | regex_replace('\\.j2$', '') }}"
      loop: "{{ query('ansible.builtin.fileglob', playbook_dir ~ '/templates/*.j2') | reject('search', '/_') | sort }}"
PLAY
# loopcontrols is Jinja2's extension for `break`/`continue`, which toyc always allows.
ANSIBLE_JINJA2_EXTENSIONS=jinja2.ext.loopcontrols \
ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False \
ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=False \
    "$ANSIBLE_PLAYBOOK" -i inventory.yml .regenerate.yml \
    -e @vars.yml -e @facts.yml -e ansible_python_interpreter=/usr/bin/python3 > .regenerate.log || { cat .regenerate.log; exit 1; }
rm -f .regenerate.yml
