//! Which snapshots a retention policy keeps: the newest N, plus the newest snapshot of each
//! of the last D days and W weeks that have one (UTC days; weeks start on Monday), as
//! restic's `--keep-last/--keep-daily/--keep-weekly` do.

use std::collections::HashSet;

use zerok_core::SnapshotId;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// A retention policy; a snapshot kept by any rule is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Newest snapshots kept.
    pub keep_last: usize,
    /// Days (with a snapshot) for which the newest snapshot is kept.
    pub keep_daily: usize,
    /// Weeks (with a snapshot) for which the newest snapshot is kept.
    pub keep_weekly: usize,
}

impl Retention {
    /// Keeps the newest `n` snapshots.
    pub fn last(n: usize) -> Self {
        Self { keep_last: n, ..Self::default() }
    }

    /// True when the policy keeps nothing (forgetting with it would delete everything).
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0 && self.keep_daily == 0 && self.keep_weekly == 0
    }

    /// The ids kept among `snapshots` (any order; times in Unix nanoseconds).
    pub fn keep(&self, snapshots: &[(SnapshotId, i64)]) -> HashSet<SnapshotId> {
        let mut newest_first: Vec<_> = snapshots.to_vec();
        newest_first.sort_by_key(|&(id, t)| std::cmp::Reverse((t, id)));
        let mut kept: HashSet<SnapshotId> = newest_first.iter().take(self.keep_last).map(|(id, _)| *id).collect();
        let day = |t: i64| t.div_euclid(DAY_NS);
        let week = |t: i64| (day(t) + 3).div_euclid(7);
        for (period, count) in [(&day as &dyn Fn(i64) -> i64, self.keep_daily), (&week, self.keep_weekly)] {
            let mut last_period = None;
            let mut left = count;
            for (id, t) in &newest_first {
                if left == 0 {
                    break;
                }
                if last_period != Some(period(*t)) {
                    last_period = Some(period(*t));
                    kept.insert(*id);
                    left -= 1;
                }
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SnapshotId {
        SnapshotId([n; 32])
    }

    #[test]
    fn keeps_last_daily_and_weekly() {
        let hour = 3_600 * 1_000_000_000i64;
        // 2025-11-24 was a Monday: day 20416 since the epoch.
        let monday = 20_416 * DAY_NS;
        let snaps = [
            (id(1), monday - 24 * hour),     // Sunday before: previous week
            (id(2), monday + hour),          // Monday
            (id(3), monday + 2 * hour),      // Monday, newer
            (id(4), monday + 24 * hour),     // Tuesday
            (id(5), monday + 25 * hour),     // Tuesday, newer
            (id(6), monday + 7 * 24 * hour), // next Monday
        ];
        assert_eq!(Retention::last(2).keep(&snaps), HashSet::from([id(6), id(5)]));
        let daily = Retention { keep_daily: 3, ..Default::default() };
        assert_eq!(daily.keep(&snaps), HashSet::from([id(6), id(5), id(3)]));
        let weekly = Retention { keep_weekly: 3, ..Default::default() };
        assert_eq!(weekly.keep(&snaps), HashSet::from([id(6), id(5), id(1)]));
        assert!(Retention::default().is_empty() && Retention::default().keep(&snaps).is_empty());
    }
}
