//! A batch of writes that a pass can leave behind (I/O: tokio tasks): when
//! something changes DNS while the glbc writes statuses, the pass returns
//! at once so that the next one publishes the change; the writes already
//! sent keep running as tasks, and the next batch collects them before it
//! starts (so that none is forgotten, written twice or announced twice).
//!
//! Waiting for them instead cost a failover up to seconds: on a busy
//! control plane, sixteen status writes in flight (each with its Event)
//! took 1–1.8 s to come back, and the dead cluster stayed in DNS that long.

use std::future::Future;
use std::pin::pin;

use futures::FutureExt;
use tokio::task::JoinSet;

/// Writes in flight, kept from one pass to the next.
pub struct Batch<O> {
    running: JoinSet<O>,
}

/// What [`Batch::run`] did.
#[derive(Debug)]
pub struct Ran<O> {
    /// The outputs of the writes that finished, in the order they did.
    pub done: Vec<O>,
    /// The items not started (stopped) or not finished yet (left running).
    pub unfinished: usize,
}

impl<O: Send + 'static> Default for Batch<O> {
    fn default() -> Self {
        Self {
            running: JoinSet::new(),
        }
    }
}

impl<O: Send + 'static> Batch<O> {
    /// The outputs of the writes an earlier [`Batch::run`] left running,
    /// once they all finished (a write that panicked gives none).
    pub async fn collect(&mut self) -> Vec<O> {
        let mut done = Vec::new();
        while let Some(joined) = self.running.join_next().await {
            if let Ok(output) = joined {
                done.push(output);
            }
        }
        done
    }

    /// How many writes are still running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Runs `work` on `items`, `concurrency` at once, in their order, until
    /// `stop` resolves: from then on none starts, and it returns without
    /// waiting for those started (they run on; [`Batch::collect`] has
    /// them). Call `collect` first: writes left by an earlier run count
    /// against `concurrency`.
    pub async fn run<T, F>(
        &mut self,
        items: Vec<T>,
        concurrency: usize,
        stop: impl Future<Output = ()>,
        mut work: impl FnMut(T) -> F,
    ) -> Ran<O>
    where
        F: Future<Output = O> + Send + 'static,
    {
        let total = items.len();
        let mut items = items.into_iter();
        let mut stop = pin!(stop);
        let mut done = Vec::new();
        loop {
            if (&mut stop).now_or_never().is_some() {
                break;
            }
            while self.running.len() < concurrency.max(1) {
                match items.next() {
                    Some(item) => {
                        self.running.spawn(work(item));
                    }
                    None => break,
                }
            }
            if self.running.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                () = &mut stop => break,
                Some(joined) = self.running.join_next() => {
                    if let Ok(output) = joined {
                        done.push(output);
                    }
                }
            }
        }
        Ran {
            unfinished: total - done.len().min(total),
            done,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::{Semaphore, oneshot};

    use super::*;

    #[tokio::test]
    async fn a_stopped_batch_starts_nothing_more_and_leaves_what_started_running() {
        let started = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let mut stop_tx = Some(stop_tx);
        // Item 0 stops the batch as it is started (a cluster changed
        // meanwhile); item 1 is started beside it (2 at once) and both
        // hang until released: the run returns without them.
        let release = Arc::new(Semaphore::new(0));
        let mut batch = Batch::default();
        let ran = batch
            .run(
                (0..10u32).collect(),
                2,
                async {
                    let _ = stop_rx.await;
                },
                |i| {
                    started.lock().unwrap().push(i);
                    if i == 0 {
                        let _ = stop_tx.take().map(|tx| tx.send(()));
                    }
                    let release = release.clone();
                    async move {
                        let _permit = release.acquire().await;
                        i
                    }
                },
            )
            .await;
        assert!(ran.done.is_empty());
        assert_eq!(ran.unfinished, 10);
        assert_eq!(*started.lock().unwrap(), [0, 1]);
        assert_eq!(batch.running(), 2);
        // They ran on; the next collect has them, each once.
        release.add_permits(2);
        let mut left = batch.collect().await;
        left.sort();
        assert_eq!(left, [0, 1]);
        assert_eq!(batch.running(), 0);
        assert!(batch.collect().await.is_empty());
    }

    #[tokio::test]
    async fn an_unstopped_batch_runs_everything_once_at_the_given_concurrency() {
        let at_once = Arc::new(Mutex::new((0usize, 0usize)));
        let mut batch = Batch::default();
        let ran = batch
            .run((0..10u32).collect(), 3, std::future::pending(), |i| {
                let at_once = at_once.clone();
                async move {
                    {
                        let mut a = at_once.lock().unwrap();
                        a.0 += 1;
                        a.1 = a.1.max(a.0);
                    }
                    tokio::task::yield_now().await;
                    at_once.lock().unwrap().0 -= 1;
                    i
                }
            })
            .await;
        let mut done = ran.done;
        done.sort();
        assert_eq!(done, (0..10).collect::<Vec<_>>());
        assert_eq!(ran.unfinished, 0);
        assert!(at_once.lock().unwrap().1 <= 3);
        assert_eq!(batch.running(), 0);
    }

    #[tokio::test]
    async fn a_batch_stopped_before_it_starts_starts_nothing() {
        let mut batch: Batch<u32> = Batch::default();
        let ran = batch
            .run((0..10u32).collect(), 3, async {}, |i| async move { i })
            .await;
        assert!(ran.done.is_empty());
        assert_eq!(ran.unfinished, 10);
        assert_eq!(batch.running(), 0);
    }
}
