use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::Choice;

/// Vote counts for all five choices. Serialises to the `GET /votes` shape,
/// keys in display order:
/// `{"print":{"count":3,"label":"Add more print statements"}, ...}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    counts: [i64; 5],
}

impl Tally {
    pub fn get(&self, choice: Choice) -> i64 {
        self.counts[choice.index()]
    }

    pub fn set(&mut self, choice: Choice, count: i64) {
        self.counts[choice.index()] = count;
    }

    pub fn total(&self) -> i64 {
        self.counts.iter().sum()
    }
}

impl Serialize for Tally {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Entry {
            count: i64,
            label: &'static str,
        }
        impl Serialize for Entry {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut s = serializer.serialize_struct("Entry", 2)?;
                s.serialize_field("count", &self.count)?;
                s.serialize_field("label", self.label)?;
                s.end()
            }
        }

        // Hand-written so key order is the display order (serde_json's
        // default map would sort the keys).
        let mut map = serializer.serialize_map(Some(Choice::ALL.len()))?;
        for choice in Choice::ALL {
            let entry = Entry {
                count: self.get(choice),
                label: choice.label(),
            };
            map.serialize_entry(choice.id(), &entry)?;
        }
        map.end()
    }
}

/// A counter value in Redis that is not a decimal integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("vote counter holds a non-integer value")]
pub struct CounterError;

/// Reads a Redis counter as returned by `GET`/`MGET`: a missing key is 0.
pub fn parse_counter(raw: Option<&[u8]>) -> Result<i64, CounterError> {
    match raw {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(CounterError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tally_has_all_five_at_zero_in_order() {
        let json = serde_json::to_string(&Tally::default()).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"print":{"count":0,"label":"Add more print statements"},"#,
                r#""stare":{"count":0,"label":"Stare at the code until it confesses"},"#,
                r#""ai":{"count":0,"label":"Ask an AI to explain it"},"#,
                r#""revert":{"count":0,"label":"Revert and pretend it never happened"},"#,
                r#""restart":{"count":0,"label":"Turn it off and on again"}}"#
            )
        );
    }

    #[test]
    fn counts_land_under_their_choice() {
        let mut tally = Tally::default();
        tally.set(Choice::Ai, 7);
        tally.set(Choice::Restart, 3);
        assert_eq!(tally.get(Choice::Ai), 7);
        assert_eq!(tally.total(), 10);

        let value = serde_json::to_value(tally).unwrap();
        assert_eq!(value["ai"]["count"], 7);
        assert_eq!(value["restart"]["count"], 3);
        assert_eq!(value["print"]["count"], 0);
        assert_eq!(value["ai"]["label"], "Ask an AI to explain it");
        assert_eq!(value.as_object().unwrap().len(), 5);
    }

    #[test]
    fn counters() {
        assert_eq!(parse_counter(None), Ok(0));
        assert_eq!(parse_counter(Some(b"0")), Ok(0));
        assert_eq!(parse_counter(Some(b"12345")), Ok(12345));
        assert_eq!(parse_counter(Some(b"-2")), Ok(-2));
        for bad in [
            &b""[..],
            b"abc",
            b"1.5",
            b" 1",
            b"\xff",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_counter(Some(bad)), Err(CounterError), "{bad:?}");
        }
    }
}
