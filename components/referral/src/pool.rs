//! The PostgreSQL connections this instance keeps between requests.
//!
//! A referral check can take two queries (see `lookup.rs`), and a busy instance serves many
//! checks a second, so connections are reused instead of opened per query. Spin caps the whole
//! app at `max_connections` (five) — a connection parked here holds one of those slots — so idle
//! ones are closed again after `IDLE_FOR` by a small background reaper, which also tells the
//! app's metrics how many connections this instance holds.

use std::cell::RefCell;
use std::ops::Deref;
use std::rc::Rc;
use std::time::{Duration, Instant};

use guest_kit::GuestError;
use spin_sdk::pg;

/// How long an unused connection is kept.
const IDLE_FOR: Duration = Duration::from_millis(500);
/// How often the reaper looks.
const REAP_EVERY: Duration = Duration::from_millis(250);
/// How long a published count stays valid without being refreshed.
const PUBLISH_TTL: Duration = Duration::from_secs(2);

struct Slot {
    id: u64,
    conn: Rc<pg::Connection>,
    in_use: bool,
    idle_since: Instant,
}

#[derive(Default)]
struct Pool {
    slots: Vec<Slot>,
    next_id: u64,
    reaper_running: bool,
}

thread_local! {
    // Lives as long as the component instance: Spin reuses an instance for
    // many requests, so this is shared by all of them.
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// A connection checked out of the pool; give it back with [`checkin`].
pub struct Lease {
    slot: u64,
    conn: Rc<pg::Connection>,
}

impl Deref for Lease {
    type Target = pg::Connection;

    fn deref(&self) -> &pg::Connection {
        &self.conn
    }
}

/// An idle connection, or a new one (waiting at most `wait` for a free slot).
pub async fn checkout(url: &str, wait: Duration) -> Result<Lease, GuestError> {
    if let Some(lease) = POOL.with_borrow_mut(Pool::take_idle) {
        return Ok(lease);
    }
    let conn = guest_kit::open_postgres(url, wait).await?;
    let lease = POOL.with_borrow_mut(|pool| pool.add_in_use(conn));
    start_reaper();
    Ok(lease)
}

/// Returns a connection to the pool for the next query.
pub fn checkin(lease: Lease) {
    POOL.with_borrow_mut(|pool| pool.release(lease.slot));
}

impl Pool {
    fn take_idle(&mut self) -> Option<Lease> {
        let slot = self.slots.iter_mut().find(|s| !s.in_use)?;
        slot.in_use = true;
        Some(Lease {
            slot: slot.id,
            conn: slot.conn.clone(),
        })
    }

    fn add_in_use(&mut self, conn: pg::Connection) -> Lease {
        self.next_id += 1;
        let conn = Rc::new(conn);
        self.slots.push(Slot {
            id: self.next_id,
            conn: conn.clone(),
            in_use: true,
            idle_since: Instant::now(),
        });
        Lease {
            slot: self.next_id,
            conn,
        }
    }

    fn release(&mut self, id: u64) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.id == id) {
            slot.in_use = false;
            slot.idle_since = Instant::now();
        }
    }

    /// Closes connections unused for `IDLE_FOR`; returns how many remain.
    fn reap(&mut self) -> usize {
        self.slots
            .retain(|s| s.in_use || s.idle_since.elapsed() < IDLE_FOR);
        self.slots.len()
    }
}

/// The reaper runs while the pool holds connections, and stops once it is
/// empty so an idle instance can be retired.
fn start_reaper() {
    let already = POOL.with_borrow_mut(|pool| std::mem::replace(&mut pool.reaper_running, true));
    if already {
        return;
    }
    spin_sdk::wasip3::spawn(async {
        loop {
            let held = POOL.with_borrow(|pool| pool.slots.len());
            if let Err(e) = guest_kit::telemetry::publish_held_handles(held, PUBLISH_TTL).await {
                eprintln!("referral: cannot publish pool size: {e}");
            }
            if held == 0 {
                POOL.with_borrow_mut(|pool| pool.reaper_running = false);
                break;
            }
            spin_sdk::time::sleep(REAP_EVERY).await;
            POOL.with_borrow_mut(Pool::reap);
        }
    });
}
