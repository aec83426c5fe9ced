use std::time::Duration;

use crate::GuestError;

/// Reads a component variable; a failure names the variable.
pub async fn variable(name: &str) -> Result<String, GuestError> {
    spin_sdk::variables::get(name)
        .await
        .map_err(|e| GuestError::Variable {
            name: name.to_owned(),
            reason: e.to_string(),
        })
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
