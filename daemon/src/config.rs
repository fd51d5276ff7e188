//! `daemon.yml`: where the daemon listens, which repos it accepts and the role and hosts
//! each maps to, where its secrets, inventory, store and bootstrap script are. Read and
//! checked once at start: a mistake fails there with file:line:col, not at the first push.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toyc_engine::inventory::Inventory;
use toyc_engine::yaml_file::{parse, read};

/// The default body limit: GitHub's payloads reach 25 MiB.
const DEFAULT_BODY_LIMIT: usize = 25 * 1024 * 1024;

/// Why the daemon's config (or a file it names) cannot be used: the file, and for a
/// syntax or type error its line and column.
pub use toyc_engine::yaml_file::FileError as ConfigError;

/// The daemon's configuration as written, relative paths resolved against the file's
/// directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Where to listen (`127.0.0.1:8470`; port 0 picks one, printed at start).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The store: a SQLite file path, or a `postgres://` URL; default: `toyc.sqlite` in
    /// toyc's state directory.
    #[serde(default)]
    pub store: Option<String>,
    /// The inventory the repos' hosts come from (toyc YAML, Ansible YAML or INI).
    #[serde(default)]
    pub inventory: Option<PathBuf>,
    /// The secrets file: webhook secrets and the API token (never on the command line).
    pub secrets_file: PathBuf,
    /// The largest webhook body accepted, in bytes.
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    /// Jobs run at once by this daemon.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Hosts worked on at once within one job.
    #[serde(default = "default_forks")]
    pub forks: usize,
    /// How long a worker's claim on a job lasts without renewal (it renews every third
    /// of it); a job whose daemon died is taken up again after this.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
    /// On SIGTERM, how long running jobs may take to finish before they are stopped and
    /// left to be taken up again.
    #[serde(default = "default_shutdown")]
    pub shutdown_timeout_seconds: u64,
    /// The bootstrap script for hosts never bootstrapped, when a role repo has no
    /// `bootstrap.rhai` of its own. `None`: such hosts are only recorded.
    #[serde(default)]
    pub bootstrap: Option<PathBuf>,
    /// Trust an ssh host key seen for the first time (new hosts), recording it.
    #[serde(default)]
    pub accept_new_host_keys: bool,
    /// Give up connecting to a host after this many seconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// How long a role repo's fetch may take.
    #[serde(default = "default_git_timeout")]
    pub git_timeout_seconds: u64,
    /// The ssh key to fetch role repos with (its default keys when absent).
    #[serde(default)]
    pub git_identity: Option<PathBuf>,
    /// Chat adapters: people start and watch workflows from a channel.
    #[serde(default)]
    pub chat: Option<crate::chat::ChatConfig>,
    /// Workflows: where named ones are, how steps log in to new hosts.
    #[serde(default)]
    pub workflows: Option<toyc_workflow::WorkflowSettings>,
    /// The repos accepted, by their full name as the git host sends it (`owner/name`).
    #[serde(default)]
    pub repos: BTreeMap<String, RepoConfig>,
}

/// One accepted repo.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Where toyc fetches it from (the payload's URLs are not trusted).
    pub url: String,
    /// The role it is; default: the repo's name after the last `/`.
    #[serde(default)]
    pub role: Option<String>,
    /// Hosts: a limit pattern over the inventory (`web`, `web:db`, `h1,h2`); default: the
    /// inventory group named after the role.
    #[serde(default)]
    pub hosts: Option<String>,
    /// A role → hosts YAML file instead of the inventory's groups.
    #[serde(default)]
    pub hosts_file: Option<PathBuf>,
    /// The branch whose pushes run the role.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// The key of this repo's webhook secret under `repos:` in the secrets file;
    /// default: the repo's full name, then the file's `webhook` secret.
    #[serde(default)]
    pub secret: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8470".into()
}
fn default_body_limit() -> usize {
    DEFAULT_BODY_LIMIT
}
fn default_workers() -> usize {
    2
}
fn default_forks() -> usize {
    20
}
fn default_lease() -> u64 {
    30
}
fn default_shutdown() -> u64 {
    60
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_git_timeout() -> u64 {
    60
}
fn default_branch() -> String {
    "main".into()
}

/// The secrets file: webhook secrets and the API token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsFile {
    /// The webhook secret of every repo without one of its own.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Webhook secrets by repo full name (or the name a repo's `secret:` gives).
    #[serde(default)]
    pub repos: BTreeMap<String, String>,
    /// The token the API and status page ask for when not bound to loopback.
    #[serde(default)]
    pub api_token: Option<String>,
    /// The IRC server's password, if it wants one.
    #[serde(default)]
    pub irc_password: Option<String>,
}

/// A repo, resolved: its role and its secret.
#[derive(Debug, Clone)]
pub struct Repo {
    /// Its full name.
    pub name: String,
    /// As configured.
    pub config: RepoConfig,
    /// Its role.
    pub role: String,
    /// Its webhook secret.
    pub secret: String,
}

/// The configuration, checked: what the daemon runs with.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// The file it came from.
    pub path: PathBuf,
    /// As written (paths resolved).
    pub config: DaemonConfig,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The accepted repos, by full name.
    pub repos: BTreeMap<String, Repo>,
    /// The API token.
    pub api_token: Option<String>,
    /// The IRC server's password.
    pub irc_password: Option<String>,
}

impl Daemon {
    /// Read and check `path` (see the module docs).
    pub fn load(path: &Path) -> Result<Daemon, ConfigError> {
        let text = read(path)?;
        let mut config: DaemonConfig = parse(path, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut config.secrets_file);
        config.inventory.as_mut().map(resolve);
        config.bootstrap.as_mut().map(resolve);
        config.git_identity.as_mut().map(resolve);
        if let Some(irc) = config.chat.as_mut().and_then(|c| c.irc.as_mut()) {
            irc.ca_file.as_mut().map(resolve);
        }
        if let Some(workflows) = &mut config.workflows {
            workflows.dir.as_mut().map(resolve);
            workflows.ssh_identity.as_mut().map(resolve);
            if let Some(dns) = &mut workflows.dns {
                resolve(&mut dns.tsig_secret_file);
            }
            if let Some(ec2) = &mut workflows.ec2 {
                resolve(&mut ec2.secret_access_key_file);
            }
            if let Some(linode) = &mut workflows.linode {
                resolve(&mut linode.token_file);
            }
        }
        for repo in config.repos.values_mut() {
            repo.hosts_file.as_mut().map(resolve);
        }
        if let Some(store) = &mut config.store {
            if !store.contains("://") && Path::new(store).is_relative() {
                *store = base.join(&*store).to_string_lossy().into_owned();
            }
        }
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let listen: SocketAddr = config.listen.parse().map_err(|e| {
            invalid(format!(
                "`listen: {}` is not an address and port ({e}); write it as `127.0.0.1:8470`",
                config.listen
            ))
        })?;
        if config.workers == 0 || config.forks == 0 || config.lease_seconds < 3 {
            return Err(invalid(
                "`workers` and `forks` must be at least 1, `lease_seconds` at least 3".into(),
            ));
        }
        if config.repos.is_empty() && config.workflows.is_none() {
            return Err(invalid(
                "nothing to do: list the `repos` whose pushes the daemon accepts, or configure `workflows`".into(),
            ));
        }
        if let Some(irc) = config.chat.as_ref().and_then(|c| c.irc.as_ref()) {
            if irc.nick.is_empty() || irc.channels.iter().any(|c| !c.starts_with(['#', '&'])) {
                return Err(invalid(
                    "`chat: irc:` needs a `nick`, and `channels` that start with `#` or `&`".into(),
                ));
            }
            if let Some(ca) = &irc.ca_file {
                if !irc.tls {
                    return Err(invalid(format!(
                        "`chat: irc: ca_file: {}` is for TLS: add `tls: true`",
                        ca.display()
                    )));
                }
                if !ca.is_file() {
                    return Err(invalid(format!(
                        "`chat: irc: ca_file: {}` is not a file",
                        ca.display()
                    )));
                }
            }
        }
        let secrets_text = read(&config.secrets_file)?;
        let secrets: SecretsFile = parse(&config.secrets_file, &secrets_text)?;
        if let Some(file) = &config.inventory {
            Inventory::load(file).map_err(|e| invalid(format!("inventory: {e}")))?;
        }
        if let Some(file) = &config.bootstrap {
            if !file.is_file() {
                return Err(invalid(format!(
                    "`bootstrap: {}` is not a file",
                    file.display()
                )));
            }
        }
        let mut repos = BTreeMap::new();
        for (name, repo) in &config.repos {
            let role = repo
                .role
                .clone()
                .unwrap_or_else(|| name.rsplit('/').next().unwrap_or(name).to_owned());
            let key = repo.secret.as_deref().unwrap_or(name);
            let secret = secrets
                .repos
                .get(key)
                .or(secrets.webhook.as_ref())
                .filter(|s| !s.is_empty())
                .cloned()
                .ok_or_else(|| {
                    invalid(format!(
                        "repo `{name}` has no webhook secret: add `{key}: ...` under `repos:` \
                         in `{}`, or a `webhook:` secret for every repo",
                        config.secrets_file.display()
                    ))
                })?;
            repos.insert(
                name.clone(),
                Repo {
                    name: name.clone(),
                    config: repo.clone(),
                    role,
                    secret,
                },
            );
        }
        Ok(Daemon {
            path: path.to_owned(),
            listen,
            repos,
            api_token: secrets.api_token.filter(|t| !t.is_empty()),
            irc_password: secrets.irc_password.filter(|t| !t.is_empty()),
            config,
        })
    }

    /// How long a lease lasts.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.config.lease_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "s.yml", "webhook: x\n");
        let path = write(
            dir.path(),
            "d.yml",
            "secrets_file: s.yml\nrepos:\n  o/web:\n    url: file:///r\n    brnach: main\n",
        );
        let error = Daemon::load(&path)
            .expect_err("a typo is refused")
            .to_string();
        assert!(error.contains("d.yml:5:5"), "{error}");
        assert!(error.contains("brnach"), "{error}");
    }

    #[test]
    fn a_repo_without_a_secret_is_refused_and_roles_default_to_the_repo_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "s.yml", "repos:\n  o/web: s1\n");
        let path = write(
            dir.path(),
            "d.yml",
            "secrets_file: s.yml\nrepos:\n  o/web: {url: file:///w}\n  o/db: {url: file:///d}\n",
        );
        let error = Daemon::load(&path)
            .expect_err("o/db has no secret")
            .to_string();
        assert!(
            error.contains("repo `o/db` has no webhook secret"),
            "{error}"
        );
        write(dir.path(), "s.yml", "webhook: all\nrepos:\n  o/web: s1\n");
        let daemon = Daemon::load(&path).expect("loads");
        assert_eq!(daemon.repos["o/web"].secret, "s1");
        assert_eq!(daemon.repos["o/db"].secret, "all");
        assert_eq!(daemon.repos["o/db"].role, "db");
    }

    #[test]
    fn the_irc_password_comes_from_the_secrets_file_and_ca_file_needs_tls() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "s.yml", "webhook: x\nirc_password: hunter2\n");
        write(dir.path(), "ca.pem", "");
        let chat = "chat:\n  irc: {server: \"irc:6697\", nick: jarvis, channels: [\"#ops\"], ca_file: ca.pem";
        let repos = "repos:\n  o/web: {url: file:///w}\n";
        let path = write(
            dir.path(),
            "d.yml",
            &format!("secrets_file: s.yml\n{repos}{chat}, tls: true}}\n"),
        );
        let daemon = Daemon::load(&path).expect("loads");
        assert_eq!(daemon.irc_password.as_deref(), Some("hunter2"));
        let irc = daemon.config.chat.and_then(|c| c.irc).expect("irc");
        assert_eq!(irc.ca_file, Some(dir.path().join("ca.pem")), "resolved");
        write(
            dir.path(),
            "d.yml",
            &format!("secrets_file: s.yml\n{repos}{chat}}}\n"),
        );
        let error = Daemon::load(&path).expect_err("no tls").to_string();
        assert!(error.contains("add `tls: true`"), "{error}");
        // Never in daemon.yml, which is not secret.
        write(
            dir.path(),
            "d.yml",
            &format!("secrets_file: s.yml\n{repos}{chat}, tls: true, password: x}}\n"),
        );
        let error = Daemon::load(&path).expect_err("a password").to_string();
        assert!(error.contains("password"), "{error}");
    }
}
