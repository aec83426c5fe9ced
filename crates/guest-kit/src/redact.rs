//! Keeps passwords out of log lines. Error causes from the stores can quote
//! the connection string they failed on, and those carry credentials
//! (`postgres://user:password@host/db`, `redis://:password@host`, or libpq's
//! `password=...`). Everything a guest logs about a failure passes through
//! [`redact_secrets`] first.

const MASK: &str = "***";

/// `text` with the password of every `scheme://user:password@host` URL and
/// every `password=value` pair replaced by `***`. Errs on the side of hiding
/// too much: an unencoded `@` or `/` in a password still leaves nothing of it.
pub fn redact_secrets(text: &str) -> String {
    redact_conninfo(&redact_urls(text))
}

fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ',' | ';' | ')')
}

fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(ends_token).unwrap_or(tail.len());
        let (token, after) = tail.split_at(end);
        // The last `@` of the token ends the user info, so a password with an
        // unencoded `@` is hidden whole.
        match token.rfind('@') {
            Some(at) => {
                let userinfo = &token[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&token[at..]);
            }
            None => out.push_str(token),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

fn redact_conninfo(text: &str) -> String {
    const KEY: &str = "password=";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(found) = lower[from..].find(KEY) {
        let value_start = from + found + KEY.len();
        out.push_str(&text[from..value_start]);
        let value = &text[value_start..];
        let len = match value.strip_prefix('\'') {
            // libpq quotes values with spaces: 'a b'; \' escapes a quote.
            Some(quoted) => {
                let mut escaped = false;
                quoted
                    .char_indices()
                    .find(|&(_, c)| {
                        let end = c == '\'' && !escaped;
                        escaped = c == '\\' && !escaped;
                        end
                    })
                    .map_or(value.len(), |(i, _)| i + 2)
            }
            None => value.find(ends_token).unwrap_or(value.len()),
        };
        out.push_str(MASK);
        from = value_start + len;
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked() {
        for (input, want) in [
            (
                "postgres: cannot reach postgres://honey:s3cret@db:5432/honey",
                "postgres: cannot reach postgres://honey:***@db:5432/honey",
            ),
            ("redis://:s3cret@cache:6379", "redis://:***@cache:6379"),
            (
                "rediss://default:s3cret@cache",
                "rediss://default:***@cache",
            ),
            (
                "postgres://honey:p@ss/w0rd@db/honey",
                "postgres://honey:***@db/honey",
            ),
            (
                "a \"postgres://u:x@h/d\" and redis://:y@r:1 too",
                "a \"postgres://u:***@h/d\" and redis://:***@r:1 too",
            ),
        ] {
            assert_eq!(redact_secrets(input), want, "{input}");
        }
    }

    #[test]
    fn conninfo_passwords_are_masked() {
        assert_eq!(
            redact_secrets("host=db user=honey password=s3cret dbname=honey"),
            "host=db user=honey password=*** dbname=honey"
        );
        assert_eq!(
            redact_secrets("host=db PASSWORD='s3 c\\'ret' dbname=honey"),
            "host=db PASSWORD=*** dbname=honey"
        );
        assert_eq!(redact_secrets("password="), "password=***");
        assert_eq!(redact_secrets("password='unterminated"), "password=***");
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        for input in [
            "",
            "postgres://postgres@127.0.0.1:5432/honey",
            "redis://127.0.0.1:6379",
            "http://referral.spin.internal/referrals/x",
            "connection refused (os error 111)",
            "://",
            "ünïcödé :// ok",
        ] {
            assert_eq!(redact_secrets(input), input);
        }
    }
}
