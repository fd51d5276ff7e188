//! The public API on realistic inventories, read from `engine/tests/fixtures/inventory/`.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inventory")
        .join(name)
}

fn load(name: &str) -> Inventory {
    Inventory::load(&fixture(name)).unwrap()
}

fn vars(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

fn names<'a>(hosts: impl IntoIterator<Item = &'a Host>) -> Vec<&'a str> {
    hosts.into_iter().map(|h| h.name.as_str()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn parse_error(text: &str, file: &str) -> String {
    Inventory::parse(text, Path::new(file))
        .unwrap_err()
        .to_string()
}

#[test]
fn toyc_yaml_site_merges_top_level_groups_and_hosts() {
    let inv = load("site.yml");
    assert_eq!(names(inv.hosts()), ["web1", "db1", "local1", "web2", "db2"]);
    let home_key = tilde::expand("~/.ssh/id_ed25519");
    assert_eq!(
        inv.host("web1").unwrap(),
        &Host {
            name: "web1".into(),
            address: "10.0.0.11".into(),
            transport: TransportKind::Ssh,
            ssh: SshParams {
                user: Some("root".into()),
                port: Some(2222),
                identity: Some(home_key.clone()),
                known_hosts: Some(PathBuf::from("/etc/toyc/known_hosts")),
            },
            sudo: true,
            groups: strings(&["web", "prod"]),
            vars: vars(json!({
                "app_port": 8081, "env": "prod", "role": "web",
                // `web` is a child of `prod`, so its `tier` wins.
                "tier": "front", "monitored": true,
            })),
        }
    );
    let web2 = inv.host("web2").unwrap();
    assert_eq!(web2.address, "web2");
    assert_eq!(web2.ssh.user.as_deref(), Some("deploy"));
    assert_eq!(web2.ssh.port, Some(2200));
    let db1 = inv.host("db1").unwrap();
    assert_eq!(
        (db1.ssh.user.as_deref(), db1.ssh.port, db1.sudo),
        (Some("postgres"), Some(2200), false)
    );
    assert_eq!(db1.vars["tier"], json!("backend"));
    let db2 = inv.host("db2").unwrap();
    assert_eq!(db2.address, "10.0.0.22");
    let local1 = inv.host("local1").unwrap();
    assert_eq!(local1.transport, TransportKind::Local);
    assert!(local1.groups.is_empty());
    assert_eq!(local1.ssh.port, Some(22));
}

#[test]
fn toyc_yaml_site_groups() {
    let inv = load("site.yml");
    let all = inv.group("all").unwrap();
    assert_eq!(
        all.hosts,
        strings(&["web1", "db1", "local1", "web2", "db2"])
    );
    assert_eq!(all.children, strings(&["prod"]));
    assert_eq!(all.vars, vars(json!({"app_port": 8080, "env": "prod"})));
    assert_eq!(
        inv.group("prod").unwrap(),
        &Group {
            name: "prod".into(),
            hosts: strings(&["web1", "db1", "web2", "db2"]),
            children: strings(&["web", "db"]),
            vars: vars(json!({"tier": "backend", "monitored": true})),
        }
    );
    let order: Vec<&str> = inv.groups().iter().map(|g| g.name.as_str()).collect();
    assert_eq!(order, ["all", "web", "db", "prod"]);
    assert!(inv.group("nope").is_none());
}

#[test]
fn ansible_ini_staging_follows_ansible_precedence() {
    let inv = load("staging.ini");
    assert_eq!(
        names(inv.hosts()),
        [
            "bastion.staging.example.com",
            "web01.staging.example.com",
            "web02.staging.example.com",
            "web03.staging.example.com",
            "web-canary.staging.example.com",
            "db-a.staging.example.com",
            "db-b.staging.example.com",
            "localhost",
        ]
    );
    assert_eq!(
        inv.host("web01.staging.example.com").unwrap(),
        &Host {
            name: "web01.staging.example.com".into(),
            address: "web01.staging.example.com".into(),
            transport: TransportKind::Ssh,
            ssh: SshParams {
                user: Some("deploy".into()),
                port: None,
                identity: Some(PathBuf::from("/etc/toyc/keys/staging")),
                known_hosts: None,
            },
            sudo: false,
            groups: strings(&["webservers", "app", "staging"]),
            vars: vars(json!({
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_user": "deploy",
                "ansible_ssh_private_key_file": "/etc/toyc/keys/staging",
                "env": "staging",
                "ntp_server": "10.1.0.1",
                // all < staging (8080) < app (80) < webservers (8081)
                "http_port": 8081,
                "max_clients": 200,
            })),
        }
    );
    let canary = inv.host("web-canary.staging.example.com").unwrap();
    assert_eq!(canary.ssh.port, Some(2222));
    assert_eq!(canary.vars["canary"], json!(true));
    let db = inv.host("db-a.staging.example.com").unwrap();
    assert!(db.sudo);
    assert_eq!(db.vars["http_port"], json!(80));
    let bastion = inv.host("bastion.staging.example.com").unwrap();
    assert_eq!(bastion.address, "203.0.113.10");
    assert_eq!(bastion.ssh.user.as_deref(), Some("admin"));
    assert_eq!(bastion.groups, strings(&["ungrouped"]));
    let localhost = inv.host("localhost").unwrap();
    assert_eq!(localhost.transport, TransportKind::Local);
    assert_eq!(localhost.groups, strings(&["local"]));
}

#[test]
fn ansible_ini_staging_groups() {
    let inv = load("staging.ini");
    let order: Vec<&str> = inv.groups().iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "all",
            "ungrouped",
            "webservers",
            "dbservers",
            "local",
            "app",
            "staging"
        ]
    );
    let all = inv.group("all").unwrap();
    assert_eq!(all.children, strings(&["ungrouped", "local", "staging"]));
    assert_eq!(
        all.vars,
        vars(json!({"ansible_python_interpreter": "/usr/bin/python3", "ansible_user": "root"}))
    );
    let staging = inv.group("staging").unwrap();
    assert_eq!(staging.children, strings(&["app"]));
    assert_eq!(staging.hosts.len(), 6);
    assert_eq!(
        inv.group("ungrouped").unwrap().hosts,
        strings(&["bastion.staging.example.com"])
    );
}

#[test]
fn ansible_yaml_and_ini_of_the_same_inventory_agree() {
    let ini = load("staging.ini");
    let yaml = load("staging.yml");
    // As in Ansible, `ansible_become: yes` is YAML 1.1's true, while the INI value
    // `ansible_become=yes` stays the text `yes` (both make the host use sudo).
    let mut yaml_hosts = yaml.hosts().to_vec();
    for host in &mut yaml_hosts {
        if let Some(sudo) = host.vars.get_mut("ansible_become") {
            assert_eq!(*sudo, json!(true), "{}", host.name);
            *sudo = json!("yes");
        }
    }
    assert_eq!(yaml_hosts, ini.hosts());
    assert_eq!(yaml.groups(), ini.groups());
}

#[test]
fn limits_on_an_ansible_inventory() {
    let inv = load("staging.ini");
    let select = |limit: &str| names(inv.select(Some(limit)).unwrap());
    assert_eq!(
        select("staging:!webservers"),
        ["db-a.staging.example.com", "db-b.staging.example.com"]
    );
    assert_eq!(select("ungrouped"), ["bastion.staging.example.com"]);
    assert_eq!(
        select("web0[1-2]*"),
        ["web01.staging.example.com", "web02.staging.example.com"]
    );
    assert_eq!(select("app:&*canary*"), ["web-canary.staging.example.com"]);
    assert_eq!(
        inv.select(Some("webserver")).unwrap_err().to_string(),
        "unknown host or group `webserver`; did you mean `webservers`?"
    );
}

#[test]
fn detection_reads_text_by_content_and_file_extension() {
    let from_text = Inventory::parse(
        &std::fs::read_to_string(fixture("staging.ini")).unwrap(),
        Path::new("inventory"),
    )
    .unwrap();
    assert_eq!(from_text.hosts(), load("staging.ini").hosts());
    let plain = Inventory::parse("web1\nweb2 ansible_port=2200\n", Path::new("hosts")).unwrap();
    assert_eq!(names(plain.hosts()), ["web1", "web2"]);
    assert_eq!(plain.hosts()[1].ssh.port, Some(2200));
    let bom = Inventory::parse("\u{feff}[web]\nweb1\n", Path::new("hosts")).unwrap();
    assert_eq!(bom.group("web").unwrap().hosts, strings(&["web1"]));
    let cfg = Inventory::parse("web1:2222\n", Path::new("hosts.cfg")).unwrap();
    assert_eq!(cfg.hosts()[0].ssh.port, Some(2222));
}

#[test]
fn localhost_only_and_the_implicit_localhost() {
    let inv = Inventory::localhost_only();
    assert_eq!(names(inv.select(None).unwrap()), ["localhost"]);
    assert_eq!(names(inv.select(Some("localhost")).unwrap()), ["localhost"]);
    assert_eq!(names(inv.select(Some("all")).unwrap()), ["localhost"]);
    assert_eq!(inv.hosts(), [Host::localhost()]);

    let site = load("site.yml");
    let local = site.host("localhost").unwrap();
    assert_eq!(local.transport, TransportKind::Local);
    assert_eq!(local.vars, vars(json!({"app_port": 8080, "env": "prod"})));
    assert!(!names(site.hosts()).contains(&"localhost"));
    assert_eq!(
        names(site.select(Some("localhost")).unwrap()),
        ["localhost"]
    );
    assert_eq!(
        names(site.select(Some("web1,localhost")).unwrap()),
        ["web1", "localhost"]
    );

    let empty = Inventory::default();
    assert!(empty.select(None).unwrap().is_empty());
    assert_eq!(
        names(empty.select(Some("localhost")).unwrap()),
        ["localhost"]
    );
}

#[test]
fn localhost_with_an_address_is_reached_over_ssh() {
    let inv = Inventory::parse(
        "hosts:\n  localhost: {address: 127.0.0.1}\n",
        Path::new("i.yml"),
    )
    .unwrap();
    assert_eq!(inv.hosts()[0].transport, TransportKind::Ssh);
    let inv = Inventory::parse("hosts:\n  localhost: {}\n", Path::new("i.yml")).unwrap();
    assert_eq!(inv.hosts()[0].transport, TransportKind::Local);
}

#[test]
fn errors_name_file_line_and_column() {
    let text = "\
# inventory
vars: {app_port: 8080}
hosts:
  db1: {}
  web1:
    address: 10.0.0.11
    adress: 10.0.0.12
";
    assert_eq!(
        parse_error(text, "inventory.yml"),
        "inventory.yml:7:5: unknown key `adress` in host `web1` \
         (valid keys: address, transport, ssh, sudo, vars); did you mean `address`?"
    );
    assert_eq!(
        parse_error(
            "groups:\n  web: {}\n  prod:\n    children: [web, dbb]\n  db: {}\n",
            "inv.yml"
        ),
        "inv.yml:4:21: unknown group `dbb` in the children of group `prod` \
         (define it, or fix the name); did you mean `db`?"
    );
    assert_eq!(
        parse_error(
            "groups:\n  a: {children: [b]}\n  b:\n    children:\n      - a\n",
            "inv.yml"
        ),
        "inv.yml:5:9: cycle in group children: `a` -> `b` -> `a` \
         (remove one of these `children` entries)"
    );
    assert_eq!(
        parse_error("[a:children]\nb\n\n[b:children]\na\n", "hosts"),
        "hosts:5:1: cycle in group children: `a` -> `b` -> `a` \
         (remove one of these `children` entries)"
    );
    assert_eq!(
        parse_error("[web]\nw\n[prod:children]\nweb\ndbs\n", "hosts.ini"),
        "hosts.ini:5:1: unknown group `dbs` in the children of group `prod` \
         (define it, or fix the name)"
    );
    assert_eq!(
        parse_error(
            "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n",
            "inv.yml"
        ),
        "inv.yml:7:13: cycle in group children: `a` -> `b` -> `a` \
         (remove one of these `children` entries)"
    );
    assert_eq!(
        parse_error("hosts:\n  web1: {ssh: {port: 0}}\n", "inv.yml"),
        "inv.yml:2:22: `port` in `ssh` of host `web1` must be a number 1-65535, not a number `0`"
    );
}

#[test]
fn duplicate_yaml_keys_and_syntax_errors_are_located() {
    // serde_yaml places a duplicate key at the mapping that holds it.
    assert_eq!(
        parse_error("hosts:\n  web1: {}\n  web1: {}\n", "inv.yml"),
        "inv.yml:2:3: invalid YAML: hosts: duplicate entry with key \"web1\""
    );
    assert_eq!(
        parse_error("hosts:\n  web1: {address: [}\n", "inv.yml"),
        "inv.yml:2:20: invalid YAML: did not find expected node content, \
         while parsing a flow node"
    );
    assert_eq!(
        parse_error("hosts:\n\tweb1: {}\n", "inv.yml"),
        "inv.yml:2:1: invalid YAML: found character that cannot start any token, \
         while scanning for the next token (indent with spaces: YAML does not allow tabs)"
    );
}

#[test]
fn an_unreadable_file_names_the_path() {
    let missing = fixture("missing.yml");
    let err = Inventory::load(&missing).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("unable to read inventory `{}`", missing.display())
    );
    assert!(matches!(err, InventoryError::Read { .. }));
}
