//! The IRC adapter: a small client over tokio (IRC is a line protocol; what the `irc`
//! crate would add is the flood control it does not implement). It registers, joins its
//! channels, answers `PING`, reads `NICK: command` in a channel (or a private message)
//! from people `allowed` to command it, and says the answer where it was asked.
//! Announcements go to their run's channel, or every channel.
//!
//! It never floods: every line it sends waits for a token (a burst of 4, then one per
//! 500 ms), and long text is split below IRC's 512-byte line limit on UTF-8
//! boundaries. When the connection drops it reconnects with exponential backoff and
//! jitter, and joins its channels again.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch};

use super::{Announcement, Asked, Command, Commands};

/// `chat: irc:` in daemon.yml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcConfig {
    /// `host:port` of the IRC server (plain TCP).
    pub server: String,
    /// The bot's nick (`jarvis`); `_` is appended while it is taken.
    pub nick: String,
    /// The channels it joins.
    pub channels: Vec<String>,
    /// Who may command it: nicks or `nick!user@host` masks with `*` and `?`. Nobody
    /// when empty (it says so when asked).
    #[serde(default)]
    pub allowed: Vec<String>,
}

/// The longest text in one PRIVMSG, in bytes: 512 minus the prefix the server adds,
/// the command, the target and the line end, with room to spare.
const MAX_TEXT: usize = 400;
/// Lines sent at once before the rate applies.
const BURST: u32 = 4;
/// One line per this, after the burst.
const RATE: Duration = Duration::from_millis(500);

/// Run the adapter until `stopping` turns true: connect, serve, reconnect.
pub async fn run(
    config: IrcConfig,
    password: Option<String>,
    commands: Arc<dyn Commands>,
    announcements: broadcast::Receiver<Announcement>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut announcements = announcements;
    let mut backoff = Duration::from_secs(1);
    loop {
        if *stopping.borrow() {
            return;
        }
        let connected =
            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&config.server)).await;
        match connected {
            Ok(Ok(stream)) => {
                tracing::info!(server = %config.server, "chat: connected");
                let served = session(
                    stream,
                    &config,
                    password.as_deref(),
                    &commands,
                    &mut announcements,
                    &mut stopping,
                )
                .await;
                match served {
                    Ended::Stopping => return,
                    Ended::Registered(why) => {
                        tracing::warn!(server = %config.server, "chat: disconnected ({why}); reconnecting");
                        backoff = Duration::from_secs(1);
                    }
                    Ended::Early(why) => {
                        tracing::warn!(server = %config.server, "chat: disconnected before registering ({why})")
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(server = %config.server, error = %e, "chat: unable to connect")
            }
            Err(_) => tracing::warn!(server = %config.server, "chat: connecting timed out"),
        }
        let wait = backoff + jitter(backoff / 2);
        backoff = (backoff * 2).min(Duration::from_secs(60));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopping.changed() => {}
        }
    }
}

/// Up to `max`, from the clock's low bits (no need for a strong random source here).
fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let max = max.as_millis().max(1) as u64;
    Duration::from_millis(u64::from(nanos) % max)
}

/// How a session ended.
enum Ended {
    /// The daemon is stopping.
    Stopping,
    /// The connection dropped after registration.
    Registered(String),
    /// It dropped before.
    Early(String),
}

/// A parsed line: its prefix, command and parameters (the last one may hold spaces).
#[derive(Debug, PartialEq, Eq)]
struct Message {
    prefix: Option<String>,
    command: String,
    params: Vec<String>,
}

fn parse(line: &str) -> Option<Message> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    let prefix = match rest.strip_prefix(':') {
        Some(stripped) => {
            let (prefix, after) = stripped.split_once(' ')?;
            rest = after;
            Some(prefix.to_owned())
        }
        None => None,
    };
    let (head, trailing) = match rest.split_once(" :") {
        Some((head, trailing)) => (head, Some(trailing)),
        None => (rest, None),
    };
    let mut words = head.split(' ').filter(|w| !w.is_empty());
    let command = words.next()?.to_ascii_uppercase();
    let mut params: Vec<String> = words.map(str::to_owned).collect();
    if let Some(trailing) = trailing {
        params.push(trailing.to_owned());
    }
    Some(Message {
        prefix,
        command,
        params,
    })
}

/// `text` in pieces of at most `MAX_TEXT` (400) bytes, split on character boundaries
/// (at a space when there is one near the end), one piece per line of the text.
pub fn split(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    for line in text.lines() {
        let mut rest = line.trim_end();
        while rest.len() > MAX_TEXT {
            let mut cut = MAX_TEXT;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if let Some(space) = rest[..cut].rfind(' ').filter(|&s| s > MAX_TEXT / 2) {
                cut = space;
            }
            pieces.push(rest[..cut].to_owned());
            rest = rest[cut..].trim_start();
        }
        if !rest.is_empty() {
            pieces.push(rest.to_owned());
        }
    }
    pieces
}

/// Whether `prefix` (`nick!user@host`) may command the bot.
fn allowed(config: &IrcConfig, prefix: &str) -> bool {
    let nick = prefix.split('!').next().unwrap_or(prefix);
    config.allowed.iter().any(|mask| {
        let Ok(pattern) = glob::Pattern::new(mask) else {
            return false;
        };
        if mask.contains('!') {
            pattern.matches(prefix)
        } else {
            pattern.matches(nick)
        }
    })
}

/// The command addressed to `nick` in `text` (`nick: status loki`, `nick, help`).
fn addressed<'a>(text: &'a str, nick: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(nick)?;
    let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix(','))?;
    Some(rest.trim())
}

async fn session(
    stream: TcpStream,
    config: &IrcConfig,
    password: Option<&str>,
    commands: &Arc<dyn Commands>,
    announcements: &mut broadcast::Receiver<Announcement>,
    stopping: &mut watch::Receiver<bool>,
) -> Ended {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    // Sent at once: registration and PONG. Sent under the rate: everything said.
    let (urgent, mut urgent_rx) = mpsc::unbounded_channel::<String>();
    let (said, mut said_rx) = mpsc::unbounded_channel::<String>();
    let sender = tokio::spawn(async move {
        let mut tokens = BURST;
        let mut refill = tokio::time::interval(RATE);
        loop {
            let line = tokio::select! {
                biased;
                line = urgent_rx.recv() => match line { Some(line) => line, None => return },
                _ = refill.tick(), if tokens < BURST => { tokens += 1; continue; }
                line = said_rx.recv(), if tokens > 0 => match line {
                    Some(line) => { tokens -= 1; line }
                    None => return,
                },
            };
            if writer
                .write_all(format!("{line}\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut nick = config.nick.clone();
    if let Some(password) = password {
        let _ = urgent.send(format!("PASS {password}"));
    }
    let _ = urgent.send(format!("NICK {nick}"));
    let _ = urgent.send(format!("USER {nick} 0 * :toyc daemon"));
    let mut registered = false;
    let say = |target: &str, text: &str| {
        for piece in split(text) {
            let _ = said.send(format!("PRIVMSG {target} :{piece}"));
        }
    };
    let ended = loop {
        tokio::select! {
            _ = stopping.changed() => {
                if *stopping.borrow() {
                    let _ = urgent.send("QUIT :toyc daemon stopping".into());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break Ended::Stopping;
                }
            }
            announcement = announcements.recv() => {
                match announcement {
                    Ok(Announcement { channel, line }) if registered => {
                        let targets = match channel {
                            Some(channel) if config.channels.contains(&channel) || !channel.starts_with('#') => vec![channel],
                            _ => config.channels.clone(),
                        };
                        for target in targets {
                            say(&target, &line);
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "chat: announcements dropped (too many at once)");
                    }
                    Err(broadcast::error::RecvError::Closed) => {}
                }
            }
            line = lines.next_line() => {
                let line = match line {
                    Ok(Some(line)) => line,
                    Ok(None) => break ended_by(registered, "the server closed the connection".into()),
                    Err(e) => break ended_by(registered, e.to_string()),
                };
                let Some(message) = parse(&line) else { continue };
                match message.command.as_str() {
                    "PING" => {
                        let token = message.params.first().cloned().unwrap_or_default();
                        let _ = urgent.send(format!("PONG :{token}"));
                    }
                    "001" => {
                        registered = true;
                        for channel in &config.channels {
                            let _ = urgent.send(format!("JOIN {channel}"));
                        }
                        tracing::info!(nick = %nick, channels = ?config.channels, "chat: registered");
                    }
                    "433" => {
                        nick.push('_');
                        let _ = urgent.send(format!("NICK {nick}"));
                    }
                    "ERROR" => break ended_by(registered, message.params.join(" ")),
                    "PRIVMSG" => {
                        let (Some(prefix), [target, text]) = (&message.prefix, message.params.as_slice()) else {
                            continue;
                        };
                        let from = prefix.split('!').next().unwrap_or(prefix).to_owned();
                        let (reply_to, wanted) = if target.starts_with('#') || target.starts_with('&') {
                            (target.clone(), addressed(text, &nick))
                        } else {
                            (from.clone(), Some(text.trim()))
                        };
                        let Some(wanted) = wanted else { continue };
                        if !allowed(config, prefix) {
                            say(&reply_to, &format!("{from}: sorry, you may not command me (ask to be added to `chat: irc: allowed:`)"));
                            continue;
                        }
                        let asked = Asked {
                            channel: reply_to.clone(),
                            nick: from,
                            command: Command::parse(wanted),
                        };
                        let commands = Arc::clone(commands);
                        let said = said.clone();
                        tokio::spawn(async move {
                            for line in commands.handle(&asked).await {
                                for piece in split(&line) {
                                    let _ = said.send(format!("PRIVMSG {} :{piece}", asked.channel));
                                }
                            }
                        });
                    }
                    _ => {}
                }
            }
        }
    };
    sender.abort();
    ended
}

fn ended_by(registered: bool, why: String) -> Ended {
    if registered {
        Ended::Registered(why)
    } else {
        Ended::Early(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_prefix_params_and_trailing_text() {
        let m = parse(":tester!t@127.0.0.1 PRIVMSG #ops :jarvis: status loki\r\n").expect("parses");
        assert_eq!(m.prefix.as_deref(), Some("tester!t@127.0.0.1"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, vec!["#ops", "jarvis: status loki"]);
        assert_eq!(
            parse("PING :irc.example").expect("ping").params,
            vec!["irc.example"]
        );
        assert_eq!(
            addressed("jarvis: status loki", "jarvis"),
            Some("status loki")
        );
        assert_eq!(addressed("jarvis, help", "jarvis"), Some("help"));
        assert_eq!(addressed("jarvisx: help", "jarvis"), None);
    }

    #[test]
    fn long_text_splits_below_the_limit_on_character_boundaries() {
        let text = "é".repeat(450);
        let pieces = split(&text);
        assert!(
            pieces.iter().all(|p| p.len() <= MAX_TEXT),
            "{:?}",
            pieces.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(pieces.concat(), text);
        assert_eq!(split("a\nb\n\nc"), vec!["a", "b", "c"]);
    }

    #[test]
    fn only_allowed_nicks_or_masks_may_command() {
        let config = IrcConfig {
            server: String::new(),
            nick: "jarvis".into(),
            channels: vec![],
            allowed: vec!["ops-*".into(), "*!*@10.0.0.*".into()],
        };
        assert!(allowed(&config, "ops-anna!a@host"));
        assert!(allowed(&config, "bob!b@10.0.0.7"));
        assert!(!allowed(&config, "bob!b@192.0.2.1"));
        let nobody = IrcConfig {
            allowed: vec![],
            ..config
        };
        assert!(!allowed(&nobody, "ops-anna!a@host"));
    }
}
