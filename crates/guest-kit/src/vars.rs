use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use crate::GuestError;

thread_local! {
    // Values already read by this instance. A variable's value is fixed when the app starts
    // (manifest, environment, the SpinApp's variables), and an instance lives at most a few
    // hundred requests, so each is asked of the host once per instance, not once per use.
    static CACHE: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// Reads a component variable; a failure names the variable.
pub async fn variable(name: &str) -> Result<String, GuestError> {
    if let Some(value) = CACHE.with_borrow(|cache| cache.get(name).cloned()) {
        return Ok(value);
    }
    let value = spin_sdk::variables::get(name)
        .await
        .map_err(|e| GuestError::Variable {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
    CACHE.with_borrow_mut(|cache| cache.insert(name.to_owned(), value.clone()));
    Ok(value)
}

/// Reads a variable holding a whole number of milliseconds.
pub async fn duration_ms_variable(name: &str) -> Result<Duration, GuestError> {
    let raw = variable(name).await?;
    parse_millis(&raw).ok_or_else(|| GuestError::Variable {
        name: name.to_owned(),
        reason: format!("expected a whole number of milliseconds, got {raw:?}"),
    })
}

fn parse_millis(raw: &str) -> Option<Duration> {
    raw.trim().parse::<u64>().ok().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis() {
        assert_eq!(parse_millis("2000"), Some(Duration::from_secs(2)));
        assert_eq!(parse_millis(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_millis("2s"), None);
        assert_eq!(parse_millis("-1"), None);
        assert_eq!(parse_millis(""), None);
    }
}
