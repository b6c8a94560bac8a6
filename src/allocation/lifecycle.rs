//! The arm roster and its lifecycle: proposed → incubating → active → dropped, and retired when the
//! definition no longer contains an arm. Ids are stable and never reused.

use crate::domain::{ArmStatus, Origin};
use crate::time::{Instant, Span};

/// One arm of an optimization, whatever its status.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterArm {
    pub id: u32,
    /// One level per design factor, in factor order.
    pub levels: Vec<String>,
    /// The variant as the JSON object the serving side reads.
    pub variant: String,
    pub status: ArmStatus,
    /// When the current status began (µs since the epoch).
    pub since: Instant,
    pub reason: String,
    /// When the arm's current serving spell began (incubation counts from it); `None` until then.
    pub started: Option<Instant>,
    /// Served from the optimization's first run: burn-in waits for it.
    pub initial: bool,
    pub origin: Origin,
}

/// A status change of one arm in one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArmEvent {
    pub arm_id: u32,
    pub status: ArmStatus,
    pub reason: String,
    /// The change comes from an edit of the definition (a warning in the run record).
    #[serde(default)]
    pub definition_changed: bool,
}

/// The roster of one run and the changes made to it.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    pub arms: Vec<RosterArm>,
    pub events: Vec<ArmEvent>,
}

impl Roster {
    pub fn serving(&self) -> impl Iterator<Item = &RosterArm> {
        self.arms.iter().filter(|a| a.status.serving())
    }

    pub fn serving_count(&self) -> usize {
        self.serving().count()
    }

    fn set(&mut self, index: usize, status: ArmStatus, now: Instant, reason: String) {
        self.change(index, status, now, reason, false);
    }

    fn change(
        &mut self,
        index: usize,
        status: ArmStatus,
        now: Instant,
        reason: String,
        definition_changed: bool,
    ) {
        let arm = &mut self.arms[index];
        arm.status = status;
        arm.since = now;
        arm.reason = reason.clone();
        // Incubation counts from the start of the arm's current serving spell.
        if status == ArmStatus::Incubating {
            arm.started = Some(now);
        }
        self.events.push(ArmEvent {
            arm_id: arm.id,
            status,
            reason,
            definition_changed,
        });
    }

    /// Brings the stored roster in line with the definition's variants (in level order, baseline
    /// first): new variants get the next free ids (incubating, or proposed beyond `cap` serving
    /// arms); variants that left the definition retire; retired variants that came back incubate
    /// again with their data. `defined` holds each variant's levels and JSON.
    pub fn reconcile(
        stored: Vec<RosterArm>,
        defined: &[(Vec<String>, String)],
        is_excluded: impl Fn(&[String]) -> bool,
        cap: usize,
        now: Instant,
    ) -> Roster {
        let first_run = stored.is_empty();
        let mut roster = Roster {
            arms: stored,
            events: Vec::new(),
        };
        let mut next = roster.arms.iter().map(|a| a.id).max().unwrap_or(0) + 1;
        for (levels, variant) in defined {
            match roster.arms.iter().position(|a| &a.levels == levels) {
                Some(i) if roster.arms[i].status == ArmStatus::Retired => {
                    let status = if roster.serving_count() < cap {
                        ArmStatus::Incubating
                    } else {
                        ArmStatus::Proposed
                    };
                    roster.change(i, status, now, "back in the definition".into(), true);
                }
                Some(_) => {}
                None => {
                    let serving = roster.serving_count() < cap;
                    roster.arms.push(RosterArm {
                        id: next,
                        levels: levels.clone(),
                        variant: variant.clone(),
                        status: ArmStatus::Proposed,
                        since: now,
                        reason: String::new(),
                        started: None,
                        initial: first_run && serving,
                        origin: Origin::Definition,
                    });
                    next += 1;
                    let i = roster.arms.len() - 1;
                    let (status, reason) = match (serving, first_run) {
                        (true, true) => (ArmStatus::Incubating, "defined in the YAML"),
                        (true, false) => (ArmStatus::Incubating, "added to the definition"),
                        (false, _) => (
                            ArmStatus::Proposed,
                            "waiting for a place under generation.max_active_arms",
                        ),
                    };
                    roster.change(i, status, now, reason.into(), !first_run);
                }
            }
        }
        for i in 0..roster.arms.len() {
            let arm = &roster.arms[i];
            let gone = arm.origin == Origin::Definition
                && !matches!(arm.status, ArmStatus::Retired | ArmStatus::Dropped)
                && !defined.iter().any(|(levels, _)| levels == &arm.levels);
            if gone {
                let reason = if is_excluded(&arm.levels) {
                    "its combination is now excluded"
                } else {
                    "a level or factor of it left the definition"
                };
                roster.change(i, ArmStatus::Retired, now, reason.into(), true);
            }
        }
        roster
    }

    /// Incubating arms whose incubation has passed become active.
    pub fn mature(&mut self, incubation: Span, now: Instant) {
        for i in 0..self.arms.len() {
            let arm = &self.arms[i];
            let started = arm.started.unwrap_or(arm.since);
            if arm.status == ArmStatus::Incubating && now >= started + incubation {
                self.set(i, ArmStatus::Active, now, "incubation passed".into());
            }
        }
    }

    /// Marks arms dropped, each with its reason.
    pub fn drop_arms(&mut self, dropped: &[(u32, String)], now: Instant) {
        for (id, reason) in dropped {
            if let Some(i) = self.arms.iter().position(|a| a.id == *id) {
                self.set(i, ArmStatus::Dropped, now, reason.clone());
            }
        }
    }

    /// Starts proposed arms (in the given order) in the free places under `cap`.
    pub fn start_proposed(&mut self, order: &[u32], cap: usize, reason: &str, now: Instant) {
        for id in order {
            if self.serving_count() >= cap {
                break;
            }
            if let Some(i) = self
                .arms
                .iter()
                .position(|a| a.id == *id && a.status == ArmStatus::Proposed)
            {
                self.set(i, ArmStatus::Incubating, now, reason.into());
            }
        }
    }

    /// Adds a generated arm (incubating) with the next free id; `None` when its variant is known.
    pub fn add_generated(
        &mut self,
        levels: Vec<String>,
        variant: String,
        reason: &str,
        now: Instant,
    ) -> Option<u32> {
        if self.arms.iter().any(|a| a.levels == levels) {
            return None;
        }
        let id = self.arms.iter().map(|a| a.id).max().unwrap_or(0) + 1;
        self.arms.push(RosterArm {
            id,
            levels,
            variant,
            status: ArmStatus::Proposed,
            since: now,
            reason: String::new(),
            started: None,
            initial: false,
            origin: Origin::Generated,
        });
        let i = self.arms.len() - 1;
        self.set(i, ArmStatus::Incubating, now, reason.into());
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(micros: i64) -> Instant {
        Instant::from_micros(micros)
    }

    fn levels(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn defined(v: &[&str]) -> Vec<(Vec<String>, String)> {
        v.iter()
            .map(|s| (levels(&[s]), format!("{{\"f\":\"{s}\"}}")))
            .collect()
    }

    #[test]
    fn ids_are_stable_and_never_reused() {
        let all = defined(&["a", "b", "c"]);
        let roster = Roster::reconcile(Vec::new(), &all, |_| false, 2, at(0));
        let status: Vec<(u32, ArmStatus)> = roster.arms.iter().map(|a| (a.id, a.status)).collect();
        assert_eq!(
            status,
            vec![
                (1, ArmStatus::Incubating),
                (2, ArmStatus::Incubating),
                (3, ArmStatus::Proposed)
            ]
        );
        let mut roster = Roster::reconcile(roster.arms, &all, |_| false, 2, at(10));
        assert!(roster.events.is_empty());
        roster.drop_arms(&[(2, "low".into())], at(10));
        roster.start_proposed(&[3], 2, "replaces a dropped arm", at(10));
        // Proposed at 0, started at 10: its incubation counts from 10.
        roster.mature(Span::from_micros(5), at(12));
        let three = roster.arms.iter().find(|a| a.id == 3).unwrap();
        assert_eq!(
            three.status,
            ArmStatus::Incubating,
            "incubation counts from the start"
        );
        roster.mature(Span::from_micros(5), at(15));
        let three = roster.arms.iter().find(|a| a.id == 3).unwrap();
        assert_eq!(three.status, ArmStatus::Active);
        let id = roster.add_generated(levels(&["d"]), "{}".into(), "generated", at(10));
        assert_eq!(id, Some(4));
        assert_eq!(
            roster.add_generated(levels(&["b"]), "{}".into(), "generated", at(10)),
            None
        );
        let roster = Roster::reconcile(roster.arms, &defined(&["a", "c"]), |_| false, 3, at(20));
        let b = roster.arms.iter().find(|a| a.id == 2).unwrap();
        assert_eq!(b.status, ArmStatus::Dropped, "a dropped arm stays dropped");
        let roster = Roster::reconcile(roster.arms, &defined(&["a"]), |l| l == ["c"], 3, at(30));
        let c = roster.arms.iter().find(|a| a.id == 3).unwrap();
        assert_eq!(c.status, ArmStatus::Retired);
        assert_eq!(c.reason, "its combination is now excluded");
        let d = roster.arms.iter().find(|a| a.id == 4).unwrap();
        assert_eq!(
            d.status,
            ArmStatus::Incubating,
            "generated arms are not retired"
        );
    }
}
