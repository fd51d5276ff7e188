//! Ctrl-C as one process-wide signal: running scripts stop at their next operation,
//! commands in flight are killed on their hosts, and connections close cleanly.
//! Process-wide because the signal is: there is one Ctrl-C per process.

use std::sync::OnceLock;

use tokio::sync::watch;

fn channel() -> &'static watch::Sender<bool> {
    static CANCEL: OnceLock<watch::Sender<bool>> = OnceLock::new();
    CANCEL.get_or_init(|| watch::channel(false).0)
}

/// Ask everything running to stop.
pub fn cancel() {
    channel().send_replace(true);
}

/// Let work start again after a cancellation: in the console, Ctrl-C stops the line
/// that was running, not the process, and the next line must not start cancelled.
pub fn reset() {
    channel().send_replace(false);
}

/// Whether [`cancel`] was called (and not [`reset`] since).
pub fn is_cancelled() -> bool {
    *channel().borrow()
}

/// Completes once [`cancel`] is called (at once if it already was).
pub async fn cancelled() {
    let mut receiver = channel().subscribe();
    // The sender lives in a static, so it is never dropped and this cannot fail.
    let _ = receiver.wait_for(|cancelled| *cancelled).await;
}
