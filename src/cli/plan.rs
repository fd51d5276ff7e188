//! `toyc plan`: run a generator over a deploy config and check the task list it returns,
//! without touching a host (beyond the reads the generator asks for, such as
//! `remote_versions`); `--dump` prints it, `--save` writes it for `toyc apply`.

use super::args::PlanArgs;
use super::deploy::{generate_checked, save, show};
use super::Outcome;
use crate::exit::ExitCode;

/// The top-level entry point for `toyc plan`.
pub async fn plan(args: PlanArgs) -> Outcome {
    let (list, _, _) = generate_checked(
        args.generator.as_deref(),
        &args.deploy,
        &args.targets,
        &args.limits,
    )
    .await?;
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
