//! The IRC adapter on its own, against a real ngircd with people in the channels (raw
//! clients): what it answers, whom it refuses, how it splits and paces a long answer,
//! where announcements go, another nick when its own is taken, and coming back after the
//! server restarts. The commands are a test double: the adapter is what is tested here
//! (the daemon's real commands are driven from chat in `workflows.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};
use toyc_daemon::chat::irc::{self, IrcConfig};
use toyc_daemon::chat::{Announcement, Asked, Command, Commands};

use crate::support::ngircd::{Ngircd, Person};

/// Answers like the daemon would, from nothing: a status line naming who asked, a
/// 20-line `list` with one line too long for IRC.
struct Double;

/// The help line.
const HELP: &str = "deploy NAME | status NAME | list | cancel NAME | help";

/// The 7th line of `list`: 900 bytes, multi-byte characters around the cut.
fn long_line() -> String {
    format!("07 {}", "ünïcode ".repeat(90))
}

#[async_trait]
impl Commands for Double {
    async fn handle(&self, asked: &Asked) -> Vec<String> {
        match &asked.command {
            Command::Status { name } => vec![format!(
                "{name}: working on step 2 of 5 (asked by {} in {})",
                asked.nick, asked.channel
            )],
            Command::List => (1..=20)
                .map(|i| {
                    if i == 7 {
                        long_line()
                    } else {
                        format!("{i:02} run{i}: done")
                    }
                })
                .collect(),
            _ => vec![HELP.to_owned()],
        }
    }
}

/// The adapter running on its own runtime; stopped when dropped.
struct Bot {
    announce: broadcast::Sender<Announcement>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bot {
    fn start(port: u16, channels: &[&str]) -> Bot {
        let config = IrcConfig {
            server: format!("127.0.0.1:{port}"),
            tls: false,
            ca_file: None,
            nick: "jarvis".into(),
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            allowed: vec!["anna".into(), "carl!*@127.0.0.*".into()],
        };
        Bot::start_with(config, None)
    }

    fn start_with(config: IrcConfig, password: Option<String>) -> Bot {
        let (announce, announcements) = broadcast::channel(64);
        let (stop, stopping) = watch::channel(false);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(irc::run(
                config,
                password,
                Arc::new(Double),
                announcements,
                stopping,
            ));
        });
        Bot {
            announce,
            stop,
            thread: Some(thread),
        }
    }

    fn announce(&self, channel: Option<&str>, line: &str) {
        self.announce
            .send(Announcement {
                channel: channel.map(str::to_owned),
                line: line.to_owned(),
            })
            .expect("the adapter listens");
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Lines from the bot.
fn from_bot(line: &str) -> bool {
    line.starts_with(":jarvis!")
}

#[test]
fn the_chat_bot_answers_where_asked_refuses_strangers_and_announces_in_the_right_channel() {
    let irc = Ngircd::start(None);
    let bot = Bot::start(irc.port, &["#ops", "#dev"]);
    let mut anna = Person::join(irc.port, "anna", "#ops");
    anna.wait_for_nick("jarvis", Duration::from_secs(20));
    let mut carl = Person::join(irc.port, "carl", "#dev");
    carl.wait_for_nick("jarvis", Duration::from_secs(20));

    anna.say("#ops", "jarvis: help");
    anna.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.ends_with(&format!("PRIVMSG #ops :{HELP}"))
    });
    anna.say("#ops", "jarvis, status x");
    anna.wait_for(Duration::from_secs(10), |l| {
        from_bot(l)
            && l.ends_with("PRIVMSG #ops :x: working on step 2 of 5 (asked by anna in #ops)")
    });
    // Carl is allowed by mask, in the other channel.
    carl.say("#dev", "jarvis: status y");
    carl.wait_for(Duration::from_secs(10), |l| {
        from_bot(l)
            && l.ends_with("PRIVMSG #dev :y: working on step 2 of 5 (asked by carl in #dev)")
    });
    // A private message is answered privately.
    anna.send("PRIVMSG jarvis :status z");
    anna.wait_for(Duration::from_secs(10), |l| {
        from_bot(l)
            && l.ends_with("PRIVMSG anna :z: working on step 2 of 5 (asked by anna in anna)")
    });

    // Someone not allowed gets a polite no, and nothing is handled for them.
    let mut bob = Person::join(irc.port, "bob", "#ops");
    bob.say("#ops", "jarvis: status x");
    let refusal = bob.wait_for(Duration::from_secs(10), from_bot);
    assert!(
        refusal.contains("PRIVMSG #ops :bob: sorry, you may not command me"),
        "{refusal}"
    );
    // Text that is not UTF-8 (an old Latin-1 client) is no reason to drop the connection.
    bob.send_bytes(b"PRIVMSG #ops :caf\xe9 jarvis\r\n");
    bob.send_bytes(b"PRIVMSG #ops :jarvis: status caf\xe9\r\n");
    bob.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.contains("bob: sorry")
    });
    anna.say("#ops", "jarvis: status after");
    anna.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.contains(":after: working on step")
    });

    // Text about the bot but not addressed to it is not a command.
    anna.say("#ops", "jarvis is busy today");
    bot.announce(Some("#dev"), "dev1: step 3 of 5 failed");
    bot.announce(None, "everyone: the daemon is stopping");
    carl.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.ends_with("PRIVMSG #dev :dev1: step 3 of 5 failed")
    });
    carl.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.ends_with("PRIVMSG #dev :everyone: the daemon is stopping")
    });
    anna.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.ends_with("PRIVMSG #ops :everyone: the daemon is stopping")
    });
    let said: Vec<&String> = anna.seen.iter().filter(|l| from_bot(l)).collect();
    assert!(
        !said.iter().any(|l| l.contains("dev1")),
        "#dev's announcement stayed in #dev: {said:?}"
    );
    assert!(
        !said.iter().any(|l| l.contains("busy")),
        "not addressed, not answered: {said:?}"
    );
    // One connection all along: the bot joined once.
    let joins = anna
        .seen
        .iter()
        .filter(|l| from_bot(l) && l.contains(" JOIN "))
        .count();
    assert!(joins <= 1, "the bot reconnected: {:?}", anna.seen);
    drop(bot);
    anna.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.contains(" QUIT ")
    });
}

#[test]
fn a_long_answer_is_split_and_paced_and_the_server_never_kicks_the_bot() {
    let irc = Ngircd::start(None);
    let _bot = Bot::start(irc.port, &["#ops"]);
    let mut anna = Person::join(irc.port, "anna", "#ops");
    anna.wait_for_nick("jarvis", Duration::from_secs(20));
    // Quiet for a while first: the pace holds after an idle spell too (a refill that
    // caught up on missed ticks let everything out at once).
    std::thread::sleep(Duration::from_secs(3));
    let from = anna.seen.len();
    anna.say("#ops", "jarvis: list");
    let first = anna.wait_for(Duration::from_secs(10), from_bot);
    let started = Instant::now();
    anna.wait_for(Duration::from_secs(60), |l| {
        from_bot(l) && l.ends_with(":20 run20: done")
    });
    let took = started.elapsed();
    let said: Vec<String> = anna.seen[from..]
        .iter()
        .filter(|l| from_bot(l))
        .map(|l| {
            l.split_once("PRIVMSG #ops :")
                .map(|(_, text)| text.to_owned())
                .unwrap_or_else(|| panic!("only answers: {l}"))
        })
        .collect();
    assert!(first.ends_with(":01 run1: done"), "{first}");
    // 19 short lines and the long one in 3 pieces, in order.
    assert_eq!(said.len(), 22, "{said:#?}");
    assert!(said.iter().all(|l| l.len() <= 400), "{said:#?}");
    let long: String = said[6..9].join(" ");
    assert_eq!(
        long,
        long_line().trim_end(),
        "split on spaces, nothing lost"
    );
    let numbers: Vec<&str> = said
        .iter()
        .filter(|l| l.ends_with("done"))
        .map(|l| &l[..2])
        .collect();
    let expected: Vec<String> = (1..=20)
        .filter(|i| *i != 7)
        .map(|i| format!("{i:02}"))
        .collect();
    assert_eq!(numbers, expected);
    // After a burst of 4, one line per 500 ms: 18 more lines after the first 4.
    let floor = Duration::from_millis(500) * 17;
    assert!(took >= floor, "22 lines in {took:?}: faster than the pace");
    assert!(
        !anna
            .seen
            .iter()
            .any(|l| l.contains("Flood") || l.contains(" QUIT ")),
        "{:?}",
        anna.seen
    );
}

#[test]
fn the_chat_bot_takes_another_nick_when_its_own_is_taken_and_rejoins_after_a_restart() {
    let mut irc = Ngircd::start(None);
    let port = irc.port;
    // Someone already has the bot's nick.
    let squatter = Person::join(port, "jarvis", "#elsewhere");
    let bot = Bot::start(port, &["#ops", "#dev"]);
    let mut anna = Person::join(port, "anna", "#ops");
    anna.wait_for_nick("jarvis_", Duration::from_secs(20));
    anna.say("#ops", "jarvis_: help");
    anna.wait_for(Duration::from_secs(10), |l| {
        l.starts_with(":jarvis_!") && l.ends_with(&format!(":{HELP}"))
    });
    drop(squatter);

    // The server goes away and comes back on the same port.
    irc.stop();
    // Said while it is away (once it has seen the connection go: what is said into a
    // dying connection is lost), said when it is back.
    std::thread::sleep(Duration::from_millis(300));
    bot.announce(Some("#dev"), "dev3: failed while the server was away");
    // Two seconds: its first try (1 to 1.5 s after the server went) fails, the next is
    // 2 to 3 s after that, by when carl is in #dev to hear what it kept.
    std::thread::sleep(Duration::from_millis(1700));
    let _irc = Ngircd::start(Some(port));
    let mut carl = Person::join(port, "carl", "#dev");
    let mut anna = Person::join(port, "anna", "#ops");
    // Its own nick is free now.
    anna.wait_for_nick("jarvis", Duration::from_secs(60));
    carl.wait_for_nick("jarvis", Duration::from_secs(10));
    anna.say("#ops", "jarvis: status back");
    anna.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.contains(":back: working on step")
    });
    carl.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.ends_with("PRIVMSG #dev :dev3: failed while the server was away")
    });
    bot.announce(Some("#dev"), "dev2: ready");
    carl.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.ends_with("PRIVMSG #dev :dev2: ready")
    });
}

#[test]
fn the_chat_bot_speaks_tls_and_trusts_only_the_certificate_it_is_given() {
    let irc = Ngircd::start_tls();
    let tls_port = irc.tls_port.expect("a TLS port");
    let config = |nick: &str, ca_file| IrcConfig {
        server: format!("127.0.0.1:{tls_port}"),
        tls: true,
        ca_file,
        nick: nick.into(),
        channels: vec!["#ops".into()],
        allowed: vec!["anna".into()],
    };
    // The system's roots do not vouch for a self-signed certificate: never connects.
    let _doubter = Bot::start_with(config("doubter", None), None);
    let _bot = Bot::start_with(config("jarvis", irc.ca.clone()), None);
    let mut anna = Person::join(irc.port, "anna", "#ops");
    anna.wait_for_nick("jarvis", Duration::from_secs(20));
    anna.say("#ops", "jarvis: help");
    anna.wait_for(Duration::from_secs(10), |l| {
        from_bot(l) && l.ends_with(&format!("PRIVMSG #ops :{HELP}"))
    });
    anna.send("WHOIS doubter");
    anna.wait_for(Duration::from_secs(10), |l| {
        l.contains(" 401 anna doubter ")
    });
}

#[test]
fn a_taken_nick_at_the_length_limit_gives_way_to_another_and_a_kick_is_followed_by_a_rejoin() {
    let irc = Ngircd::start(None);
    // anna makes #ops first, so she is its operator and may kick.
    let mut anna = Person::join(irc.port, "anna", "#ops");
    // Nine characters: ngircd's limit, so `jarvisbot_` is no nick at all.
    let _squatter = Person::join(irc.port, "jarvisbot", "#elsewhere");
    let config = IrcConfig {
        server: format!("127.0.0.1:{}", irc.port),
        tls: false,
        ca_file: None,
        nick: "jarvisbot".into(),
        channels: vec!["#ops".into()],
        allowed: vec!["anna".into()],
    };
    let _bot = Bot::start_with(config, None);
    anna.wait_for_nick("jarvisbo1", Duration::from_secs(20));
    anna.send("KICK #ops jarvisbo1 :out you go");
    anna.wait_for(Duration::from_secs(10), |l| {
        l.contains(" KICK #ops jarvisbo1")
    });
    anna.wait_for(Duration::from_secs(30), |l| {
        l.starts_with(":jarvisbo1!") && l.contains(" JOIN ")
    });
    anna.say("#ops", "jarvisbo1: help");
    anna.wait_for(Duration::from_secs(10), |l| {
        l.starts_with(":jarvisbo1!") && l.ends_with(&format!(":{HELP}"))
    });
}
