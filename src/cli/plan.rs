//! `toyc plan`: run a generator over a deploy config and check the task list it returns,
//! without touching a host (beyond the reads the generator asks for, such as
//! `remote_versions`); `--dump` prints it, `--save` writes it for `toyc apply`.

use super::args::PlanArgs;
use super::deploy::{check, commands, generate, inventory, load_config, plan_hosts, save, show};
use super::Outcome;
use crate::exit::ExitCode;

/// The top-level entry point for `toyc plan`.
pub async fn plan(args: PlanArgs) -> Outcome {
    let inventory = inventory(&args.targets)?;
    let config = load_config(&args.deploy)?;
    let list = generate(
        args.generator.as_deref(),
        config.clone(),
        &args.deploy,
        &args.targets,
        inventory.as_ref(),
    )
    .await?;
    let hosts = plan_hosts(&list, inventory.as_ref(), Some(&config));
    check(&list, &commands(&list, None, &hosts))?;
    if args.dump {
        print!("{}", list.to_json());
        eprintln!("syntax ok");
    } else {
        if !args.output.json && args.output.verbose > 0 {
            show(&list);
        }
        println!("syntax ok");
    }
    if let Some(path) = &args.save {
        save(path, &list.to_json())?;
        eprintln!(
            "saved {} task(s) to `{}`; run them with `toyc apply {}`",
            list.task_count(),
            path.display(),
            path.display()
        );
    }
    Ok(ExitCode::Success)
}
