//! The command line as clap sees it: raw arguments, validated later by each subcommand.
//!
//! Flags shared by several commands live in one flattened group each (targets, output,
//! changes, script limits, variables, deploy), so a flag added to a group reaches every
//! command that takes the group. A command's own arguments come before its groups: clap
//! files an argument declared after a group under that group's help heading.

// The doc comments here are `--help` text, where a URL in an example stays plain.
#![allow(rustdoc::bare_urls)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit::EXIT_STATUS_HELP;

/// toyc: push, converge and run commands on your hosts, driven by Rhai scripts.
#[derive(Debug, Parser)]
#[command(name = "toyc", version, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a script on every selected host (localhost when no inventory is given).
    ///
    /// Examples:
    ///   toyc run scripts/hello.rhai
    ///   toyc run deploy.rhai -i inventory.yml -l web --var version=1.4.2
    #[command(verbatim_doc_comment, after_help = EXIT_STATUS_HELP)]
    Run(RunArgs),
    /// Converge: run a script, apply what it would change, and again, until a pass finds
    /// nothing to change (or `--max-cycles` passes); failed hosts drop out.
    ///
    /// Examples:
    ///   toyc up site.rhai -i inventory.yml
    ///   toyc up site.rhai -i inventory.yml -y --max-cycles 3
    #[command(verbatim_doc_comment, after_help = EXIT_STATUS_HELP)]
    Up(UpArgs),
    /// Run a shell command on every selected host at once.
    ///
    /// Examples:
    ///   toyc exec -i inventory.yml -- uptime
    ///   toyc exec -i hosts.ini -l 'web,!web3' --sudo --stream -- apt-get update
    #[command(verbatim_doc_comment, after_help = EXIT_STATUS_HELP)]
    Exec(ExecArgs),
    /// Run a generator over a deploy config and check the task list it returns: every
    /// task's `initialize` and `host`, changing nothing. Prints `syntax ok`, or every
    /// failing task with its stage, index and reason. The generator may read hosts: its
    /// `remote_versions` asks each host which versions run (one read-only command per
    /// host, reached through `-i`'s addresses, else by name). Paths, `generators/` and
    /// `commands/` are the config's directory's.
    ///
    /// Examples:
    ///   toyc plan deploy.rhai --config prod.yml -i inventory.yml --directory releases/
    ///   toyc plan --config prod.yml --component web=1.4.2 --save plan.json
    ///   toyc plan deploy.rhai --config prod.yml --dump | jq .
    #[command(verbatim_doc_comment, after_help = EXIT_STATUS_HELP)]
    Plan(PlanArgs),
    /// Validate a saved (possibly hand-edited) task list, then run it.
    ///
    /// Examples:
    ///   toyc apply plan.json -i inventory.yml
    #[command(verbatim_doc_comment, after_help = EXIT_STATUS_HELP)]
    Apply(ApplyArgs),
    /// Apply a role: sync its git repo into toyc's cache, then run its runbook on the
    /// role's hosts (or, with `--local`, on this machine).
    ///
    /// Examples:
    ///   toyc role web -i inventory.yml --repos-base ssh://git@git.example.com/roles
    ///   toyc role web -i inventory.yml --repo file:///srv/git/web.git --ref v1.2 -y
    ///   toyc role web --local --repo https://git.example.com/roles/web.git -y
    ///   toyc role web -i inventory.yml --repo URL --status
    #[command(verbatim_doc_comment, after_help = EXIT_STATUS_HELP)]
    Role(RoleArgs),
    /// Render a template for one host here, as `files::template` would on that host
    /// (magic variables, the host's variables, facts asked of the host only when the
    /// template names one), and print it; `--diff DEST` prints a unified diff against
    /// the host's current DEST instead (exit 2 when they differ).
    ///
    /// Examples:
    ///   toyc template roles/web/templates/nginx.conf.j2 -i inventory.yml --host web1
    ///   toyc template templates/app.ini.j2 -i inv.yml --host web1 --diff /etc/app/app.ini
    #[command(verbatim_doc_comment, after_help = EXIT_STATUS_HELP)]
    Template(TemplateArgs),
    /// Show the documentation of the script modules (all, or one).
    ///
    /// Examples:
    ///   toyc doc
    ///   toyc doc host
    #[command(verbatim_doc_comment)]
    Doc(DocArgs),
    /// An interactive console: Rhai lines against live hosts, variables kept between lines.
    ///
    /// `hosts("web").exec("uptime")` runs a command on every host of a pattern and prints
    /// one row per host; operations typed at the prompt are planned and shown, and applied
    /// only by `.apply` after a confirmation. `.help` inside lists the rest.
    ///
    /// Examples:
    ///   toyc repl -i inventory.yml
    ///   toyc repl -i hosts.ini -l web
    #[command(verbatim_doc_comment)]
    Repl(ReplArgs),
    /// Serve git-host webhooks: each push to a configured repo's branch queues a run of
    /// its role (durably, in the store), which bootstraps new hosts and applies the role
    /// on every host of it in parallel. A JSON API and a status page show the queue.
    ///
    /// Examples:
    ///   toyc daemon --config /etc/toyc/daemon.yml
    ///   toyc daemon --config daemon.yml --store postgres://toyc@db/toyc
    #[command(verbatim_doc_comment)]
    Daemon(DaemonArgs),
    /// Ask a running daemon about its jobs: list them, show one with its hosts and log,
    /// re-run one, cancel one.
    ///
    /// Examples:
    ///   toyc jobs list
    ///   toyc jobs show 42
    ///   toyc jobs retry 42
    ///   toyc --url http://deploy.example.com:8470 jobs cancel 42
    #[command(verbatim_doc_comment)]
    Jobs(JobsArgs),
    /// Provisioning workflows: `module::task` steps over a record, run in the daemon's
    /// queue (or here with `--foreground`); ask where a run is, resume it, cancel it.
    ///
    /// Examples:
    ///   toyc workflow run /srv/workflows/loki.yml
    ///   toyc workflow status loki
    ///   toyc workflow resume loki
    ///   toyc workflow run scripts/workflows/web-host.yml --foreground --name web1
    #[command(verbatim_doc_comment)]
    Workflow(WorkflowArgs),
    /// Keep programs running and redeploy them from git only when they pass: programs
    /// come from a directory of config files (Huddle's JSON, or toyc's YAML; `_` files
    /// skipped); each polls its branch at a random time between its minimum and maximum,
    /// verifies a new commit in a staging checkout, switches, health-checks, and rolls
    /// back a commit that fails (never deploying it again). The other verbs talk to a
    /// running supervisor over its socket.
    ///
    /// Examples:
    ///   toyc supervise -c /etc/toyc/programs
    ///   toyc supervise status
    ///   toyc supervise status web --json
    ///   toyc supervise restart web
    ///   toyc supervise deploy web
    ///   toyc supervise logs web -f
    #[command(verbatim_doc_comment, args_conflicts_with_subcommands = true)]
    Supervise(SuperviseArgs),
    /// Print a shell completion script for toyc.
    ///
    /// Examples:
    ///   toyc completions bash > ~/.local/share/bash-completion/completions/toyc
    ///   toyc completions zsh > ~/.zfunc/_toyc
    ///   toyc completions fish > ~/.config/fish/completions/toyc.fish
    #[command(verbatim_doc_comment)]
    Completions(CompletionsArgs),
    /// Print toyc's man page (roff), or a subcommand's.
    ///
    /// Examples:
    ///   toyc man > ~/.local/share/man/man1/toyc.1
    ///   toyc man run > ~/.local/share/man/man1/toyc-run.1
    ///   toyc man | man -l -
    #[command(verbatim_doc_comment)]
    Man(ManArgs),
}

/// `toyc completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `toyc man [SUBCOMMAND]`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (`toyc-SUBCOMMAND(1)`); toyc(1) without one.
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// Which hosts to act on and how to reach them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Targets")]
pub struct TargetArgs {
    /// Inventory file: toyc YAML, or Ansible YAML/INI. Without one, the target is localhost.
    #[arg(short = 'i', long, env = "TOYC_INVENTORY", value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Hosts, groups or globs; `!x` excludes, `&x` intersects; comma-separated.
    #[arg(short = 'l', long, env = "TOYC_LIMIT", value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Hosts worked on at once. By default as many as this machine's open-file limit,
    /// process limit and memory allow (8 open files, 2 processes and 4 MiB per host; at
    /// most 2000): a host waiting on the network costs little, and a small fixed number
    /// would make a fleet far away wait in waves.
    #[arg(long, env = "TOYC_FORKS", default_value_t = toyc_engine::forks::default_forks(), value_name = "N")]
    pub forks: usize,
    /// Run commands through `sudo -n` on every host.
    #[arg(long, env = "TOYC_SUDO")]
    pub sudo: bool,
    /// Give up connecting to a host after this many seconds.
    #[arg(
        long,
        env = "TOYC_CONNECT_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub connect_timeout: u64,
    /// Trust host keys seen for the first time (a changed key is always refused).
    #[arg(long, env = "TOYC_ACCEPT_NEW_HOST_KEYS")]
    pub accept_new_host_keys: bool,
    /// An ssh config file to use instead of ~/.ssh/config.
    #[arg(long, env = "TOYC_SSH_CONFIG", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

/// How results are shown.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// JSON Lines events on stdout (one `{"type", "data"}` object per line).
    #[arg(long, env = "TOYC_JSON")]
    pub json: bool,
    /// More detail on stderr (repeat for more).
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// List every host in the final table; a run of more than 20 hosts lists only those
    /// that changed, failed or were unreachable, and one line for the rest.
    #[arg(long, env = "TOYC_FULL_TABLE")]
    pub full_table: bool,
}

/// Variables given on the command line, over the inventory's (and a role's attributes).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Variables")]
pub struct VarArgs {
    /// Set a variable (`key=value`; the value is read as YAML, so `port=8080` is a number).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// Read variables from a YAML file (later files win; `--var` wins over all).
    #[arg(long = "vars-file", value_name = "FILE")]
    pub vars_files: Vec<PathBuf>,
    /// Read secret variables from a YAML file: like `--vars-file`, and every value in it
    /// is masked in all output (events, diffs, logs, errors).
    #[arg(long = "secrets-file", env = "TOYC_SECRETS_FILE", value_name = "FILE")]
    pub secrets_files: Vec<PathBuf>,
}

/// How a run shows and applies its changes: `run`, `up` and `role`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Changes")]
pub struct ChangeArgs {
    /// Only show what would change; exit 2 if anything would (0 if nothing).
    #[arg(long, env = "TOYC_CHECK")]
    pub check: bool,
    /// Show a unified diff of every file whose content would change.
    #[arg(long, env = "TOYC_DIFF")]
    pub diff: bool,
    /// Apply changes without asking (needed when stdin is not a terminal).
    #[arg(short = 'y', long, env = "TOYC_YES")]
    pub yes: bool,
    /// Default timeout of each command the script runs, in seconds.
    #[arg(long, env = "TOYC_TIMEOUT", value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

/// Guards on the scripts toyc runs itself: runbooks, and the generators of `plan` and
/// `run --config`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Script limits")]
pub struct ScriptLimitArgs {
    /// Stop a script that runs longer than this, in seconds.
    #[arg(
        long,
        env = "TOYC_SCRIPT_TIMEOUT",
        default_value_t = 3600.0,
        value_name = "SECONDS"
    )]
    pub script_timeout: f64,
    /// Stop a script after this many Rhai operations (a guard against endless loops).
    #[arg(
        long,
        env = "TOYC_MAX_OPERATIONS",
        default_value_t = 1_000_000_000,
        value_name = "N"
    )]
    pub max_operations: u64,
    /// Stop scripts when toyc's resident memory passes this many MiB.
    #[arg(
        long,
        env = "TOYC_MAX_MEMORY",
        default_value_t = 4096,
        value_name = "MIB"
    )]
    pub max_memory: u64,
}

/// `toyc run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The script to run; with `--config`, the generator (`generators/PLATFORM.rhai` in
    /// the config's directory when left out).
    #[arg(value_name = "SCRIPT", required_unless_present = "config")]
    pub script: Option<PathBuf>,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub changes: ChangeArgs,
    #[command(flatten)]
    pub limits: ScriptLimitArgs,
    #[command(flatten)]
    pub variables: VarArgs,
    #[command(flatten)]
    pub deploy: DeployArgs,
}

/// A deploy config and what the command line adds to it.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Deploy")]
pub struct DeployArgs {
    /// A deploy config (YAML with `platform`, `hostgroup`, `service`): the script is then
    /// a generator, and `toyc run` plans and runs the task list it returns.
    #[arg(long, env = "TOYC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Set a config key (`key=value`, dotted for nested keys; the value is read as YAML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A component to deploy, `NAME` or `NAME=VERSION` (repeatable): `packages()` in the
    /// generator, and `config.components`.
    #[arg(long = "component", value_name = "NAME[=VERSION]")]
    pub components: Vec<String>,
    /// A directory of release tarballs `NAME-VERSION.tar.gz`: `packages()` lists them.
    #[arg(long, env = "TOYC_DIRECTORY", value_name = "DIR")]
    pub directory: Option<PathBuf>,
}

/// `toyc plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The generator script; `generators/PLATFORM.rhai` next to the config when left out.
    #[arg(value_name = "GENERATOR")]
    pub generator: Option<PathBuf>,
    /// Print the task list as JSON on stdout.
    #[arg(long)]
    pub dump: bool,
    /// Write the task list as JSON to this file (to review, edit and `toyc apply` later).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    #[command(flatten)]
    pub deploy: DeployArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub limits: ScriptLimitArgs,
}

/// `toyc apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The task list, as `toyc plan --save` wrote it.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The limits of its custom commands' scripts.
    #[command(flatten)]
    pub limits: ScriptLimitArgs,
}

/// `toyc role`.
#[derive(Debug, Args)]
pub struct RoleArgs {
    /// The role: its repo is `--repo`, or `ROLE.git` under `--repos-base`; its hosts are the
    /// inventory group of that name, the `--hosts-file` entry, or `-l`.
    #[arg(value_name = "ROLE")]
    pub role: String,
    /// The role's git repo (`file://`, `ssh://`, `user@host:path`, `https://`).
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// Where role repos live: the role's repo is `URL/ROLE.git` (`--repo` wins).
    #[arg(long, env = "TOYC_REPOS_BASE", value_name = "URL")]
    pub repos_base: Option<String>,
    /// The branch, tag or commit to apply (default: the remote's default branch).
    #[arg(long = "ref", value_name = "REF")]
    pub reference: Option<String>,
    /// A YAML file mapping roles to host names (`web: [web1, web2]`).
    #[arg(long, env = "TOYC_ROLE_HOSTS", value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    /// Apply the role on this machine, through the local transport (pull mode).
    #[arg(long, conflicts_with_all = ["hosts_file", "status"])]
    pub local: bool,
    /// Print the merged attributes of HOST, each with where its value came from.
    #[arg(long, value_name = "HOST")]
    pub show_attributes: Option<String>,
    /// List the role's hosts with the commit each last applied, and whether it is behind.
    #[arg(long)]
    pub status: bool,
    /// Print the runbook.rhai equivalent to the role's runbook.yml, and stop.
    #[arg(long)]
    pub explain: bool,
    /// The ssh key for the git remote (default: the ssh agent, then ~/.ssh/id_*).
    #[arg(long, env = "TOYC_GIT_IDENTITY", value_name = "FILE")]
    pub git_identity: Option<PathBuf>,
    /// The known_hosts file the git remote's ssh host key is checked against.
    #[arg(long, env = "TOYC_GIT_KNOWN_HOSTS", value_name = "FILE")]
    pub git_known_hosts: Option<PathBuf>,
    /// Give up syncing the repo after this many seconds.
    #[arg(
        long,
        env = "TOYC_GIT_TIMEOUT",
        default_value_t = 30.0,
        value_name = "SECONDS"
    )]
    pub git_timeout: f64,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub changes: ChangeArgs,
    #[command(flatten)]
    pub limits: ScriptLimitArgs,
    #[command(flatten)]
    pub variables: VarArgs,
}

/// `toyc up`: what `toyc run` takes but a deploy config (`up` converges runbooks, not
/// task lists).
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The script to converge.
    #[arg(value_name = "SCRIPT")]
    pub script: PathBuf,
    /// Apply passes at most; still something to change after them fails the run.
    #[arg(long, env = "TOYC_MAX_CYCLES", default_value_t = 5, value_name = "N")]
    pub max_cycles: usize,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub changes: ChangeArgs,
    #[command(flatten)]
    pub limits: ScriptLimitArgs,
    #[command(flatten)]
    pub variables: VarArgs,
}

impl UpArgs {
    /// The run each cycle does, and the most cycles.
    pub fn into_run(self) -> (RunArgs, usize) {
        let run = RunArgs {
            script: Some(self.script),
            targets: self.targets,
            output: self.output,
            changes: self.changes,
            limits: self.limits,
            variables: self.variables,
            deploy: DeployArgs::default(),
        };
        (run, self.max_cycles.max(1))
    }
}

/// `toyc exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Kill the command (on the host too) after this many seconds.
    #[arg(long, env = "TOYC_TIMEOUT", value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Print output live, each line prefixed by its host, instead of grouped per host.
    #[arg(long)]
    pub stream: bool,
    /// The command, run by `sh -c` on each host.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `toyc template`.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// The template file; below a `templates/` directory, includes are read from there
    /// and `role_path` is its parent when that is a role (`runbook.rhai`, `runbook.yml` or
    /// `tasks/main.yml`), as for `files::template`.
    #[arg(value_name = "TEMPLATE")]
    pub template: PathBuf,
    /// The inventory host to render it for.
    #[arg(long, value_name = "NAME")]
    pub host: String,
    /// Compare with this file on the host (read over ssh): print a unified diff.
    #[arg(long, value_name = "DEST")]
    pub diff: Option<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub variables: VarArgs,
}

/// `toyc daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The daemon's configuration (see the README's daemon section).
    #[arg(long, value_name = "FILE", env = "TOYC_DAEMON_CONFIG")]
    pub config: PathBuf,
    /// The store, over the config's `store:`: a SQLite file, or a `postgres://` URL.
    #[arg(long, value_name = "PATH|URL", env = "TOYC_STORE")]
    pub store: Option<String>,
    /// Where to listen, over the config's `listen:` (port 0 picks a free one).
    #[arg(long, value_name = "ADDR:PORT", env = "TOYC_DAEMON_LISTEN")]
    pub listen: Option<String>,
}

/// Where a running daemon is (`toyc jobs`, `toyc workflow`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Daemon")]
pub struct DaemonConnection {
    /// The daemon's address.
    #[arg(
        long,
        value_name = "URL",
        env = "TOYC_DAEMON_URL",
        default_value = "http://127.0.0.1:8470",
        global = true
    )]
    pub url: String,
    /// A file holding the API token (needed when the daemon is not on loopback).
    #[arg(
        long,
        value_name = "FILE",
        env = "TOYC_DAEMON_TOKEN_FILE",
        global = true
    )]
    pub token_file: Option<PathBuf>,
}

/// `toyc jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// The daemon.
    #[command(flatten)]
    pub connection: DaemonConnection,
    /// Print the daemon's JSON as it is.
    #[arg(long, env = "TOYC_JSON")]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: JobsAction,
}

/// `toyc jobs ACTION`.
#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// The newest jobs, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One job: its state, its hosts' results and its event log.
    Show {
        /// The job's number.
        id: i64,
    },
    /// Queue a deliberate full re-run of a job (never refused as a duplicate).
    Retry {
        /// The job's number.
        id: i64,
    },
    /// Cancel a job: a queued one does not start, a running one is stopped on every host.
    Cancel {
        /// The job's number.
        id: i64,
    },
}

/// `toyc workflow`.
#[derive(Debug, Args)]
pub struct WorkflowArgs {
    /// The daemon.
    #[command(flatten)]
    pub connection: DaemonConnection,
    /// Print the daemon's JSON as it is.
    #[arg(long, env = "TOYC_JSON", global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: WorkflowAction,
}

/// `toyc workflow ACTION`.
#[derive(Debug, Subcommand)]
pub enum WorkflowAction {
    /// Queue a workflow run in the daemon and return at once (or run it here with
    /// `--foreground`).
    Run {
        /// The workflow file (the daemon reads it: a path on the daemon's machine), or a
        /// name from the daemon's `workflows: dir:`.
        workflow: String,
        /// The run's name; default: the record's `instance.hostname`.
        #[arg(long)]
        name: Option<String>,
        /// Run it here, in this process, printing each step (no daemon needed).
        #[arg(long)]
        foreground: bool,
        /// With `--foreground`: the private key to log in to new hosts with.
        #[arg(long, value_name = "FILE")]
        ssh_identity: Option<PathBuf>,
    },
    /// Where a run is: the step being worked on, the step where it failed and why, or
    /// that it is done and how long it took; the clipboard, secrets masked.
    Status {
        /// The run's name.
        name: String,
    },
    /// Queue a failed, cancelled or interrupted run again from the step where it stopped.
    Resume {
        /// The run's name.
        name: String,
    },
    /// Cancel a run.
    Cancel {
        /// The run's name.
        name: String,
    },
    /// Every run's status, one line each.
    List,
}

/// `toyc supervise`.
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The directory of program config files (`*.json`, `*.yml`, `*.yaml`).
    #[arg(short = 'c', long, value_name = "DIR", env = "TOYC_SUPERVISE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The store: a SQLite file (default `toyc.sqlite` in the state directory), or a
    /// `postgres://` URL.
    #[arg(long, value_name = "PATH|URL", env = "TOYC_STORE")]
    pub store: Option<String>,
    /// The control socket (default `supervise/control.sock` in the state directory).
    #[arg(
        long,
        value_name = "PATH",
        env = "TOYC_SUPERVISE_SOCKET",
        global = true
    )]
    pub socket: Option<PathBuf>,
    /// Print the supervisor's JSON as it is.
    #[arg(long, env = "TOYC_JSON", global = true)]
    pub json: bool,
    /// Ask a running supervisor.
    #[command(subcommand)]
    pub action: Option<SuperviseAction>,
}

/// `toyc supervise ACTION`.
#[derive(Debug, Subcommand)]
pub enum SuperviseAction {
    /// Each program's state, pid, uptime, restarts, deployed commit, last deploy and
    /// next poll (or one program's).
    Status {
        /// One program.
        name: Option<String>,
    },
    /// Start a program (it stays started across supervisor restarts).
    Start {
        /// The program.
        name: String,
    },
    /// Stop a program, its whole process group (it stays stopped across restarts).
    Stop {
        /// The program.
        name: String,
    },
    /// Stop a program and start it again.
    Restart {
        /// The program.
        name: String,
    },
    /// Poll a program's branch now (and deploy a new commit that passes).
    Deploy {
        /// The program.
        name: String,
    },
    /// A program's log.
    Logs {
        /// The program.
        name: String,
        /// Keep printing what is appended.
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines to print first.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
    },
}

/// `toyc doc`.
#[derive(Debug, Args)]
pub struct DocArgs {
    /// Only this module.
    #[arg(value_name = "MODULE")]
    pub module: Option<String>,
    /// Markdown, for docs/stdlib.md.
    #[arg(long)]
    pub markdown: bool,
}

/// `toyc repl`.
#[derive(Debug, Args)]
pub struct ReplArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
}
