//! The `toyc` command line: parse, run, exit with the code the run earned.

mod cli;
mod exit;

fn main() {
    std::process::exit(cli::main());
}
