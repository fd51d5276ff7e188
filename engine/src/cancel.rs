//! Cancelling a run: running scripts stop at their next operation, commands in flight are
//! killed on their hosts, and connections close cleanly.
//!
//! A [`Cancel`] belongs to one run (see [`crate::run::RunContext`]): in a process that
//! runs many jobs at once, cancelling one leaves the others alone. The CLI cancels its
//! one run on Ctrl-C; the console cancels the line that is running and then
//! [`Cancel::reset`]s, so the next line starts afresh.

use std::sync::Arc;

use tokio::sync::watch;

/// The cancellation of one run. Clones share it.
#[derive(Debug, Clone)]
pub struct Cancel {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Cancel {
        Cancel::new()
    }
}

impl Cancel {
    /// A run that is not cancelled.
    pub fn new() -> Cancel {
        Cancel {
            sender: Arc::new(watch::channel(false).0),
        }
    }

    /// Ask everything of this run to stop.
    pub fn cancel(&self) {
        self.sender.send_replace(true);
    }

    /// Let work start again after a cancellation: in the console, Ctrl-C stops the line
    /// that was running, not the session, and the next line must not start cancelled.
    pub fn reset(&self) {
        self.sender.send_replace(false);
    }

    /// Whether [`Cancel::cancel`] was called (and not [`Cancel::reset`] since).
    pub fn is_cancelled(&self) -> bool {
        *self.sender.borrow()
    }

    /// Completes once [`Cancel::cancel`] is called (at once if it already was).
    pub async fn cancelled(&self) {
        let mut receiver = self.sender.subscribe();
        // `self` holds the sender, so it outlives this wait and the wait cannot fail.
        let _ = receiver.wait_for(|cancelled| *cancelled).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancelling_one_run_leaves_another_alone() {
        let (one, other) = (Cancel::new(), Cancel::new());
        let shared = one.clone();
        one.cancel();
        assert!(shared.is_cancelled());
        assert!(!other.is_cancelled());
        shared.cancelled().await;
        one.reset();
        assert!(!shared.is_cancelled());
    }
}
