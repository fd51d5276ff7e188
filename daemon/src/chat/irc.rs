//! The IRC adapter: a small client over tokio, not the `irc` crate (IRC is a line
//! protocol, and what the crate would add is the flood control it does not implement).
//! It registers, joins its channels, answers `PING`, reads `NICK: command` in a channel
//! (or a private message) from people `allowed` to command it, and says the answer
//! where it was asked. Announcements go to their run's channel, or every channel.
//!
//! It never floods: every line it says waits for a token (`Pace`: a burst of 4, then
//! one per 500 ms, however long it was quiet before), and long text is split below
//! IRC's 512-byte line limit on UTF-8 boundaries. When the connection drops, or the
//! server stops answering even its `PING`, it reconnects with exponential backoff and
//! jitter, and joins its channels again. Text that is not UTF-8 (old clients) is read
//! lossily, never a reason to drop the connection. With `tls: true` it speaks TLS
//! through the system's OpenSSL. The server's password is never logged.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::{Announcement, Asked, Command, Commands};

/// `chat: irc:` in daemon.yml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcConfig {
    /// `host:port` of the IRC server.
    pub server: String,
    /// Connect with TLS (the server's certificate checked against the system's roots,
    /// or `ca_file`'s).
    #[serde(default)]
    pub tls: bool,
    /// A PEM file of the CA that signed the server's certificate, when not a public one.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
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
/// Silence from the server this long: ask it with a `PING`.
const QUIET: Duration = Duration::from_secs(120);
/// No answer to that `PING` within this: the connection is dead (a peer gone without
/// closing it, a NAT that forgot it); reconnect.
const DEAD: Duration = Duration::from_secs(60);
/// Announcements kept while not connected.
const MAX_PENDING: usize = 50;
/// Kicked from a channel: join it again after this.
const REJOIN: Duration = Duration::from_secs(5);
/// Alternative nicks tried before giving up on this connection.
const MAX_NICK_TRIES: u32 = 20;
/// The longest nick every server takes (RFC 2812); servers may take longer ones.
const NICK_LEN: usize = 9;
/// Connecting (TCP, then TLS) gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Run the adapter until `stopping` turns true (or its sender is gone): connect,
/// serve, reconnect. `password` is the server's (`PASS`), from the secrets file.
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
        match connect(&config).await {
            Ok(link) => {
                tracing::info!(server = %config.server, tls = config.tls, "chat: connected");
                let served = session(
                    link,
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
            Err(why) => tracing::warn!(server = %config.server, "chat: {why}"),
        }
        let wait = backoff + jitter(backoff / 2);
        backoff = (backoff * 2).min(Duration::from_secs(60));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = stopping.changed() => if changed.is_err() { return },
        }
    }
}

/// A connection to the server: TCP, or TLS over it.
trait Link: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Link for T {}

/// Connect to `config.server`, with TLS when asked; why not, for the log.
async fn connect(config: &IrcConfig) -> Result<Box<dyn Link>, String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&config.server))
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| format!("unable to connect: {e}"))?;
    if !config.tls {
        return Ok(Box::new(tcp));
    }
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(ca) = &config.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| format!("unable to read `ca_file` {}: {e}", ca.display()))?;
        let cert = native_tls::Certificate::from_pem(&pem).map_err(|e| {
            format!(
                "`ca_file` {} is not a PEM certificate ({e}); give the CA's certificate",
                ca.display()
            )
        })?;
        builder.add_root_certificate(cert);
    }
    let connector = builder
        .build()
        .map_err(|e| format!("unable to set up TLS: {e}"))?;
    // The name the certificate must carry: the server's host, without port or brackets.
    let host = config
        .server
        .rsplit_once(':')
        .map_or(config.server.as_str(), |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tls = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_native_tls::TlsConnector::from(connector).connect(host, tcp),
    )
    .await
    .map_err(|_| "the TLS handshake timed out".to_owned())?
    .map_err(|e| format!("TLS with {host} failed: {e}"))?;
    Ok(Box::new(tls))
}

/// The flood limit: a bucket of `BURST` tokens, one back every `RATE`, none beyond
/// `BURST` however long it stays unused.
#[derive(Debug)]
struct Pace {
    tokens: u32,
    /// When the last token came back (or the bucket was last seen full).
    since: Instant,
}

impl Pace {
    fn new(now: Instant) -> Pace {
        Pace {
            tokens: BURST,
            since: now,
        }
    }

    /// How long until a line may go at `now` (zero: at once).
    fn wait(&mut self, now: Instant) -> Duration {
        let back = now.saturating_duration_since(self.since).as_nanos() / RATE.as_nanos();
        let back = u32::try_from(back).unwrap_or(u32::MAX);
        if back > 0 {
            self.tokens = self.tokens.saturating_add(back).min(BURST);
            // Full: the next token's time starts when one is taken, not before.
            self.since = if self.tokens == BURST {
                now
            } else {
                self.since + RATE * back
            };
        }
        if self.tokens > 0 {
            Duration::ZERO
        } else {
            (self.since + RATE).saturating_duration_since(now)
        }
    }

    /// Take a token at `now`; false when there is none yet.
    fn take(&mut self, now: Instant) -> bool {
        if self.wait(now).is_zero() {
            if self.tokens == BURST {
                self.since = now;
            }
            self.tokens -= 1;
            true
        } else {
            false
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
    // A lone CR would end the line for some servers and start another command there.
    for line in text.split(['\r', '\n']) {
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

/// The `tries`-th nick to try when `nick` is taken or refused: `_` appended once or
/// twice while that stays within [`NICK_LEN`], then the number in place of the last
/// characters (`jarvisbot` → `jarvisbo1`), which fits any server.
fn alternative(nick: &str, tries: u32) -> String {
    if tries <= 2 && nick.chars().count() + tries as usize <= NICK_LEN {
        return format!("{nick}{}", "_".repeat(tries as usize));
    }
    let number = tries.to_string();
    let head: String = nick
        .chars()
        .take(NICK_LEN.saturating_sub(number.len()))
        .collect();
    format!("{head}{number}")
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
    link: Box<dyn Link>,
    config: &IrcConfig,
    password: Option<&str>,
    commands: &Arc<dyn Commands>,
    announcements: &mut broadcast::Receiver<Announcement>,
    stopping: &mut watch::Receiver<bool>,
) -> Ended {
    let (reader, mut writer) = tokio::io::split(link);
    let mut reader = BufReader::new(reader);
    // Sent at once: registration, JOIN and PONG. Sent at the pace: everything said.
    let (urgent, mut urgent_rx) = mpsc::unbounded_channel::<String>();
    let (said, mut said_rx) = mpsc::unbounded_channel::<String>();
    let sender = tokio::spawn(async move {
        let mut pace = Pace::new(Instant::now());
        loop {
            let wait = pace.wait(Instant::now());
            let line = tokio::select! {
                biased;
                line = urgent_rx.recv() => match line { Some(line) => line, None => return },
                () = tokio::time::sleep(wait), if !wait.is_zero() => continue,
                line = said_rx.recv(), if wait.is_zero() => match line {
                    Some(line) => {
                        // The token is there: nothing else took it since `wait`.
                        let _ = pace.take(Instant::now());
                        line
                    }
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
    let mut tries = 0;
    let mut pending: Vec<Announcement> = Vec::new();
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
    let mut buf = Vec::new();
    let mut heard = Instant::now();
    let mut probed = false;
    let ended = loop {
        let deadline = heard + if probed { QUIET + DEAD } else { QUIET };
        tokio::select! {
            changed = stopping.changed() => {
                if changed.is_err() || *stopping.borrow() {
                    let _ = urgent.send("QUIT :toyc daemon stopping".into());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break Ended::Stopping;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if probed {
                    break ended_by(registered, "the server stopped answering".into());
                }
                probed = true;
                let _ = urgent.send("PING :toyc".into());
            }
            announcement = announcements.recv() => {
                match announcement {
                    Ok(Announcement { channel, line }) if registered => {
                        for target in targets(config, channel) {
                            say(&target, &line);
                        }
                    }
                    // Said once registered (a run that failed while the server was
                    // away is still news), the oldest dropped beyond a screenful.
                    Ok(announcement) => {
                        if pending.len() == MAX_PENDING {
                            pending.remove(0);
                        }
                        pending.push(announcement);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "chat: announcements dropped (too many at once)");
                    }
                    Err(broadcast::error::RecvError::Closed) => {}
                }
            }
            // Partial lines stay in `buf` when another branch wins (read_until appends).
            read = reader.read_until(b'\n', &mut buf) => {
                match read {
                    Ok(0) => break ended_by(registered, "the server closed the connection".into()),
                    Ok(_) => {}
                    Err(e) => break ended_by(registered, e.to_string()),
                }
                if buf.last() != Some(&b'\n') {
                    // The last bytes before the end: the next read says so.
                    continue;
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                buf.clear();
                heard = Instant::now();
                probed = false;
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
                        for Announcement { channel, line } in pending.drain(..) {
                            for target in targets(config, channel) {
                                say(&target, &line);
                            }
                        }
                    }
                    // Taken (433, 436) or refused (432: too long for this server).
                    "432" | "433" | "436" if !registered => {
                        tries += 1;
                        if tries > MAX_NICK_TRIES {
                            break Ended::Early(format!("no nick like `{}` was accepted", config.nick));
                        }
                        nick = alternative(&config.nick, tries);
                        let _ = urgent.send(format!("NICK {nick}"));
                    }
                    "KICK" => {
                        let [channel, kicked, ..] = message.params.as_slice() else { continue };
                        if kicked.eq_ignore_ascii_case(&nick) && config.channels.contains(channel) {
                            let by = message.prefix.as_deref().unwrap_or("the server");
                            tracing::warn!(%channel, %by, "chat: kicked; joining again in {REJOIN:?}");
                            let urgent = urgent.clone();
                            let channel = channel.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(REJOIN).await;
                                let _ = urgent.send(format!("JOIN {channel}"));
                            });
                        }
                    }
                    // Unable to join: full, invite only, banned, wrong key.
                    "471" | "473" | "474" | "475" => {
                        tracing::warn!(reply = %message.params.join(" "), "chat: unable to join");
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

/// Where an announcement for `channel` goes: there (a channel it joins, or a nick),
/// else every channel it joins.
fn targets(config: &IrcConfig, channel: Option<String>) -> Vec<String> {
    match channel {
        Some(channel) if config.channels.contains(&channel) || !channel.starts_with(['#', '&']) => {
            vec![channel]
        }
        _ => config.channels.clone(),
    }
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
        assert_eq!(split("a\rQUIT :x\r\n"), vec!["a", "QUIT :x"]);
    }

    #[test]
    fn the_pace_is_a_burst_then_one_line_per_interval_even_after_a_long_quiet() {
        let start = Instant::now();
        let mut pace = Pace::new(start);
        // Quiet for a minute: still only a burst's worth at once, not a minute's.
        let quiet = start + Duration::from_secs(60);
        let mut now = quiet;
        let mut sent = Vec::new();
        while sent.len() < 10 {
            let wait = pace.wait(now);
            if wait.is_zero() {
                assert!(pace.take(now));
                sent.push(now - quiet);
            } else {
                assert!(!pace.take(now), "no token while waiting");
                now += wait;
            }
        }
        assert_eq!(sent[..4], [Duration::ZERO; 4]);
        for (i, at) in sent[4..].iter().enumerate() {
            assert_eq!(*at, RATE * (i as u32 + 1), "{sent:?}");
        }
        // Half a second of quiet gives one token back, not the burst.
        now += RATE;
        assert!(pace.take(now));
        assert!(!pace.take(now));
    }

    #[test]
    fn alternative_nicks_fit_nine_characters() {
        assert_eq!(alternative("jarvis", 1), "jarvis_");
        assert_eq!(alternative("jarvis", 2), "jarvis__");
        assert_eq!(alternative("jarvis", 3), "jarvis3");
        assert_eq!(alternative("jarvisbot", 1), "jarvisbo1");
        assert_eq!(alternative("jarvisbot", 12), "jarvisb12");
        assert!(
            (1..=MAX_NICK_TRIES).all(|t| alternative("averyveryverylongnick", t).len() <= NICK_LEN)
        );
    }

    #[test]
    fn only_allowed_nicks_or_masks_may_command() {
        let config = IrcConfig {
            server: String::new(),
            tls: false,
            ca_file: None,
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
