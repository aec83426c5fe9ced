//! The bench's own database and Redis keys, made at the start and removed at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A database of this run's own on the given server, dropped on drop.
pub struct Database {
    admin_url: String,
    name: String,
    pub url: String,
}

fn psql(url: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-Atq"])
        .args(args)
        .output()
        .context("running psql (install postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "psql {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `url` with its database part replaced by `db`.
fn with_database(url: &str, db: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let rest = base
        .split_once("://")
        .map(|(_, r)| r)
        .context("a postgres:// URL")?;
    let server = rest.split('/').next().unwrap_or(rest);
    let scheme = &base[..base.len() - rest.len()];
    Ok(format!("{scheme}{server}/{db}{query}"))
}

impl Database {
    pub fn create(admin_url: &str, name: &str) -> anyhow::Result<Self> {
        psql(admin_url, &["-c", &format!("CREATE DATABASE \"{name}\"")])?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
            url: with_database(admin_url, name)?,
        })
    }

    /// Runs migrations/ then seed/ with psql, as `./dev` and the chart's Job do; returns how
    /// long the seed (500,000 partners) took.
    pub fn migrate_and_seed(&self) -> anyhow::Result<Duration> {
        for f in sql_files("migrations")? {
            psql(&self.url, &["-f", &f.display().to_string()])?;
        }
        let started = Instant::now();
        for f in sql_files("seed")? {
            psql(&self.url, &["-f", &f.display().to_string()])?;
        }
        Ok(started.elapsed())
    }

    pub fn host_port(&self) -> String {
        host_port(&self.url, 5432)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.admin_url,
            &[
                "-c",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            ],
        ) {
            eprintln!("bench: cannot drop database {}: {e:#}", self.name);
        }
    }
}

fn sql_files(dir: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {dir}/ (run from the repository root)"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    Ok(files)
}

/// `host:port` of a `postgres://` or `redis://` URL (for `allowed_outbound_hosts`).
pub fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    }
}

/// `[outbound_pg] max_connections` of a Spin runtime config (the poll's PostgreSQL slots).
pub fn max_connections(path: &Path) -> anyhow::Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: toml::Value = toml::from_str(&text).context("runtime config is not TOML")?;
    value
        .get("outbound_pg")
        .and_then(|t| t.get("max_connections"))
        .and_then(toml::Value::as_integer)
        .and_then(|n| usize::try_from(n).ok())
        .with_context(|| format!("{} has no [outbound_pg] max_connections", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b").unwrap(),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@db/x?sslmode=disable", "b").unwrap(),
            "postgres://u:p@db/b?sslmode=disable"
        );
        assert_eq!(host_port("postgres://u:p@db/x", 5432), "db:5432");
        assert_eq!(host_port("redis://127.0.0.1:6390", 6379), "127.0.0.1:6390");
    }
}
