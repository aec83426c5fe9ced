//! A Redis key prefix of one run's own (the bench, a rehearsal run): everything written under
//! it is deleted when the prefix is dropped, so a shared Redis is left as it was found.

use redis::Commands;

/// A run's key prefix on one Redis server.
pub struct RedisPrefix {
    url: String,
    prefix: String,
}

impl RedisPrefix {
    /// Checks that Redis answers at `url`, so a run fails at its start rather than at its end.
    pub fn new(url: &str, prefix: &str) -> redis::RedisResult<Self> {
        redis::Client::open(url)?.get_connection()?;
        Ok(Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A key (or a sub-prefix) under this prefix.
    pub fn sub(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Deletes every key under the prefix; returns how many there were.
    pub fn clear(&self) -> redis::RedisResult<usize> {
        let mut conn = redis::Client::open(self.url.as_str())?.get_connection()?;
        // SCAN, not KEYS: a shared Redis keeps serving others while we look.
        let keys: Vec<String> = conn.scan_match(format!("{}*", self.prefix))?.collect();
        for chunk in keys.chunks(500) {
            redis::cmd("DEL").arg(chunk).exec(&mut conn)?;
        }
        Ok(keys.len())
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        if let Err(e) = self.clear() {
            eprintln!("cannot delete the Redis keys under {}: {e}", self.prefix);
        }
    }
}
