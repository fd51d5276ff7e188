//! Generators: a Rhai script whose `generate(config)` returns a plan (see
//! `toyc_engine::tasklist`). It runs in the sandbox with Rhai's standard functions and
//! three helpers:
//!
//! - `packages()`: the release packages of this deploy, `[#{name, version, file}]`: the
//!   components named with `--component NAME[=VERSION]`, or the tarballs
//!   `NAME-VERSION.tar.gz` found in `--directory` (only those named, when both are
//!   given). `file` is the tarball's name in `--directory` (`()` without one).
//! - `remote_versions(packages)`: `#{SERVICE: #{HOST: VERSION or ()}}`, the version each
//!   service runs on each of its hosts, read from the `current` symlink of
//!   `ROOT/SERVICE/current -> releases/VERSION` (`ROOT` is the config's `root`, `/srv`
//!   by default): one round trip per host, however many services it runs.
//! - `graphite_stage(suffix)`: a stage that sends the metric `PREFIX.SUFFIX 1` to the
//!   Carbon server of the config's `graphite: {host, port, prefix}` (port 2003 and
//!   prefix `deploy.PLATFORM` by default), from the controller; its failure is logged
//!   and does not fail the deploy (`on_failure: "continue"`).
//!
//! ```rhai
//! fn generate(config) {
//!     let tasks = [];
//!     for p in packages() {
//!         for group in config.service[p.name].hosts {
//!             for host in config.hostgroup[group] {
//!                 tasks.push(#{ command: "upload", host: host, service: p.name, src: p.file, dest: `/srv/${p.name}/releases/` });
//!             }
//!         }
//!     }
//!     #{ name: "upload", stages: [#{ name: "upload", concurrency: 3, concurrency_per_host: 1, tasks: tasks }, graphite_stage("uploaded")] }
//! }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map as RhaiMap, Scope};
use serde_json::{Map, Value};
use toyc_engine::inventory::deploy_config::DeployConfig;
use toyc_engine::inventory::Host;
use toyc_engine::run::RunContext;
use toyc_engine::runner::{for_each_host, json_to_dynamic};
use toyc_engine::tasklist::TaskList;
use toyc_engine::transport::{quote, ExecRequest};

type Fail = Box<EvalAltResult>;

/// A release package: a component of this deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The component (a service name, usually).
    pub name: String,
    /// Its version, when known.
    pub version: Option<String>,
    /// The tarball's file name in `--directory`.
    pub file: Option<String>,
}

/// Everything a generator run needs.
pub struct Generator {
    /// The script.
    pub script: PathBuf,
    /// The config, with `--set` applied.
    pub config: DeployConfig,
    /// `--component NAME[=VERSION]`, in order.
    pub components: Vec<(String, Option<String>)>,
    /// `--directory`.
    pub directory: Option<PathBuf>,
    /// The config's hosts, resolved against the inventory.
    pub hosts: Vec<Host>,
    /// The run the generator is part of: its limits and secrets, and its session, whose
    /// connections `remote_versions` opens and the run's tasks then reuse.
    pub run: RunContext,
    /// The directory the generator works from (`commands/`, local files, imports):
    /// the script's own when `None`.
    pub root: Option<PathBuf>,
}

/// `NAME-VERSION.tar.gz` as (NAME, VERSION): the version starts after the last `-`
/// followed by a digit (`my-app-1.2.3.tar.gz` is `my-app` 1.2.3).
pub fn split_tarball(file: &str) -> Option<(String, String)> {
    let stem = file
        .strip_suffix(".tar.gz")
        .or_else(|| file.strip_suffix(".tgz"))?;
    let at = stem
        .char_indices()
        .filter(|&(i, c)| {
            c == '-'
                && stem[i + 1..]
                    .chars()
                    .next()
                    .is_some_and(|d| d.is_ascii_digit())
        })
        .map(|(i, _)| i)
        .next_back()?;
    (at > 0).then(|| (stem[..at].to_owned(), stem[at + 1..].to_owned()))
}

impl Generator {
    /// The packages of this deploy (see the module docs).
    pub fn packages(&self) -> Result<Vec<Package>, String> {
        let mut found = Vec::new();
        if let Some(dir) = &self.directory {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| format!("unable to read `--directory {}`: {e}", dir.display()))?;
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for file in names {
                if let Some((name, version)) = split_tarball(&file) {
                    found.push(Package {
                        name,
                        version: Some(version),
                        file: Some(file),
                    });
                }
            }
            if !self.components.is_empty() {
                found.retain(|p| {
                    self.components.iter().any(|(n, v)| {
                        n == &p.name && v.as_ref().is_none_or(|v| Some(v) == p.version.as_ref())
                    })
                });
            }
            return Ok(found);
        }
        Ok(self
            .components
            .iter()
            .map(|(name, version)| Package {
                name: name.clone(),
                version: version.clone(),
                file: None,
            })
            .collect())
    }

    /// Run `generate(config)` and read what it returns as a plan.
    pub async fn generate(self) -> Result<TaskList, String> {
        let root = match &self.root {
            Some(root) => root.clone(),
            None => self
                .script
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned(),
        };
        let root = root.canonicalize().unwrap_or(root);
        let releases = self
            .directory
            .as_ref()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()));
        let packages = self.packages()?;
        let me = Arc::new(self);
        let runtime = tokio::runtime::Handle::current();
        let script_root = root.clone();
        let value = tokio::task::spawn_blocking(move || me.run(&script_root, packages, runtime))
            .await
            .map_err(|e| format!("the generator's thread failed: {e}"))??;
        let mut list = TaskList::from_value(value.1, &value.0).map_err(|e| e.to_string())?;
        list.root = Some(root);
        list.releases = releases;
        Ok(list)
    }

    fn run(
        self: &Arc<Self>,
        root: &Path,
        packages: Vec<Package>,
        runtime: tokio::runtime::Handle,
    ) -> Result<(String, Value), String> {
        let mut sandbox = self.run.sandbox(root);
        sandbox.add_global(rhai::exported_module!(generator_api).into());
        let origin = self.script.display().to_string();
        let ast = sandbox.compile(&self.script).map_err(|e| e.to_string())?;
        if !ast
            .iter_functions()
            .any(|f| f.name == "generate" && f.params.len() == 1)
        {
            return Err(format!(
                "{origin}: a generator defines `fn generate(config)`, returning the plan"
            ));
        }
        let state = Arc::new(GeneratorRun {
            generator: Arc::clone(self),
            packages: packages.iter().map(package_map).collect(),
            runtime,
        });
        // A generator's prints go to stderr like every line of the run: secrets masked.
        let printer = self.run.printer();
        let engine = sandbox.engine(Some(Dynamic::from(state)), move |text| {
            printer.err_line(text);
        });
        let config = json_to_dynamic(&Value::Object(self.config.value.clone()));
        let plan: Dynamic = engine
            .call_fn(&mut Scope::new(), &ast, "generate", (config,))
            .map_err(|e| sandbox.describe(&e, &self.script).to_string())?;
        let value: Value = rhai::serde::from_dynamic(&plan).map_err(|e| {
            format!("{origin}: `generate` returned something that is not JSON: {e}")
        })?;
        Ok((origin, value))
    }

    /// One round trip per host: the `current` link of every service it runs.
    fn remote_versions(
        &self,
        packages: &Array,
        runtime: &tokio::runtime::Handle,
    ) -> Result<RhaiMap, String> {
        let names: Vec<String> = packages
            .iter()
            .map(|p| {
                p.clone()
                    .try_cast::<RhaiMap>()
                    .and_then(|m| m.get("name").map(ToString::to_string))
                    .or_else(|| p.clone().into_string().ok())
                    .ok_or_else(|| {
                        "`remote_versions` takes the list `packages()` returns".to_owned()
                    })
            })
            .collect::<Result<_, _>>()?;
        let root = self
            .config
            .value
            .get("root")
            .and_then(Value::as_str)
            .unwrap_or("/srv")
            .to_owned();
        let mut wanted: Vec<(Host, Vec<String>)> = Vec::new();
        for name in &names {
            for host in self.config.service_hosts(name) {
                let Some(found) = self.hosts.iter().find(|h| h.name == host) else {
                    continue;
                };
                match wanted.iter_mut().find(|(h, _)| h.name == host) {
                    Some((_, services)) => services.push(name.clone()),
                    None => wanted.push((found.clone(), vec![name.clone()])),
                }
            }
        }
        let hosts: Vec<Host> = wanted.iter().map(|(h, _)| h.clone()).collect();
        let services: std::collections::HashMap<String, Vec<String>> =
            wanted.into_iter().map(|(h, s)| (h.name, s)).collect();
        let services = Arc::new(services);
        let answers = runtime.block_on(for_each_host(&hosts, 100, |host| {
            let (services, run, root) = (Arc::clone(&services), self.run.clone(), root.clone());
            async move {
                let mine = services.get(&host.name).cloned().unwrap_or_default();
                let script = mine
                    .iter()
                    .map(|s| {
                        let link = quote(&format!("{root}/{s}/current"));
                        format!("t=$(readlink {link} 2>/dev/null); printf '%s\\t%s\\n' {} \"${{t##*/}}\"", quote(s))
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                // The connection stays open in the run's session for the tasks to come.
                let result = match run.session.connect(&host).await {
                    Ok(transport) => transport
                        .exec(&ExecRequest::new(script), None)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (host.name, result)
            }
        }));
        let mut versions = RhaiMap::new();
        for name in &names {
            versions.insert(name.as_str().into(), RhaiMap::new().into());
        }
        // Every host that could not be asked, in one error: a plan made without its
        // inventory would otherwise stop at the first of many names it cannot resolve.
        let failed: Vec<(&String, &String)> = answers
            .iter()
            .filter_map(|(host, answer)| answer.as_ref().err().map(|e| (host, e)))
            .collect();
        if let Some((first, error)) = failed.first() {
            let unresolved = failed.iter().any(|(_, e)| e.contains("resolve hostname"));
            let hint = if unresolved {
                "; a host that is in no inventory is reached by its name: pass `-i INVENTORY` with its address"
            } else {
                ""
            };
            return Err(if failed.len() == 1 {
                format!("`remote_versions`: {error}{hint}")
            } else {
                format!(
                    "`remote_versions` could not ask {} hosts ({}) which versions they run; `{first}`: {error}{hint}",
                    failed.len(),
                    failed
                        .iter()
                        .map(|(h, _)| h.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
        for (host, answer) in answers {
            let output = answer.map_err(|e| format!("`remote_versions`: {e}"))?;
            for line in output.stdout_text().lines() {
                let (service, version) = line.split_once('\t').unwrap_or((line, ""));
                let version = if version.is_empty() {
                    Dynamic::UNIT
                } else {
                    version.to_owned().into()
                };
                if let Some(mut map) = versions
                    .get(service)
                    .and_then(|m| m.clone().try_cast::<RhaiMap>())
                {
                    map.insert(host.as_str().into(), version);
                    versions.insert(service.into(), map.into());
                }
            }
        }
        Ok(versions)
    }

    /// A stage that sends one metric to the config's Carbon server.
    fn graphite_stage(&self, suffix: &str) -> Result<RhaiMap, String> {
        let graphite = self
            .config
            .value
            .get("graphite")
            .and_then(Value::as_object)
            .ok_or(
                "`graphite_stage` needs `graphite: {host: ..., port: 2003}` in the deploy config",
            )?;
        let host = graphite
            .get("host")
            .and_then(Value::as_str)
            .ok_or("`graphite.host` of the deploy config must be a host name")?;
        let port = graphite.get("port").and_then(Value::as_u64).unwrap_or(2003);
        let prefix = graphite.get("prefix").and_then(Value::as_str).map_or_else(
            || format!("deploy.{}", self.config.platform()),
            ToOwned::to_owned,
        );
        let mut task = Map::new();
        task.insert("command".into(), "send_graphite".into());
        task.insert("host".into(), "localhost".into());
        task.insert("metric".into(), format!("{prefix}.{suffix}").into());
        task.insert("value".into(), 1.into());
        task.insert("carbon_host".into(), host.into());
        task.insert("carbon_port".into(), port.into());
        let mut stage = Map::new();
        stage.insert("name".into(), format!("graphite {suffix}").into());
        stage.insert("on_failure".into(), "continue".into());
        stage.insert("tasks".into(), Value::Array(vec![Value::Object(task)]));
        json_to_dynamic(&Value::Object(stage))
            .try_cast::<RhaiMap>()
            .ok_or_else(|| "a stage is a map".to_owned())
    }
}

/// What a generator's helpers reach, through the engine's tag.
#[derive(Clone)]
struct GeneratorRun {
    generator: Arc<Generator>,
    packages: Array,
    runtime: tokio::runtime::Handle,
}

impl GeneratorRun {
    fn of(ctx: &rhai::NativeCallContext) -> Result<Arc<GeneratorRun>, Fail> {
        toyc_engine::sandbox::tag_state::<Arc<GeneratorRun>>(ctx)
            .ok_or_else(|| {
                "this function belongs to generators: run the script with `toyc plan` or `toyc run --config`"
                    .into()
            })
    }
}

/// The helpers of generator scripts (`toyc plan GENERATOR --config F`): the release
/// packages of this deploy, the versions the hosts run, a stage that reports to Graphite.
#[export_module]
pub mod generator_api {
    use rhai::{Array, Map};

    use super::{Fail, GeneratorRun};

    /// The release packages of this deploy, `[#{name, version, file}]`: the tarballs
    /// `NAME-VERSION.tar.gz` in `--directory` (only those named with `--component`, when
    /// both are given), or the components named with `--component NAME[=VERSION]`
    /// (`file` is then `()`).
    ///
    /// # Example
    /// ```rhai
    /// for p in packages() {
    ///     print(`${p.name} ${p.version} from ${p.file}`);
    /// }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn packages(ctx: NativeCallContext) -> Result<Array, Fail> {
        Ok(GeneratorRun::of(&ctx)?.packages.clone())
    }

    /// The version each service of `packages` runs on each of its hosts,
    /// `#{SERVICE: #{HOST: VERSION or ()}}`, read from `ROOT/SERVICE/current ->
    /// releases/VERSION` (`ROOT` is the config's `root`, `/srv` by default). One round
    /// trip per host, however many services it runs; an unreachable host is an error.
    ///
    /// # Example
    /// ```rhai
    /// let running = remote_versions(packages());
    /// for p in packages() {
    ///     for host in running[p.name].keys() {
    ///         if running[p.name][host] != p.version { print(`${host}: ${p.name} needs ${p.version}`); }
    ///     }
    /// }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn remote_versions(ctx: NativeCallContext, packages: Array) -> Result<Map, Fail> {
        let run = GeneratorRun::of(&ctx)?;
        run.generator
            .remote_versions(&packages, &run.runtime)
            .map_err(Into::into)
    }

    /// A stage that sends the metric `PREFIX.SUFFIX 1 TIMESTAMP` to the Carbon server of
    /// the config's `graphite: {host, port, prefix}` over its plaintext protocol, from the
    /// controller (port 2003 and prefix `deploy.PLATFORM` by default). A failure to send
    /// is logged and does not fail the deploy (`on_failure: "continue"`).
    ///
    /// # Example
    /// ```rhai
    /// fn generate(config) {
    ///     #{ name: "notify", stages: [graphite_stage("deployed")] }
    /// }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn graphite_stage(ctx: NativeCallContext, suffix: &str) -> Result<Map, Fail> {
        GeneratorRun::of(&ctx)?
            .generator
            .graphite_stage(suffix)
            .map_err(Into::into)
    }
}

fn package_map(p: &Package) -> Dynamic {
    let mut map = RhaiMap::new();
    map.insert("name".into(), p.name.clone().into());
    let text = |v: &Option<String>| v.clone().map_or(Dynamic::UNIT, Dynamic::from);
    map.insert("version".into(), text(&p.version));
    map.insert("file".into(), text(&p.file));
    map.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(components: &[(&str, Option<&str>)], directory: Option<PathBuf>) -> Generator {
        let config = DeployConfig::parse("platform: p\n", Path::new("deploy.yml")).expect("valid");
        Generator {
            script: PathBuf::from("deploy.rhai"),
            config,
            components: components
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.map(str::to_owned)))
                .collect(),
            directory,
            hosts: Vec::new(),
            run: RunContext::new(
                toyc_engine::transport::SshOptions::new(PathBuf::from("/tmp")),
                toyc_engine::sandbox::Limits::default(),
            ),
            root: None,
        }
    }

    #[test]
    fn packages_come_from_the_directory_narrowed_by_components_or_from_components() {
        let dir = tempfile::tempdir().expect("tempdir");
        for file in [
            "web-1.0.tar.gz",
            "web-1.1.tar.gz",
            "api-2.0.tar.gz",
            "README",
        ] {
            std::fs::write(dir.path().join(file), "x").expect("write");
        }
        let found = |g: Generator| -> Vec<(String, Option<String>, Option<String>)> {
            g.packages()
                .expect("packages")
                .into_iter()
                .map(|p| (p.name, p.version, p.file))
                .collect()
        };
        let all = found(generator(&[], Some(dir.path().to_owned())));
        assert_eq!(all.len(), 3);
        assert_eq!(
            all[0],
            (
                "api".into(),
                Some("2.0".into()),
                Some("api-2.0.tar.gz".into())
            )
        );
        let narrowed = found(generator(
            &[("web", Some("1.1"))],
            Some(dir.path().to_owned()),
        ));
        assert_eq!(
            narrowed,
            [(
                "web".into(),
                Some("1.1".into()),
                Some("web-1.1.tar.gz".into())
            )]
        );
        let named = found(generator(&[("web", Some("3.0")), ("api", None)], None));
        assert_eq!(
            named,
            [
                ("web".into(), Some("3.0".into()), None),
                ("api".into(), None, None)
            ]
        );
    }

    #[test]
    fn tarball_names_split_at_the_version() {
        assert_eq!(
            split_tarball("my-app-1.2.3.tar.gz"),
            Some(("my-app".into(), "1.2.3".into()))
        );
        assert_eq!(
            split_tarball("web-20.tgz"),
            Some(("web".into(), "20".into()))
        );
        assert_eq!(split_tarball("web.tar.gz"), None);
        assert_eq!(split_tarball("notes.txt"), None);
    }
}
