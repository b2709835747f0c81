//! A readiness handle: a component is ready once every watch registered
//! with it has listed its objects once.

use std::sync::Arc;

use tokio::sync::watch;

use tokio_util::sync::CancellationToken;

/// Shared by a component's watches; clone freely.
#[derive(Clone)]
pub struct Readiness {
    /// Names of the registered watches that have not listed yet.
    pending: Arc<watch::Sender<Vec<String>>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            pending: Arc::new(watch::channel(Vec::new()).0),
        }
    }
}

/// One registered watch; [`Ready::mark`] it when it has listed.
pub struct Ready {
    name: String,
    pending: Arc<watch::Sender<Vec<String>>>,
}

impl Ready {
    pub fn mark(self) {
        self.pending.send_modify(|pending| {
            if let Some(at) = pending.iter().position(|n| *n == self.name) {
                pending.swap_remove(at);
            }
        });
    }
}

impl Readiness {
    /// Registers a watch named `name`: not ready until it is marked.
    pub fn register(&self, name: &str) -> Ready {
        self.pending.send_modify(|p| p.push(name.to_string()));
        Ready {
            name: name.to_string(),
            pending: self.pending.clone(),
        }
    }

    /// Whether every registered watch has listed.
    pub fn is_ready(&self) -> bool {
        self.pending.borrow().is_empty()
    }

    /// The watches that have not listed yet.
    pub fn pending(&self) -> Vec<String> {
        self.pending.borrow().clone()
    }

    /// Waits until every registered watch has listed: true, or false if
    /// `shutdown` comes first.
    pub async fn wait(&self, shutdown: &CancellationToken) -> bool {
        let mut rx = self.pending.subscribe();
        tokio::select! {
            ready = rx.wait_for(Vec::is_empty) => ready.is_ok(),
            () = shutdown.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_once_every_registered_watch_is_marked() {
        let readiness = Readiness::default();
        assert!(readiness.is_ready());
        let a = readiness.register("a");
        let b = readiness.register("b");
        assert_eq!(readiness.pending(), ["a", "b"]);
        a.mark();
        assert!(!readiness.is_ready());
        let shutdown = CancellationToken::new();
        let waiter = {
            let (r, s) = (readiness.clone(), shutdown.clone());
            tokio::spawn(async move { r.wait(&s).await })
        };
        b.mark();
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait() {
        let readiness = Readiness::default();
        let _never = readiness.register("never");
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(!readiness.wait(&shutdown).await);
    }
}
