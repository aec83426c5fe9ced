//! The app-wide cap on open guest Postgres connections: Spin's runtime-config
//! `[outbound_pg] max_connections`. This is where the demo's five slots live.
//!
//! One semaphore per app (per process), shared by all components. A guest takes a permit when it
//! opens a connection and gives it back when it drops that connection resource, or when its
//! component instance is dropped (the permit lives in the instance's store). Waiting for a permit
//! has no deadline, as in Spin.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct PgPermits {
    semaphore: Option<Arc<Semaphore>>,
    limit: Option<usize>,
    in_use: AtomicUsize,
    waiting: AtomicUsize,
}

/// A held slot. Dropping it frees the slot and says so in the log.
#[derive(Debug)]
pub struct PgPermit {
    _permit: Option<OwnedSemaphorePermit>,
    owner: Arc<PgPermits>,
    component: Arc<str>,
}

impl PgPermits {
    pub fn new(limit: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            semaphore: limit.map(|n| Arc::new(Semaphore::new(n))),
            limit,
            in_use: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        })
    }

    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Takes a slot, waiting as long as it takes for one to come free.
    pub async fn acquire(self: &Arc<Self>, component: &Arc<str>) -> PgPermit {
        let permit = match &self.semaphore {
            None => None,
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    let waiting = self.waiting.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        component = %component, in_use = self.in_use(), limit = self.limit,
                        waiting, "postgres permit: waiting for a free connection slot"
                    );
                    // Counted as waiting until this future finishes or is cancelled.
                    let _guard = WaitGuard(self);
                    let started = std::time::Instant::now();
                    let p = sem.clone().acquire_owned().await.ok();
                    tracing::info!(
                        component = %component,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "postgres permit: slot came free"
                    );
                    p
                }
            },
        };
        let in_use = self.in_use.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(component = %component, in_use, limit = self.limit, "postgres permit: taken");
        PgPermit {
            _permit: permit,
            owner: self.clone(),
            component: component.clone(),
        }
    }
}

struct WaitGuard<'a>(&'a PgPermits);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for PgPermit {
    fn drop(&mut self) {
        let in_use = self.owner.in_use.fetch_sub(1, Ordering::Relaxed) - 1;
        tracing::info!(
            component = %self.component, in_use, limit = self.owner.limit,
            "postgres permit: returned"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_pool_makes_the_next_open_wait_until_a_permit_returns() {
        let permits = PgPermits::new(Some(2));
        let c: Arc<str> = Arc::from("t");
        let a = permits.acquire(&c).await;
        let _b = permits.acquire(&c).await;
        assert_eq!(permits.in_use(), 2);
        let third = tokio::spawn({
            let permits = permits.clone();
            let c = c.clone();
            async move { permits.acquire(&c).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "third open must wait");
        assert_eq!(permits.waiting(), 1);
        drop(a);
        let _third = tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("proceeds once a permit returns")
            .unwrap();
        assert_eq!(permits.in_use(), 2);
        assert_eq!(permits.waiting(), 0);
    }

    #[tokio::test]
    async fn no_limit_never_waits() {
        let permits = PgPermits::new(None);
        let c: Arc<str> = Arc::from("t");
        let held: Vec<_> = futures::future::join_all((0..100).map(|_| permits.acquire(&c))).await;
        assert_eq!(permits.in_use(), 100);
        drop(held);
        assert_eq!(permits.in_use(), 0);
    }
}
