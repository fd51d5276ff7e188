//! A real IRC server (Debian's `ngircd`) for the chat tests, one per test that asks, on
//! a free loopback port (or a given one, to restart it where it was), stopped when
//! dropped or, by a watchdog, when the test process ends; and a raw IRC client that
//! plays the person in the channel.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running ngircd.
pub struct Ngircd {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its TLS port on 127.0.0.1, when started with [`Ngircd::start_tls`].
    pub tls_port: Option<u16>,
    /// The certificate of the TLS port (self-signed for 127.0.0.1): the CA to trust.
    pub ca: Option<PathBuf>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Ngircd {
    /// Start one on `port` (a free one when `None`), ready to accept clients.
    pub fn start(port: Option<u16>) -> Ngircd {
        Ngircd::start_with(port, false)
    }

    /// Start one on a free port, and a TLS port with a certificate for 127.0.0.1
    /// (self-signed, made here with `openssl`; [`Ngircd::ca`] is its file).
    pub fn start_tls() -> Ngircd {
        Ngircd::start_with(None, true)
    }

    fn start_with(port: Option<u16>, tls: bool) -> Ngircd {
        let free = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address").port()
        };
        let port = port.unwrap_or_else(free);
        let dir = tempfile::tempdir().expect("tempdir");
        let conf: PathBuf = dir.path().join("ngircd.conf");
        let mut text = format!(
            "[Global]\nName = irc.toyc.test\nInfo = toyc tests\nListen = 127.0.0.1\n\
             Ports = {port}\nServerUID = 65534\nServerGID = 65534\n\
             [Limits]\nMaxConnectionsIP = 0\nPingTimeout = 120\nPongTimeout = 20\n\
             [Options]\nDNS = no\nIdent = no\nPAM = no\n"
        );
        let (tls_port, ca) = if tls {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let made = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(made.success(), "openssl made no certificate");
            // Read by ngircd after it dropped to nobody (a throwaway key).
            let _ = Command::new("chmod").arg("644").arg(&key).status();
            let tls_port = free();
            text.push_str(&format!(
                "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {tls_port}\n",
                cert.display(),
                key.display()
            ));
            (Some(tls_port), Some(cert))
        } else {
            (None, None)
        };
        std::fs::write(&conf, text).expect("ngircd.conf");
        // ngircd drops to nobody: its directory and config must be readable.
        let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
        let _ = Command::new("chmod").arg("644").arg(&conf).status();
        // The watchdog ends ngircd when this test process ends without dropping it.
        let watchdog = format!(
            "ngircd -n -f {} >/dev/null 2>&1 & n=$!; echo $n; \
             while kill -0 {owner} 2>/dev/null && kill -0 $n 2>/dev/null; do sleep 1; done; \
             kill $n 2>/dev/null",
            conf.display(),
            owner = std::process::id()
        );
        let child = Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ngircd starts (Debian's ngircd; tests/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in std::iter::once(port).chain(tls_port) {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "ngircd never listened on {port}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ngircd {
            port,
            tls_port,
            ca,
            child,
            _dir: dir,
        }
    }

    /// Stop it (the port is free again soon after).
    /// Returns once the port refuses connections, so that a test knows when its
    /// clients lost the server (not up to a second later, when the watchdog looks).
    pub fn stop(&mut self) {
        // The watchdog's first line is ngircd's pid.
        if let Some(out) = self.child.stdout.take() {
            let mut pid = String::new();
            let _ = BufReader::new(out).read_line(&mut pid);
            let _ = Command::new("kill").arg(pid.trim()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // The watchdog has nothing left to watch.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A person in a channel, over a raw connection.
pub struct Person {
    stream: TcpStream,
    lines: mpsc::Receiver<String>,
    /// Every line received so far (for failure messages).
    pub seen: Vec<String>,
}

impl Person {
    /// Connect as `nick` and join `channel`.
    pub fn join(port: u16, nick: &str, channel: &str) -> Person {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to ngircd");
        let reader = stream.try_clone().expect("clone");
        let (tx, lines) = mpsc::channel();
        let mut pong = stream.try_clone().expect("clone");
        std::thread::spawn(move || {
            // Lossily: a line that is not UTF-8 (someone's old client) is still a line.
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                buf.clear();
                if let Some(token) = line.strip_prefix("PING ") {
                    let _ = write!(pong, "PONG {token}\r\n");
                }
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut person = Person {
            stream,
            lines,
            seen: Vec::new(),
        };
        person.send(&format!("NICK {nick}"));
        person.send(&format!("USER {nick} 0 * :a person"));
        person.wait_for(Duration::from_secs(10), |l| l.contains(" 001 "));
        person.send(&format!("JOIN {channel}"));
        person.wait_for(Duration::from_secs(10), |l| l.contains(" 366 "));
        person
    }

    /// Wait until `nick` is in the channel: already there when this person joined (the
    /// server's names list said so), or joining later.
    pub fn wait_for_nick(&mut self, nick: &str, limit: Duration) {
        let listed = |l: &str| {
            l.contains(" 353 ")
                && l.rsplit(':').next().is_some_and(|names| {
                    names
                        .split(' ')
                        .any(|n| n.trim_start_matches(['@', '+']) == nick)
                })
        };
        if self.seen.iter().any(|l| listed(l)) {
            return;
        }
        let joined = format!(":{nick}!");
        self.wait_for(limit, |l| l.starts_with(&joined) && l.contains("JOIN"));
    }

    /// Send a raw line.
    pub fn send(&mut self, line: &str) {
        write!(self.stream, "{line}\r\n").expect("write to ngircd");
    }

    /// Send raw bytes (a line that is not UTF-8, as old clients send).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to ngircd");
    }

    /// Say `text` in `channel`.
    pub fn say(&mut self, channel: &str, text: &str) {
        self.send(&format!("PRIVMSG {channel} :{text}"));
    }

    /// The next line that satisfies `want`, within `limit`; panics with what was seen.
    pub fn wait_for(&mut self, limit: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no expected line within {limit:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}
