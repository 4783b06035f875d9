//! A connector's position: the newest record time it has published, and the ids of the records
//! at exactly that time. Queries ask for `time >= checkpoint.time` minus those ids, so records that
//! share a timestamp are neither skipped (a strict `>` would lose late siblings) nor repeated.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub time: DateTime<Utc>,
    pub ids: BTreeSet<String>,
}

impl Checkpoint {
    pub fn starting_at(time: DateTime<Utc>) -> Self {
        Checkpoint { time, ids: BTreeSet::new() }
    }

    /// The record was published before this checkpoint was saved.
    pub fn covers(&self, time: DateTime<Utc>, id: &str) -> bool {
        time < self.time || (time == self.time && self.ids.contains(id))
    }

    /// Moves the position past a record just published (records arrive in ascending time).
    pub fn advance(&mut self, time: DateTime<Utc>, id: &str) {
        if time > self.time {
            self.time = time;
            self.ids.clear();
        }
        if time == self.time {
            self.ids.insert(id.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2024-01-01T00:00:{second:02}Z")).expect("valid").with_timezone(&Utc)
    }

    #[test]
    fn keeps_only_the_ids_at_the_newest_time() {
        let mut checkpoint = Checkpoint::starting_at(at(0));
        checkpoint.advance(at(1), "a");
        checkpoint.advance(at(1), "b");
        assert!(checkpoint.covers(at(1), "a") && checkpoint.covers(at(0), "zzz"));
        assert!(!checkpoint.covers(at(1), "c"), "a sibling at the same time is still to come");
        checkpoint.advance(at(2), "c");
        assert_eq!(checkpoint.ids.iter().map(String::as_str).collect::<Vec<_>>(), vec!["c"]);
        checkpoint.advance(at(1), "late");
        assert_eq!(checkpoint.time, at(2), "an out-of-order record does not move the position back");
    }
}
