//! Chat: people start and watch workflows from a channel (`jarvis: deploy loki`,
//! `jarvis: status loki`). An adapter (IRC first, [`irc`]) connects, reads commands
//! addressed to the bot from people allowed to give them, hands them to [`Commands`],
//! and says the answer in the channel that asked; workflows' [`Announcement`]s (step
//! started, failed, done) are said in the channel their run was started from.

use async_trait::async_trait;

/// What someone asked the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `deploy WHAT`: start a workflow (a workflow file's name or URL).
    Deploy {
        /// What to deploy.
        what: String,
    },
    /// `status NAME`: where a workflow run is.
    Status {
        /// The run's name (the host's name).
        name: String,
    },
    /// `list`: the runs.
    List,
    /// `cancel NAME`: stop a run.
    Cancel {
        /// The run's name.
        name: String,
    },
    /// `help`, or anything not understood (`unknown` holds it).
    Help {
        /// What was not understood, if anything.
        unknown: Option<String>,
    },
}

impl Command {
    /// Parse the text after the bot's name (`deploy loki`, `status loki`, `help`).
    pub fn parse(text: &str) -> Command {
        let mut words = text.split_whitespace();
        let verb = words.next().unwrap_or("").to_ascii_lowercase();
        let rest: Vec<&str> = words.collect();
        let one = |rest: &[&str]| (rest.len() == 1).then(|| rest[0].to_owned());
        match (verb.as_str(), one(&rest)) {
            ("deploy", Some(what)) => Command::Deploy { what },
            ("status", Some(name)) => Command::Status { name },
            ("cancel", Some(name)) => Command::Cancel { name },
            ("list", _) if rest.is_empty() => Command::List,
            ("help", _) | ("", _) => Command::Help { unknown: None },
            _ => Command::Help {
                unknown: Some(text.trim().to_owned()),
            },
        }
    }
}

/// A command with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The adapter's name for the channel (`#ops`), where the answer goes and where the
    /// run it starts announces itself.
    pub channel: String,
    /// Who asked.
    pub nick: String,
    /// What.
    pub command: Command,
}

/// Something a workflow run says on its own (a step started, failed, the run is done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The channel its run was started from; `None`: every channel the bot is in.
    pub channel: Option<String>,
    /// The line (secrets already masked).
    pub line: String,
}

/// What answers commands: the daemon's workflows.
#[async_trait]
pub trait Commands: Send + Sync {
    /// Carry out `asked`; the lines to answer with, in order.
    async fn handle(&self, asked: &Asked) -> Vec<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_anything_else_asks_for_help() {
        assert_eq!(
            Command::parse("deploy loki.yml"),
            Command::Deploy {
                what: "loki.yml".into()
            }
        );
        assert_eq!(
            Command::parse("  STATUS   loki "),
            Command::Status {
                name: "loki".into()
            }
        );
        assert_eq!(Command::parse("list"), Command::List);
        assert_eq!(Command::parse(""), Command::Help { unknown: None });
        assert_eq!(
            Command::parse("deploy a b"),
            Command::Help {
                unknown: Some("deploy a b".into())
            }
        );
    }
}
