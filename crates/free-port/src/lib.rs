//! A free local TCP port for a server that is started with its port given up front (a private
//! PostgreSQL or Redis, Prometheus, an app whose public URL names its port).
//!
//! Asking the kernel for port 0 and passing the number on is racy: that port is in the
//! ephemeral range, and any outgoing connection (a test's own database client, say) can take
//! it before the server binds it. Ports below that range are never handed out by the kernel on
//! its own, so a port found free there stays free unless someone binds it explicitly.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Where the search starts: clear of the well-known and registered ports most services use.
const LOWEST: u16 = 10_000;

/// The kernel's default ephemeral range starts here (Linux, `ip_local_port_range`).
const DEFAULT_EPHEMERAL_START: u16 = 32_768;

#[derive(Debug, thiserror::Error)]
#[error("no free TCP port on 127.0.0.1 between {LOWEST} and {0}")]
pub struct NoFreePort(u16);

/// A port on 127.0.0.1 that is free now, below the ephemeral range, and not handed out before
/// by this process (two servers started at once never get the same one).
pub fn free_port() -> Result<u16, NoFreePort> {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let end = ephemeral_start().max(LOWEST + 1);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = fastrand::u16(LOWEST..end);
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    Err(NoFreePort(end))
}

fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_below_the_ephemeral_range_and_never_repeat() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        let unique: HashSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), ports.len());
        for port in ports {
            assert!((LOWEST..ephemeral_start()).contains(&port), "{port}");
            TcpListener::bind(("127.0.0.1", port)).expect("still free");
        }
    }
}
