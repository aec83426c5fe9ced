//! Spin variables: application `[variables]`, component `variables` templated with `{{ name }}`,
//! and the environment provider (`SPIN_VARIABLE_<NAME>`), resolved once at start-up.

use std::collections::{BTreeMap, HashMap};

use crate::manifest::VariableDecl;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VariableError {
    #[error("invalid template {template:?}: {reason}")]
    InvalidTemplate { template: String, reason: String },
    #[error("template {template:?} refers to undefined application variable `{name}`")]
    Undefined { template: String, name: String },
    #[error(
        "required application variable `{0}` has no value; set SPIN_VARIABLE_{upper}",
        upper = .0.to_ascii_uppercase()
    )]
    MissingRequired(String),
}

/// Spin's naming rule: lower-case letters, digits and single underscores, starting with a letter
/// and ending with a letter or digit (so names map cleanly onto environment variables).
pub fn validate_name(name: &str) -> Result<(), String> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Some("may contain only lower-case letters, numbers, and underscores")
    } else if !name.as_bytes()[0].is_ascii_lowercase() {
        Some("must start with a lowercase ASCII letter")
    } else if !name.as_bytes()[name.len() - 1].is_ascii_alphanumeric() {
        Some("must end with a lowercase ASCII letter or digit")
    } else if name.contains("__") {
        Some("must not contain multiple consecutive underscores")
    } else {
        None
    };
    match reason {
        Some(r) => Err(format!("invalid variable name {name:?}: {r}")),
        None => Ok(()),
    }
}

/// Application variables with their final values (environment overrides applied). Values are
/// never logged: some are secrets.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: HashMap<String, String>,
}

impl AppVariables {
    /// Resolves declarations against a provider lookup (normally the process environment).
    pub fn resolve(
        decls: &BTreeMap<String, VariableDecl>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, VariableError> {
        let mut values = HashMap::new();
        for (name, decl) in decls {
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let value = match lookup(&env_name).or_else(|| decl.default.clone()) {
                Some(v) => v,
                None => return Err(VariableError::MissingRequired(name.clone())),
            };
            values.insert(name.clone(), value);
        }
        Ok(Self { values })
    }

    /// Expands `{{ name }}` expressions; literal text passes through unchanged.
    pub fn expand(&self, template: &str) -> Result<String, VariableError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(VariableError::InvalidTemplate {
                    template: template.to_owned(),
                    reason: "unmatched '{{' in template".into(),
                });
            };
            let name = after[..end].trim();
            validate_name(name).map_err(|reason| VariableError::InvalidTemplate {
                template: template.to_owned(),
                reason,
            })?;
            let value = self
                .values
                .get(name)
                .ok_or_else(|| VariableError::Undefined {
                    template: template.to_owned(),
                    name: name.to_owned(),
                })?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A component's variables, already expanded: what `spin:variables/variables.get` answers.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables(HashMap<String, String>);

impl ComponentVariables {
    pub fn resolve(
        app: &AppVariables,
        templates: &BTreeMap<String, String>,
    ) -> Result<Self, VariableError> {
        templates
            .iter()
            .map(|(name, template)| Ok((name.clone(), app.expand(template)?)))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, VariableDecl> {
        pairs
            .iter()
            .map(|(n, d)| {
                (
                    n.to_string(),
                    VariableDecl {
                        default: d.map(str::to_owned),
                        required: d.is_none(),
                        secret: false,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn names_follow_spin_rules() {
        assert!(validate_name("db_url").is_ok());
        assert!(validate_name("a1").is_ok());
        for bad in ["", "Db", "1a", "a_", "a__b", "a-b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_overrides_default_and_required_must_be_set() {
        let d = decls(&[("host", Some("localhost")), ("token", None)]);
        let err = AppVariables::resolve(&d, |_| None).unwrap_err();
        assert_eq!(err, VariableError::MissingRequired("token".into()));
        let vars = AppVariables::resolve(&d, |k| match k {
            "SPIN_VARIABLE_HOST" => Some("db.example".into()),
            "SPIN_VARIABLE_TOKEN" => Some("s3cret".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            vars.expand("pg://{{ host }}:5432").unwrap(),
            "pg://db.example:5432"
        );
        assert_eq!(vars.expand("{{token}}").unwrap(), "s3cret");
    }

    #[test]
    fn templates_reject_unknown_and_unterminated() {
        let vars = AppVariables::resolve(&decls(&[("a", Some("1"))]), |_| None).unwrap();
        assert!(matches!(
            vars.expand("{{ b }}"),
            Err(VariableError::Undefined { .. })
        ));
        assert!(matches!(
            vars.expand("x{{ a"),
            Err(VariableError::InvalidTemplate { .. })
        ));
        assert_eq!(vars.expand("no templates").unwrap(), "no templates");
    }

    #[test]
    fn component_variables_expand_from_app_variables() {
        let vars = AppVariables::resolve(&decls(&[("a", Some("1"))]), |_| None).unwrap();
        let mut t = BTreeMap::new();
        t.insert("x".to_string(), "{{ a }}-{{ a }}".to_string());
        let cv = ComponentVariables::resolve(&vars, &t).unwrap();
        assert_eq!(cv.get("x"), Some("1-1"));
        assert_eq!(cv.get("y"), None);
    }
}
