//! The `docker` provider: an instance is a container on this machine's docker engine,
//! reached at its bridge address. Driven through the `docker` command (the engine's own
//! client: no API version to negotiate with the 20.10 engine here).
//!
//! A container is labelled `toyc.workflow.name=NAME` (how `find` knows it) plus the
//! spec's tags. A generated host key and the authorized key are copied in between
//! `docker create` and `docker start`, so the host's first boot already uses them.

use std::time::Duration;

use async_trait::async_trait;

use super::{Instance, InstanceSpec, Provider, ProviderError};

/// The label that names a workflow's container.
const NAME_LABEL: &str = "toyc.workflow.name";

/// Containers on the local docker engine.
#[derive(Debug, Clone, Default)]
pub struct Docker;

async fn docker(args: &[&str]) -> Result<String, ProviderError> {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .map_err(|e| ProviderError::Unreachable {
            provider: "docker",
            message: format!("unable to run `docker`: {e}"),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(ProviderError::Api {
            provider: "docker",
            message: format!(
                "`docker {}` failed: {}",
                args.first().copied().unwrap_or(""),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// The container's name for an instance name.
fn container(name: &str) -> String {
    format!("toyc-wf-{name}")
}

#[async_trait]
impl Provider for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn create(&self, spec: &InstanceSpec) -> Result<Instance, ProviderError> {
        if let Some(existing) = self.find(&spec.name).await? {
            return Ok(existing);
        }
        let name_label = format!("{NAME_LABEL}={}", spec.name);
        let container = container(&spec.name);
        let mut args = vec![
            "create".to_owned(),
            "--name".into(),
            container.clone(),
            "--hostname".into(),
            spec.name.clone(),
            "--label".into(),
            name_label,
        ];
        for (key, value) in &spec.tags {
            args.push("--label".into());
            args.push(format!("{key}={value}"));
        }
        args.push(spec.image.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = docker(&args).await?;
        if let Err(e) = self.inject(&id, spec).await {
            let _ = docker(&["rm", "-f", &id]).await;
            return Err(e);
        }
        docker(&["start", &id]).await?;
        self.get(&id).await
    }

    async fn find(&self, name: &str) -> Result<Option<Instance>, ProviderError> {
        let filter = format!("label={NAME_LABEL}={name}");
        let ids = docker(&["ps", "-aq", "--filter", &filter]).await?;
        match ids.lines().next() {
            Some(id) => Ok(Some(self.get(id).await?)),
            None => Ok(None),
        }
    }

    async fn get(&self, id: &str) -> Result<Instance, ProviderError> {
        let format = format!(
            "{{{{.Id}}}} {{{{.State.Status}}}} {{{{index .Config.Labels \"{NAME_LABEL}\"}}}} {{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}}{{{{end}}}}"
        );
        let text =
            docker(&["inspect", "-f", &format, id])
                .await
                .map_err(|_| ProviderError::NotFound {
                    provider: "docker",
                    id: id.to_owned(),
                })?;
        let mut fields = text.split_whitespace();
        let (Some(id), Some(state), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(ProviderError::Api {
                provider: "docker",
                message: format!("unexpected `docker inspect` output: {text}"),
            });
        };
        Ok(Instance {
            id: id.to_owned(),
            name: name.to_owned(),
            state: state.to_owned(),
            address: fields.next().map(str::to_owned),
        })
    }

    async fn wait_running(&self, id: &str, timeout: Duration) -> Result<Instance, ProviderError> {
        super::poll_running(self, id, timeout, Duration::from_millis(200)).await
    }

    async fn console_output(&self, id: &str) -> Result<Option<String>, ProviderError> {
        docker(&["logs", id]).await.map(Some)
    }

    async fn destroy(&self, id: &str) -> Result<(), ProviderError> {
        match docker(&["rm", "-f", id]).await {
            Ok(_) => Ok(()),
            Err(ProviderError::Api { message, .. }) if message.contains("No such container") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Docker {
    /// Copy the generated host key and the authorized key into a created container.
    async fn inject(&self, id: &str, spec: &InstanceSpec) -> Result<(), ProviderError> {
        let api = |message: String| ProviderError::Api {
            provider: "docker",
            message,
        };
        let tree = tempfile::tempdir().map_err(|e| api(e.to_string()))?;
        // `docker cp DIR/. /` gives `/` the directory's mode: not the temp dir's 0700.
        std::fs::set_permissions(
            tree.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| api(e.to_string()))?;
        let mut any = false;
        if let Some(key) = &spec.host_key_file {
            let ssh = tree.path().join("etc/ssh");
            std::fs::create_dir_all(&ssh).map_err(|e| api(e.to_string()))?;
            for (from, to) in [
                (key.clone(), "ssh_host_ed25519_key"),
                (key.with_extension("pub"), "ssh_host_ed25519_key.pub"),
            ] {
                std::fs::copy(&from, ssh.join(to))
                    .map_err(|e| api(format!("unable to read `{}`: {e}", from.display())))?;
            }
            any = true;
        }
        if let Some(public) = &spec.ssh_public_key {
            // The test-host image installs /toyc/authorized_keys for root at boot; other
            // images read /root/.ssh/authorized_keys directly.
            for dir in ["toyc", "root/.ssh"] {
                let dir = tree.path().join(dir);
                std::fs::create_dir_all(&dir).map_err(|e| api(e.to_string()))?;
                std::fs::write(dir.join("authorized_keys"), format!("{public}\n"))
                    .map_err(|e| api(e.to_string()))?;
            }
            any = true;
        }
        if any {
            let source = format!("{}/.", tree.path().display());
            docker(&["cp", &source, &format!("{id}:/")]).await?;
        }
        Ok(())
    }
}
