//! The runtime config file (`--runtime-config-file`), read the way Spin reads it: each section
//! belongs to one capability, sections and keys nobody understands stop start-up.

use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeConfigError {
    #[error("cannot read runtime config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid runtime config: {0}")]
    Invalid(String),
    #[error("unused runtime config key(s): {}", .0.join(", "))]
    UnusedKeys(Vec<String>),
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub outbound_pg: OutboundPgConfig,
}

/// `[outbound_pg]`: Spin's per-app cap on open guest Postgres connections.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundPgConfig {
    #[serde(default)]
    pub max_connections: Option<usize>,
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self, RuntimeConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| RuntimeConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, RuntimeConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| RuntimeConfigError::Invalid(e.to_string()))?;
        let mut config = RuntimeConfig::default();
        if let Some(value) = table.remove("outbound_pg") {
            config.outbound_pg = value.try_into().map_err(|e: toml::de::Error| {
                RuntimeConfigError::Invalid(e.message().to_owned())
            })?;
            if config.outbound_pg.max_connections == Some(0) {
                return Err(RuntimeConfigError::Invalid(
                    "outbound_pg.max_connections must be at least 1".into(),
                ));
            }
        }
        if !table.is_empty() {
            return Err(RuntimeConfigError::UnusedKeys(
                table.keys().cloned().collect(),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_unlimited() {
        assert_eq!(
            RuntimeConfig::parse("")
                .unwrap()
                .outbound_pg
                .max_connections,
            None
        );
    }

    #[test]
    fn reads_max_connections() {
        let c = RuntimeConfig::parse("[outbound_pg]\nmax_connections = 5\n").unwrap();
        assert_eq!(c.outbound_pg.max_connections, Some(5));
    }

    #[test]
    fn unknown_key_in_section_names_the_expected_one() {
        let err = RuntimeConfig::parse("[outbound_pg]\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `bogus`, expected `max_connections`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_section_is_refused() {
        let err = RuntimeConfig::parse("[bogus]\nx = 1\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "unused runtime config key(s): bogus");
    }

    #[test]
    fn zero_connections_is_refused() {
        assert!(RuntimeConfig::parse("[outbound_pg]\nmax_connections = 0\n").is_err());
    }
}
