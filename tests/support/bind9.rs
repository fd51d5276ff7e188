//! A real BIND 9 server for the tests: one per test process, started on first use on a
//! free loopback port, serving the zone `example.test` that accepts updates signed with
//! the TSIG key `toyc-test`; stopped by a watchdog when the test process ends.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The zone it serves.
pub const ZONE: &str = "example.test";
/// The TSIG key's name.
pub const KEY: &str = "toyc-test";
/// The TSIG key's secret (base64): a test value.
pub const SECRET: &str = "dG95Yy10ZXN0LXRzaWctc2VjcmV0LTMyLWJ5dGVzISE=";

/// The running server.
pub struct Bind {
    /// Its port on 127.0.0.1 (UDP and TCP).
    pub port: u16,
    /// A file holding [`SECRET`] (for `tsig_secret_file`).
    pub secret_file: PathBuf,
    /// The shell that runs named and stops it when the test process ends; never waited
    /// for, since it outlives every test.
    _watchdog: std::sync::Mutex<std::process::Child>,
}

impl Bind {
    /// `dig` of `name`'s `kind` records at this server, one answer per line.
    pub fn dig(&self, name: &str, kind: &str) -> String {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+short",
                name,
                kind,
            ])
            .output()
            .expect("dig runs (bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// A port free for both UDP and TCP on 127.0.0.1, as far as can be told.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("address").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The test process's server, started on the first call.
pub fn server() -> &'static Bind {
    static SERVER: OnceLock<Bind> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = PathBuf::from(format!("/tmp/toyc-bind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bind dir");
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("named.conf"),
            format!(
                "options {{ directory \"{d}\"; listen-on port {port} {{ 127.0.0.1; }}; \
                 listen-on-v6 {{ none; }}; pid-file \"{d}/named.pid\"; recursion no; \
                 dnssec-validation no; session-keyfile \"{d}/session.key\"; \
                 managed-keys-directory \"{d}\"; }};\n\
                 controls {{ }};\n\
                 key \"{KEY}\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n\
                 zone \"{ZONE}\" {{ type primary; file \"{d}/{ZONE}.zone\"; \
                 allow-update {{ key \"{KEY}\"; }}; }};\n"
            ),
        )
        .expect("named.conf");
        std::fs::write(
            dir.join(format!("{ZONE}.zone")),
            format!(
                "$TTL 300\n@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 300\n\
                 @ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n"
            ),
        )
        .expect("zone");
        let secret_file = dir.join("tsig.secret");
        std::fs::write(&secret_file, SECRET).expect("secret");
        // named in the foreground under a shell that stops it (and removes its
        // directory) when this test process is gone.
        let watchdog = format!(
            "named -g -c {d}/named.conf >{d}/log 2>&1 & n=$!; \
             while kill -0 {owner} 2>/dev/null && kill -0 $n 2>/dev/null; do sleep 1; done; \
             kill $n 2>/dev/null; sleep 1; rm -rf {d}",
            owner = std::process::id()
        );
        let watchdog = Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("named starts (Debian's bind9; tests/run installs it)");
        let bind = Bind {
            port,
            secret_file,
            _watchdog: std::sync::Mutex::new(watchdog),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !bind.dig(ZONE, "SOA").contains("admin") {
            assert!(
                Instant::now() < deadline,
                "named did not answer on port {port}: {}",
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        bind
    })
}
