//! Health checks after a start: a command, an HTTP GET or a TCP connect, each try
//! bounded by the timeout, tried until one passes or the retries are spent.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{Check, Health};
use crate::process::run_check;

/// Tries `health` until it passes (`Ok`) or every retry failed (`Err`: the last reason).
pub async fn check(health: &Health, dir: &Path) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..health.retries {
        if attempt > 0 {
            tokio::time::sleep(health.interval).await;
        }
        let once = async {
            match &health.check {
                Check::Command(command) => {
                    run_check(command, dir, &[], health.timeout).await.map(drop)
                }
                Check::Http(url) => http_get(url).await,
                Check::Tcp(address) => TcpStream::connect(address.as_str())
                    .await
                    .map(drop)
                    .map_err(|e| format!("tcp {address}: {e}")),
            }
        };
        match tokio::time::timeout(health.timeout, once).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(why)) => last = why,
            Err(_) => last = format!("no answer within {}s", health.timeout.as_secs_f64()),
        }
    }
    Err(format!("{} tries: {last}", health.retries))
}

/// `GET url` over plain HTTP/1.0; a 2xx or 3xx status passes.
async fn http_get(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    // Read the whole answer (HTTP/1.0, the server closes): a client that hangs up
    // early makes some servers log a reset for every check.
    let mut head = Vec::new();
    let _ = (&mut stream)
        .take(64 * 1024)
        .read_to_end(&mut head)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let read = head.len();
    let status_line = String::from_utf8_lossy(&head[..read]);
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("GET {url}: not an HTTP answer"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("GET {url}: status {code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn health(check: Check) -> Health {
        Health {
            check,
            timeout: Duration::from_secs(2),
            retries: 2,
            interval: Duration::from_millis(50),
        }
    }

    /// A server that answers every connection with `answer`.
    async fn serve(answer: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let address = listener.local_addr().expect("its address").to_string();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0; 1024];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        address
    }

    #[tokio::test]
    async fn http_passes_on_2xx_and_3xx_and_fails_otherwise() {
        let dir = std::env::temp_dir();
        let ok = serve("HTTP/1.0 200 OK\r\n\r\nfine").await;
        let moved = serve("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n").await;
        let broken = serve("HTTP/1.0 503 Service Unavailable\r\n\r\n").await;
        assert_eq!(
            check(&health(Check::Http(format!("http://{ok}/health"))), &dir).await,
            Ok(())
        );
        assert_eq!(
            check(&health(Check::Http(format!("http://{moved}"))), &dir).await,
            Ok(())
        );
        let failed = check(&health(Check::Http(format!("http://{broken}/"))), &dir)
            .await
            .expect_err("503");
        assert!(
            failed.contains("status 503") && failed.starts_with("2 tries"),
            "{failed}"
        );
    }

    #[tokio::test]
    async fn tcp_and_command_checks() {
        let dir = std::env::temp_dir();
        let open = serve("").await;
        assert_eq!(check(&health(Check::Tcp(open)), &dir).await, Ok(()));
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
            listener.local_addr().expect("address").to_string()
        };
        assert!(check(&health(Check::Tcp(closed)), &dir).await.is_err());
        assert_eq!(
            check(&health(Check::Command("true".into())), &dir).await,
            Ok(())
        );
        let failed = check(&health(Check::Command("echo no; exit 1".into())), &dir)
            .await
            .expect_err("exit 1");
        assert!(failed.contains("no"), "{failed}");
    }
}
