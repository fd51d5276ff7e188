#!/usr/bin/env python3
"""Print the coverage tables of README.md: which corpus templates use each filter, test
and magic variable. Run after changing the corpus and paste its output into README.md."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
FILTERS = """b64decode b64encode basename bool checksum combine comment dict2items dirname
expanduser extract flatten from_json from_yaml hash human_readable human_to_bytes items2dict
mandatory md5 password_hash quote regex_escape regex_findall regex_replace regex_search
relpath sha1 splitext strftime subelements ternary to_datetime to_json to_nice_json
to_nice_yaml to_uuid to_yaml type_debug union intersect difference symmetric_difference zip
zip_longest product permutations combinations random shuffle log pow root
abs attr batch capitalize center default d dictsort escape e filesizeformat first float
forceescape format groupby indent int items join last length count list lower map max min
pprint reject rejectattr replace reverse round safe select selectattr slice sort string
striptags sum title tojson trim truncate unique upper urlencode urlize wordcount wordwrap
xmlattr""".split()
TESTS = """match search regex version version_compare subset superset contains any all truthy
falsy file directory link exists abs boolean defined undefined none number integer float
string sequence mapping iterable odd even divisibleby eq ne lt gt le ge equalto sameas in
lower upper true false filter test""".split()
MAGIC = """inventory_hostname inventory_hostname_short group_names groups hostvars ansible_host
ansible_play_hosts ansible_play_hosts_all ansible_play_batch play_hosts role_path playbook_dir
template_path template_fullpath template_destpath template_host template_uid
template_run_date ansible_managed ansible_facts ansible_hostname ansible_fqdn ansible_domain
ansible_nodename ansible_system ansible_kernel ansible_architecture ansible_distribution
ansible_distribution_version ansible_distribution_major_version ansible_distribution_release
ansible_os_family ansible_pkg_mgr ansible_service_mgr ansible_processor_vcpus
ansible_processor_cores ansible_memtotal_mb ansible_memfree_mb ansible_user_id
ansible_default_ipv4 ansible_all_ipv4_addresses""".split()

templates = {}
tdir = os.path.join(HERE, "templates")
for name in sorted(os.listdir(tdir)):
    with open(os.path.join(tdir, name), encoding="utf-8") as f:
        templates[name] = f.read()


def users(pattern):
    return [n for n, text in templates.items() if re.search(pattern, text)]


def table(title, names, pattern):
    print(f"| {title} | templates |")
    print("|---|---|")
    for name in names:
        found = users(pattern(name))
        shown = ", ".join(f"`{n}`" for n in found[:4]) + (f" (+{len(found) - 4})" if len(found) > 4 else "")
        print(f"| `{name}` | {shown or '**not covered**'} |")
    print()


table("filter", FILTERS, lambda n: r"\|\s*" + re.escape(n) + r"\b|map\('" + re.escape(n) + r"'")
table("test", TESTS, lambda n: r"\bis\s+(not\s+)?" + re.escape(n) + r"\b|(select|reject)(attr)?\([^)]*'" + re.escape(n) + r"'")
table("variable", MAGIC, lambda n: r"\b" + re.escape(n) + r"\b")
