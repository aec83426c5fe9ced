//! How the live counts are kept in Redis: the key names and the scripts that read and write
//! them. Shared by the app (`guest_kit::counts`, which explains why counting this way cannot
//! lose or double a vote) and the benchmark's native baseline, so both do the same work.

/// Marker key: the counts under the prefix are a valid copy of PostgreSQL's while it exists.
pub const READY_KEY: &str = "counts:ready";
/// Lock key held by the one client rebuilding the counts.
pub const REBUILDING_KEY: &str = "counts:rebuilding";

/// KEYS: marker, count key. ARGV: delta. Returns the new count, or -1 when there is no valid
/// copy (the vote is in PostgreSQL and a rebuild will count it).
pub const COUNT_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[2], ARGV[1])
end
return -1
";

/// KEYS: marker, then the five count keys. Returns the five counts, or `{-1}` when there is
/// no valid copy.
pub const READ_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1}
end
local out = {}
for i = 2, #KEYS do
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
return out
";

/// KEYS: marker, rebuild lock, then the five count keys. ARGV: the five counts. Writes the
/// counts and the marker and releases the lock.
pub const REBUILD_SCRIPT: &str = r"
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i - 2])
end
redis.call('SET', KEYS[1], '1')
redis.call('DEL', KEYS[2])
return 1
";
