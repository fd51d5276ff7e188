//! `toyc plan`: run a generator over a deploy config and check the task list it returns,
//! without touching a host (beyond the reads the generator asks for, such as
//! `remote_versions`); `--dump` prints it, `--save` writes it for `toyc apply`, `--json`
//! prints it as one `plan` event.

use serde_json::Value;
use toyc_engine::secrets::Secrets;

use super::args::PlanArgs;
use super::deploy::{deploy_run, generate_checked, save, show};
use super::targets::script_limits;
use super::{Outcome, Process};
use crate::exit::ExitCode;

/// The top-level entry point for `toyc plan`.
pub async fn plan(args: PlanArgs, process: &Process) -> Outcome {
    let run = deploy_run(
        process,
        "plan",
        &args.targets,
        &args.output,
        script_limits(&args.limits)?,
    )?;
    let (list, _) =
        generate_checked(args.generator.as_deref(), &args.deploy, &args.targets, &run).await?;
    // The generator's connections (`remote_versions`) close with the plan.
    run.session.close().await;
    if args.dump {
        print!("{}", list.to_json());
        if !args.output.json {
            eprintln!("syntax ok");
        }
    } else if args.output.json {
        // One line in the `--json` envelope: a valid plan (an invalid one exits 65 with
        // its errors on stderr), its size, and the plan itself.
        let event = serde_json::json!({
            "type": "plan",
            "data": {
                "name": list.name,
                "stages": list.stages.len(),
                "tasks": list.task_count(),
                "plan": list,
            },
        });
        println!("{}", run.secrets.redact(&event.to_string()));
    } else {
        if !args.output.json && args.output.verbose > 0 {
            show(&list, &run.secrets);
        }
        println!("syntax ok");
    }
    if let Some(path) = &args.save {
        save(path, &list.to_json())?;
        // The whole command: a plan applied without the inventory it was made with
        // cannot reach its hosts.
        let mut command = format!("toyc apply {}", shell_word(&path.display().to_string()));
        if let Some(inventory) = &args.targets.inventory {
            command.push_str(&format!(
                " -i {}",
                shell_word(&inventory.display().to_string())
            ));
        }
        if args.targets.sudo {
            command.push_str(" --sudo");
        }
        eprintln!(
            "saved {} task(s) to `{}`; run them with `{command}`",
            list.task_count(),
            path.display(),
        );
    }
    Ok(ExitCode::Success)
}

/// `word` as one shell word: as it is when plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_' | ':' | '=' | '@' | '+')
        });
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// An argument's value in a plan listing, one task per line: a plain word as it is,
/// anything else (white space, quotes, control characters such as a newline that would
/// break the layout) as a JSON string. Secrets are masked before quoting, since an
/// escaped secret would no longer match.
pub fn listed(value: &Value, secrets: &Secrets) -> String {
    match value {
        Value::String(s) => {
            let s = secrets.redact(s).into_owned();
            let plain = !s.is_empty()
                && s.chars().all(|c| {
                    !c.is_whitespace() && !c.is_control() && !matches!(c, '"' | '\'' | '\\')
                });
            if plain {
                s
            } else {
                Value::String(s).to_string()
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed_plain(value: &Value) -> String {
        listed(value, &Secrets::new())
    }

    #[test]
    fn plain_words_stay_and_the_rest_is_quoted_on_one_line() {
        assert_eq!(listed_plain(&Value::from("/srv/web")), "/srv/web");
        assert_eq!(listed_plain(&Value::from("a\nb")), r#""a\nb""#);
        assert_eq!(listed_plain(&Value::from("two words")), r#""two words""#);
        assert_eq!(listed_plain(&Value::from("")), r#""""#);
        assert_eq!(listed_plain(&Value::from(8080)), "8080");
    }
}
