use std::fmt;

use serde::{Serialize, Serializer};

/// One of the five answers to "What's your go-to debugging strategy?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    Print,
    Stare,
    Ai,
    Revert,
    Restart,
}

/// Detail of the 400 answer for an unknown or missing choice (BRIEF §5).
/// Kept as a literal so it can be grepped for; a test ties it to [`Choice::ALL`].
pub const INVALID_CHOICE_DETAIL: &str =
    "Invalid choice. Must be one of: print, stare, ai, revert, restart";

impl Choice {
    /// All choices in display order (vote buttons, results bars, JSON keys).
    pub const ALL: [Choice; 5] = [
        Choice::Print,
        Choice::Stare,
        Choice::Ai,
        Choice::Revert,
        Choice::Restart,
    ];

    /// Wire id, used in requests, responses and Redis keys.
    pub const fn id(self) -> &'static str {
        match self {
            Choice::Print => "print",
            Choice::Stare => "stare",
            Choice::Ai => "ai",
            Choice::Revert => "revert",
            Choice::Restart => "restart",
        }
    }

    /// Human label shown on the pages and in `GET /votes`.
    pub const fn label(self) -> &'static str {
        match self {
            Choice::Print => "Add more print statements",
            Choice::Stare => "Stare at the code until it confesses",
            Choice::Ai => "Ask an AI to explain it",
            Choice::Revert => "Revert and pretend it never happened",
            Choice::Restart => "Turn it off and on again",
        }
    }

    /// Position in [`Choice::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Choice::Print => 0,
            Choice::Stare => 1,
            Choice::Ai => 2,
            Choice::Revert => 3,
            Choice::Restart => 4,
        }
    }

    /// Exact, case-sensitive lookup by wire id (the original API did no
    /// normalisation, and clients send the ids verbatim).
    pub fn from_id(id: &str) -> Option<Choice> {
        Choice::ALL.into_iter().find(|c| c.id() == id)
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Choice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_labels_match_the_contract() {
        let expected = [
            ("print", "Add more print statements"),
            ("stare", "Stare at the code until it confesses"),
            ("ai", "Ask an AI to explain it"),
            ("revert", "Revert and pretend it never happened"),
            ("restart", "Turn it off and on again"),
        ];
        let actual: Vec<_> = Choice::ALL.iter().map(|c| (c.id(), c.label())).collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn index_matches_position_in_all() {
        for (i, c) in Choice::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn from_id_round_trips() {
        for c in Choice::ALL {
            assert_eq!(Choice::from_id(c.id()), Some(c));
            assert_eq!(c.to_string(), c.id());
        }
    }

    #[test]
    fn from_id_is_exact() {
        for bad in [
            "", "Print", "PRINT", " print", "print ", "prints", "a i", "none",
        ] {
            assert_eq!(Choice::from_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn invalid_choice_detail_lists_all_ids_in_order() {
        let ids: Vec<_> = Choice::ALL.iter().map(|c| c.id()).collect();
        assert_eq!(
            INVALID_CHOICE_DETAIL,
            format!("Invalid choice. Must be one of: {}", ids.join(", "))
        );
    }

    #[test]
    fn serializes_as_id() {
        assert_eq!(serde_json::to_string(&Choice::Ai).unwrap(), "\"ai\"");
    }
}
