//! The facts Ansible's `setup` module gives templates (`ansible_hostname`,
//! `ansible_distribution`, `ansible_default_ipv4.address`, ...), gathered by one shell
//! script in the same round trip as toyc's own basic facts, and only for hosts whose
//! templates ask for them (see [`crate::context::HostContext::template_facts`]).
//!
//! Names and values follow ansible-core 2.19's Linux fact collectors
//! (`module_utils/facts/system/distribution.py`, `hardware/linux.py`,
//! `network/linux.py`); the facts a template can use are listed in [`FACT_NAMES`].

use serde_json::{json, Map, Value};

use crate::context::BasicFacts;

/// The facts gathered, as the names templates use (`ansible_` + the fact's name).
pub const FACT_NAMES: &[&str] = &[
    "ansible_facts",
    "ansible_hostname",
    "ansible_nodename",
    "ansible_fqdn",
    "ansible_domain",
    "ansible_system",
    "ansible_kernel",
    "ansible_architecture",
    "ansible_machine",
    "ansible_distribution",
    "ansible_distribution_version",
    "ansible_distribution_major_version",
    "ansible_distribution_release",
    "ansible_os_family",
    "ansible_pkg_mgr",
    "ansible_service_mgr",
    "ansible_processor_vcpus",
    "ansible_processor_count",
    "ansible_processor_cores",
    "ansible_memtotal_mb",
    "ansible_memfree_mb",
    "ansible_swaptotal_mb",
    "ansible_user_id",
    "ansible_default_ipv4",
    "ansible_all_ipv4_addresses",
    "ansible_os_release",
];

/// One shell script printing `key=value` lines: toyc's basic facts and Ansible's.
pub const SCRIPT: &str = r#"echo "system=$(uname -s)"
echo "machine=$(uname -m)"
echo "kernel=$(uname -r)"
echo "nodename=$(uname -n)"
echo "hostname=$(hostname 2>/dev/null || uname -n)"
echo "fqdn=$(hostname -f 2>/dev/null || hostname 2>/dev/null || uname -n)"
( if [ -r /etc/os-release ]; then . /etc/os-release; fi
  echo "id=${ID:-}"; echo "version_id=${VERSION_ID:-}"; echo "codename=${VERSION_CODENAME:-}"
  echo "id_like=${ID_LIKE:-}"; echo "os_name=${NAME:-}" )
echo "debian_version=$(cat /etc/debian_version 2>/dev/null)"
echo "vcpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)"
awk '/^MemTotal:/{print "memtotal_kb=" $2} /^MemFree:/{print "memfree_kb=" $2} /^SwapTotal:/{print "swaptotal_kb=" $2}' /proc/meminfo 2>/dev/null
echo "user_id=$(id -un 2>/dev/null)"
echo "pid1=$(cat /proc/1/comm 2>/dev/null)"
echo "route=$(ip -4 route get 8.8.8.8 2>/dev/null | head -n 1)"
echo "default_if=$(awk '$2 == "00000000" {print $1; exit}' /proc/net/route 2>/dev/null)"
echo "default_gw=$(awk '$2 == "00000000" {print $3; exit}' /proc/net/route 2>/dev/null)"
echo "ipv4=$(hostname -I 2>/dev/null || hostname -i 2>/dev/null)"
"#;

/// Ansible's distribution name for an os-release `ID`.
fn distribution_name(id: &str) -> String {
    let known = [
        ("debian", "Debian"),
        ("ubuntu", "Ubuntu"),
        ("centos", "CentOS"),
        ("rhel", "RedHat"),
        ("fedora", "Fedora"),
        ("rocky", "Rocky"),
        ("almalinux", "AlmaLinux"),
        ("ol", "OracleLinux"),
        ("amzn", "Amazon"),
        ("alpine", "Alpine"),
        ("arch", "Archlinux"),
        ("opensuse-leap", "openSUSE Leap"),
        ("opensuse-tumbleweed", "openSUSE Tumbleweed"),
        ("sles", "SLES"),
        ("linuxmint", "Linux Mint"),
        ("raspbian", "Debian"),
        ("gentoo", "Gentoo"),
    ];
    match known.iter().find(|(k, _)| *k == id) {
        Some((_, name)) => (*name).to_owned(),
        None => {
            let mut chars = id.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
    }
}

/// Ansible's `os_family` for a distribution.
fn os_family(distribution: &str, id_like: &str) -> String {
    let family = match distribution {
        "Debian" | "Ubuntu" | "Linux Mint" | "Kali" | "Raspbian" => "Debian",
        "RedHat" | "CentOS" | "Fedora" | "Rocky" | "AlmaLinux" | "OracleLinux" | "Amazon" => {
            "RedHat"
        }
        "Alpine" => "Alpine",
        "Archlinux" => "Archlinux",
        "SLES" | "openSUSE Leap" | "openSUSE Tumbleweed" => "Suse",
        "Gentoo" => "Gentoo",
        _ if id_like.contains("debian") => "Debian",
        other if id_like.contains("rhel") || id_like.contains("fedora") => {
            let _ = other;
            "RedHat"
        }
        other => other,
    };
    family.to_owned()
}

fn pkg_mgr(family: &str, major: &str, distribution: &str) -> &'static str {
    match family {
        "Debian" => "apt",
        "RedHat" if distribution == "Fedora" => "dnf",
        "RedHat" => match major.parse::<u32>() {
            Ok(v) if v >= 8 => "dnf",
            _ => "yum",
        },
        "Alpine" => "apk",
        "Archlinux" => "pacman",
        "Suse" => "zypper",
        "Gentoo" => "portage",
        _ => "unknown",
    }
}

/// `0100A8C0` from `/proc/net/route` (little-endian hex) as `192.168.0.1`.
fn route_address(hex: &str) -> Option<String> {
    let n = u32::from_str_radix(hex, 16).ok()?;
    let b = n.to_le_bytes();
    Some(format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]))
}

/// Ansible's facts from [`SCRIPT`]'s output, for a caller that ran the script itself
/// outside a run (`toyc template`).
pub fn facts_from_output(output: &str) -> Map<String, Value> {
    parse(output).1
}

/// Toyc's basic facts and Ansible's, from [`SCRIPT`]'s output.
pub(crate) fn parse(output: &str) -> (BasicFacts, Map<String, Value>) {
    let mut raw = std::collections::HashMap::new();
    for line in output.lines() {
        if let Some((key, value)) = line.split_once('=') {
            raw.entry(key.trim())
                .or_insert_with(|| value.trim().to_owned());
        }
    }
    let get = |k: &str| raw.get(k).cloned().unwrap_or_default();
    let system = get("system");
    let id = get("id");
    let nodename = get("nodename");
    let hostname_full = {
        let h = get("hostname");
        if h.is_empty() {
            nodename.clone()
        } else {
            h
        }
    };
    let basic = BasicFacts {
        os: system.to_lowercase(),
        distribution: if id.is_empty() {
            system.to_lowercase()
        } else {
            id.clone()
        },
        hostname: hostname_full.clone(),
        arch: get("machine"),
    };
    let distribution = if id.is_empty() {
        system.clone()
    } else {
        distribution_name(&id)
    };
    let family = os_family(&distribution, &get("id_like"));
    let version = match (distribution.as_str(), get("debian_version")) {
        ("Debian", v) if v.chars().next().is_some_and(|c| c.is_ascii_digit()) => v,
        _ => get("version_id"),
    };
    let major = version.split('.').next().unwrap_or_default().to_owned();
    let fqdn = {
        let f = get("fqdn");
        if f.is_empty() {
            hostname_full.clone()
        } else {
            f
        }
    };
    let domain = fqdn.split_once('.').map_or("", |(_, d)| d).to_owned();
    let kb = |k: &str| get(k).parse::<u64>().map(|v| v / 1024).unwrap_or(0);
    let vcpus = get("vcpus").parse::<u64>().unwrap_or(1);
    let route = get("route");
    let word_after = |word: &str| {
        let mut words = route.split_whitespace();
        words.find(|w| *w == word)?;
        words.next().map(str::to_owned)
    };
    let interface = word_after("dev").unwrap_or_else(|| get("default_if"));
    let gateway = word_after("via").or_else(|| route_address(&get("default_gw")));
    let addresses: Vec<String> = get("ipv4")
        .split_whitespace()
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_owned)
        .collect();
    let address = word_after("src").or_else(|| addresses.first().cloned());
    let mut default_ipv4 = Map::new();
    if let Some(address) = address {
        default_ipv4.insert("address".into(), json!(address));
        default_ipv4.insert("interface".into(), json!(interface));
        default_ipv4.insert("alias".into(), json!(interface));
        if let Some(gateway) = gateway {
            default_ipv4.insert("gateway".into(), json!(gateway));
        }
    }
    let service_mgr = match get("pid1").as_str() {
        "systemd" => "systemd",
        "init" if family == "Alpine" => "openrc",
        "" => "service",
        _ => "sysvinit",
    };
    let short = hostname_full
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    let facts = json!({
        "hostname": short,
        "nodename": nodename,
        "fqdn": fqdn,
        "domain": domain,
        "system": system,
        "kernel": get("kernel"),
        "architecture": get("machine"),
        "machine": get("machine"),
        "distribution": distribution,
        "distribution_version": version,
        "distribution_major_version": major,
        "distribution_release": get("codename"),
        "os_family": family,
        "pkg_mgr": pkg_mgr(&family, &major, &distribution),
        "service_mgr": service_mgr,
        "processor_vcpus": vcpus,
        "processor_count": 1,
        "processor_cores": vcpus,
        "memtotal_mb": kb("memtotal_kb"),
        "memfree_mb": kb("memfree_kb"),
        "swaptotal_mb": kb("swaptotal_kb"),
        "user_id": get("user_id"),
        "default_ipv4": default_ipv4,
        "all_ipv4_addresses": addresses,
        "os_release": {"id": id, "version_id": get("version_id"), "name": get("os_name")},
    });
    let facts = match facts {
        Value::Object(facts) => facts,
        _ => Map::new(),
    };
    (basic, facts)
}

/// `ansible_facts` and each fact as `ansible_<name>`, as Ansible injects them.
pub fn template_vars(facts: &Map<String, Value>) -> Map<String, Value> {
    let mut vars = Map::new();
    vars.insert("ansible_facts".into(), Value::Object(facts.clone()));
    for (name, value) in facts {
        vars.insert(format!("ansible_{name}"), value.clone());
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debian_container_reads_as_ansible_reads_it() {
        let output = "system=Linux\nmachine=x86_64\nkernel=6.1.0\nnodename=web1\nhostname=web1\n\
            fqdn=web1.example.com\nid=debian\nversion_id=12\ncodename=bookworm\nid_like=\n\
            os_name=Debian GNU/Linux\ndebian_version=12.5\nvcpus=4\nmemtotal_kb=8049904\n\
            memfree_kb=1024000\nswaptotal_kb=0\nuser_id=root\npid1=sleep\n\
            route=8.8.8.8 via 172.17.0.1 dev eth0 src 172.17.0.2 uid 0\n\
            default_if=eth0\ndefault_gw=010011AC\nipv4=172.17.0.2\n";
        let (basic, facts) = parse(output);
        assert_eq!(basic.distribution, "debian");
        assert_eq!(basic.os, "linux");
        assert_eq!(facts["distribution"], "Debian");
        assert_eq!(facts["distribution_version"], "12.5");
        assert_eq!(facts["distribution_major_version"], "12");
        assert_eq!(facts["os_family"], "Debian");
        assert_eq!(facts["pkg_mgr"], "apt");
        assert_eq!(facts["memtotal_mb"], 7861);
        assert_eq!(facts["domain"], "example.com");
        assert_eq!(facts["default_ipv4"]["address"], "172.17.0.2");
        assert_eq!(facts["default_ipv4"]["gateway"], "172.17.0.1");
        let vars = template_vars(&facts);
        assert_eq!(vars["ansible_hostname"], "web1");
        assert_eq!(vars["ansible_facts"]["processor_vcpus"], 4);
    }

    #[test]
    fn without_ip_the_default_route_comes_from_proc() {
        let output = "system=Linux\nid=alpine\nversion_id=3.19.1\nroute=\ndefault_if=eth0\n\
            default_gw=010011AC\nipv4=172.17.0.3\n";
        let (_, facts) = parse(output);
        assert_eq!(facts["os_family"], "Alpine");
        assert_eq!(facts["default_ipv4"]["interface"], "eth0");
        assert_eq!(facts["default_ipv4"]["gateway"], "172.17.0.1");
        assert_eq!(facts["default_ipv4"]["address"], "172.17.0.3");
    }
}
