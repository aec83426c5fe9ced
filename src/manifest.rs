//! The Spin application manifest (`spin.toml`, `spin_manifest_version = 2`): the subset of its
//! schema our poll uses, parsed with Spin's strictness (unknown fields are errors).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

// Fields the runtime does not act on are still parsed, so that the manifest is validated as
// strictly as Spin validates it.

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid manifest {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
}

/// An application variable: either has a default or is required. (`secret` matters to Spin's
/// logging; this runtime never logs variable values at all.)
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct HttpTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub route: Route,
    pub component: String,
    #[serde(default)]
    pub executor: Option<toml::Value>,
}

/// `route = "/path/..."` or `route = { private = true }` (reachable only by service chaining).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Route {
    Path(String),
    Private(PrivateRoute),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PrivateRoute {
    pub private: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Component {
    pub source: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub files: Vec<FileMount>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub build: Option<toml::Value>,
}

/// `files` entries: a plain path (mounted at the same relative path) or a source/destination map.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileMount {
    Placement { source: String, destination: String },
    Pattern(String),
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ManifestError::Parse { message, .. } => ManifestError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: PathBuf::from("spin.toml"),
            message: e.to_string(),
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        if self.spin_manifest_version != 2 {
            return Err(ManifestError::Invalid(format!(
                "spin_manifest_version must be 2, found {}",
                self.spin_manifest_version
            )));
        }
        for name in self.variables.keys() {
            crate::variables::validate_name(name).map_err(ManifestError::Invalid)?;
        }
        for (id, decl) in &self.variables {
            if decl.required && decl.default.is_some() {
                return Err(ManifestError::Invalid(format!(
                    "variable `{id}` cannot be both required and have a default"
                )));
            }
        }
        for trigger in &self.trigger.http {
            if !self.component.contains_key(&trigger.component) {
                return Err(ManifestError::Invalid(format!(
                    "trigger for route {:?} names component `{}` which is not defined",
                    trigger.route, trigger.component
                )));
            }
            if let Route::Path(p) = &trigger.route
                && !p.starts_with('/')
            {
                return Err(ManifestError::Invalid(format!(
                    "route `{p}` must start with '/'"
                )));
            }
        }
        for (id, component) in &self.component {
            for name in component.variables.keys() {
                crate::variables::validate_name(name)
                    .map_err(|e| ManifestError::Invalid(format!("component `{id}`: {e}")))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
greeting = { default = "hi" }
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "web.wasm"
files = [{ source = "static", destination = "/" }, "README.md"]
"#;

    #[test]
    fn parses_a_minimal_manifest() {
        let m = Manifest::parse(MINIMAL).unwrap();
        assert_eq!(m.application.name, "t");
        assert_eq!(m.trigger.http.len(), 1);
        assert_eq!(m.component["web"].files.len(), 2);
    }

    #[test]
    fn refuses_unknown_fields() {
        let text = MINIMAL.replace("source = \"web.wasm\"", "source = \"web.wasm\"\nbogus = 1");
        let err = Manifest::parse(&text).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn refuses_trigger_for_missing_component() {
        let text = MINIMAL.replace("component = \"web\"", "component = \"nope\"");
        assert!(Manifest::parse(&text).is_err());
    }

    #[test]
    fn refuses_version_1() {
        let text = MINIMAL.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(Manifest::parse(&text).is_err());
    }
}
