//! The values every stage shares: arm ids, roles, context keys, arm statuses and origins. Text
//! appears only where a value is parsed (the warehouse, the state store, an allocation file) or
//! rendered (CSV, JSON, HTML).

use std::fmt;

use serde::{Serialize, Serializer};

/// Whether a row of an allocation is an arm the bandit allocates or the holdout
/// (docs/design.md §4.3, §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Bandit,
    Holdout,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Bandit => "bandit",
            Role::Holdout => "holdout",
        }
    }

    pub fn parse(text: &str) -> Result<Role, ValueError> {
        match text {
            "bandit" => Ok(Role::Bandit),
            "holdout" => Ok(Role::Holdout),
            _ => Err(ValueError::new("role", text, "`bandit` or `holdout`")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row of an allocation: one of the optimization's arms (its number), or the holdout, which is
/// written `holdout`. Arms order by number, the holdout after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArmId {
    Arm(u32),
    Holdout,
}

impl ArmId {
    pub fn role(self) -> Role {
        match self {
            ArmId::Arm(_) => Role::Bandit,
            ArmId::Holdout => Role::Holdout,
        }
    }

    /// The arm's number; `None` for the holdout.
    pub fn arm(self) -> Option<u32> {
        match self {
            ArmId::Arm(id) => Some(id),
            ArmId::Holdout => None,
        }
    }

    pub fn parse(text: &str) -> Result<ArmId, ValueError> {
        if text == "holdout" {
            return Ok(ArmId::Holdout);
        }
        text.parse()
            .map(ArmId::Arm)
            .map_err(|_| ValueError::new("arm id", text, "a whole number or `holdout`"))
    }
}

impl fmt::Display for ArmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArmId::Arm(id) => write!(f, "{id}"),
            ArmId::Holdout => f.write_str("holdout"),
        }
    }
}

impl Serialize for ArmId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The context a row applies to: `*` (every visitor, pooled), or `factor=value` pairs in the model's
/// factor order joined by `|`, e.g. `country=US|device=mobile`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ContextKey(String);

const POOLED: &str = "*";

impl ContextKey {
    pub fn pooled() -> ContextKey {
        ContextKey(POOLED.into())
    }

    /// A key as the warehouse, the store or an allocation file spells it.
    pub fn new(text: impl Into<String>) -> ContextKey {
        ContextKey(text.into())
    }

    /// The key of `factor=value` pairs in factor order.
    pub fn of_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ContextKey {
        let text = pairs
            .into_iter()
            .map(|(factor, value)| format!("{factor}={value}"))
            .collect::<Vec<_>>()
            .join("|");
        if text.is_empty() {
            ContextKey::pooled()
        } else {
            ContextKey(text)
        }
    }

    pub fn is_pooled(&self) -> bool {
        self.0 == POOLED
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `factor=value` pairs of the key as written; none for the pooled key.
    pub fn pairs(&self) -> impl Iterator<Item = &str> {
        self.0.split('|').filter(|_| !self.is_pooled())
    }
}

impl fmt::Display for ContextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text that is not a valid value of its kind.
/// Where an arm stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ArmStatus {
    /// Defined but waiting for a free place under `generation.max_active_arms`.
    Proposed,
    /// Serving, and protected from the drop rule until its incubation has passed.
    Incubating,
    /// Serving.
    Active,
    /// Removed by the drop rule: weight 0 from now on; never comes back.
    Dropped,
    /// No longer in the definition (a removed level or a new exclusion): weight 0.
    Retired,
}

impl ArmStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ArmStatus::Proposed => "proposed",
            ArmStatus::Incubating => "incubating",
            ArmStatus::Active => "active",
            ArmStatus::Dropped => "dropped",
            ArmStatus::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Result<ArmStatus, ValueError> {
        [
            ArmStatus::Proposed,
            ArmStatus::Incubating,
            ArmStatus::Active,
            ArmStatus::Dropped,
            ArmStatus::Retired,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| {
            ValueError::new(
                "arm status",
                text,
                "proposed, incubating, active, dropped or retired",
            )
        })
    }

    /// Whether the arm receives traffic.
    pub fn serving(self) -> bool {
        matches!(self, ArmStatus::Incubating | ArmStatus::Active)
    }
}

impl fmt::Display for ArmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an arm came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A combination of the levels in the definition.
    Definition,
    /// Proposed by a generation command.
    Generated,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Definition => "definition",
            Origin::Generated => "generated",
        }
    }

    pub fn parse(text: &str) -> Result<Origin, ValueError> {
        match text {
            "definition" => Ok(Origin::Definition),
            "generated" => Ok(Origin::Generated),
            _ => Err(ValueError::new(
                "arm origin",
                text,
                "`definition` or `generated`",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{text}` is not a valid {kind}: expected {expected}")]
pub struct ValueError {
    kind: &'static str,
    text: String,
    expected: &'static str,
}

impl ValueError {
    fn new(kind: &'static str, text: &str, expected: &'static str) -> ValueError {
        ValueError {
            kind,
            text: text.into(),
            expected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_ids_round_trip_through_their_text_and_order_numerically() {
        for text in ["0", "7", "12", "holdout"] {
            assert_eq!(ArmId::parse(text).unwrap().to_string(), text);
        }
        assert!(ArmId::parse("-1").is_err());
        assert!(ArmId::parse("Holdout").is_err());
        assert!(ArmId::Arm(2) < ArmId::Arm(10));
        assert!(ArmId::Arm(u32::MAX) < ArmId::Holdout);
        assert_eq!(ArmId::Holdout.role(), Role::Holdout);
        assert_eq!(ArmId::Arm(3).role(), Role::Bandit);
    }

    #[test]
    fn context_keys_know_the_pooled_key_and_their_pairs() {
        assert!(ContextKey::of_pairs([]).is_pooled());
        let key = ContextKey::of_pairs([("country", "US"), ("device", "")]);
        assert_eq!(key.as_str(), "country=US|device=");
        assert_eq!(key.pairs().collect::<Vec<_>>(), ["country=US", "device="]);
        assert_eq!(ContextKey::pooled().pairs().count(), 0);
        assert_eq!(
            serde_json::to_string(&ContextKey::pooled()).unwrap(),
            "\"*\""
        );
    }

    #[test]
    fn roles_parse_only_their_own_text() {
        assert_eq!(Role::parse("bandit"), Ok(Role::Bandit));
        assert_eq!(Role::parse("holdout"), Ok(Role::Holdout));
        let error = Role::parse("arm").unwrap_err().to_string();
        assert_eq!(
            error,
            "`arm` is not a valid role: expected `bandit` or `holdout`"
        );
    }
}
