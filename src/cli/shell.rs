//! `toyc completions SHELL` and `toyc man`: shell completions and man pages, generated
//! from the clap definition so they never disagree with `--help`.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use super::args::{Cli, CompletionsArgs, ManArgs};
use super::{Failure, Outcome};
use crate::exit::ExitCode;

/// The completion script for `args.shell`, on stdout.
pub fn completions(args: &CompletionsArgs) -> Outcome {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut Cli::command(), "toyc", &mut out);
    out.flush().context("unable to write the completions")?;
    Ok(ExitCode::Success)
}

/// toyc(1), or `toyc-SUBCOMMAND(1)` (the pages toyc(1) refers to), on stdout.
pub fn man(args: &ManArgs) -> Outcome {
    let mut command = Cli::command();
    // Built, subcommands know their display name (`toyc-run`), which titles their page.
    command.build();
    let page = match &args.subcommand {
        None => command,
        Some(name) => command.find_subcommand(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
            Failure::input(anyhow::anyhow!(
                "`{name}` is not a toyc subcommand; pick one of: {}",
                names.join(", ")
            ))
        })?,
    };
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .and_then(|()| out.flush())
        .context("unable to write the man page")?;
    Ok(ExitCode::Success)
}
