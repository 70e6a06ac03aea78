//! Which snapshots a retention policy keeps, as restic's `forget` does: the newest N, the
//! newest snapshot of each of the last N hours, days, weeks, months and years that have one
//! (UTC; weeks start on Monday), every snapshot within a span of the newest, and every
//! snapshot with a kept tag. Snapshots are grouped (by host and paths unless told) and
//! each group kept on its own; `forget` keeps the newest of each host and paths besides.

use std::collections::HashSet;

use zerok_core::SnapshotId;

use crate::format::snapshot::Snapshot;

const HOUR_NS: i64 = 3_600 * 1_000_000_000;
const DAY_NS: i64 = 24 * HOUR_NS;

/// A retention policy; a snapshot kept by any rule is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Newest snapshots kept.
    pub keep_last: usize,
    /// Hours (with a snapshot) for which the newest snapshot is kept.
    pub keep_hourly: usize,
    /// Days (with a snapshot) for which the newest snapshot is kept.
    pub keep_daily: usize,
    /// Weeks (with a snapshot) for which the newest snapshot is kept.
    pub keep_weekly: usize,
    /// Months (with a snapshot) for which the newest snapshot is kept.
    pub keep_monthly: usize,
    /// Years (with a snapshot) for which the newest snapshot is kept.
    pub keep_yearly: usize,
    /// Every snapshot at most this many nanoseconds older than the group's newest.
    pub keep_within_ns: Option<i64>,
    /// Every snapshot holding one of these tags.
    pub keep_tags: Vec<String>,
    /// What snapshots are grouped by (each group kept on its own).
    pub group_by: GroupBy,
}

/// What makes two snapshots one group for retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    /// The host name.
    pub host: bool,
    /// The paths backed up.
    pub paths: bool,
    /// The tags.
    pub tags: bool,
}

impl Default for GroupBy {
    /// Host and paths, as restic.
    fn default() -> Self {
        Self { host: true, paths: true, tags: false }
    }
}

impl GroupBy {
    /// `host,paths,tags` (any of them, comma-separated; empty: one group).
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] naming a word that is none of them.
    pub fn parse(spec: &str) -> crate::Result<Self> {
        let mut g = Self { host: false, paths: false, tags: false };
        for word in spec.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                other => return Err(crate::Error::Invalid(format!("group by {other:?}: give host, paths or tags"))),
            }
        }
        Ok(g)
    }

    /// The key of `snapshot`'s group.
    pub(crate) fn key(&self, snapshot: &Snapshot) -> (String, Vec<String>, Vec<String>) {
        let mut tags = if self.tags { snapshot.tags.clone() } else { Vec::new() };
        tags.sort();
        (
            if self.host { snapshot.hostname.clone() } else { String::new() },
            if self.paths { snapshot.paths.clone() } else { Vec::new() },
            tags,
        )
    }
}

impl Retention {
    /// Keeps the newest `n` snapshots.
    pub fn last(n: usize) -> Self {
        Self { keep_last: n, ..Self::default() }
    }

    /// True when the policy keeps nothing (forgetting with it would delete everything).
    pub fn is_empty(&self) -> bool {
        let periods = [self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly, self.keep_monthly];
        periods.iter().chain([&self.keep_yearly]).all(|&n| n == 0)
            && self.keep_within_ns.is_none()
            && self.keep_tags.is_empty()
    }

    /// The ids kept among one group's `snapshots` (any order; times in Unix nanoseconds).
    pub fn keep(&self, snapshots: &[(SnapshotId, i64, &[String])]) -> HashSet<SnapshotId> {
        let mut newest_first: Vec<_> = snapshots.to_vec();
        newest_first.sort_by_key(|&(id, t, _)| std::cmp::Reverse((t, id)));
        let mut kept: HashSet<SnapshotId> = newest_first.iter().take(self.keep_last).map(|(id, ..)| *id).collect();
        let hour = |t: i64| t.div_euclid(HOUR_NS);
        let day = |t: i64| t.div_euclid(DAY_NS);
        let week = |t: i64| (day(t) + 3).div_euclid(7);
        let month = |t: i64| {
            let (y, m, _) = civil_date(day(t));
            y * 12 + i64::from(m)
        };
        let year = |t: i64| civil_date(day(t)).0;
        let rules: [(&dyn Fn(i64) -> i64, usize); 5] = [
            (&hour, self.keep_hourly),
            (&day, self.keep_daily),
            (&week, self.keep_weekly),
            (&month, self.keep_monthly),
            (&year, self.keep_yearly),
        ];
        for (period, count) in rules {
            let mut last_period = None;
            let mut left = count;
            for (id, t, _) in &newest_first {
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
        if let (Some(within), Some((_, newest, _))) = (self.keep_within_ns, newest_first.first()) {
            kept.extend(
                newest_first.iter().filter(|(_, t, _)| newest.saturating_sub(*t) <= within).map(|(id, ..)| *id),
            );
        }
        let tagged = |tags: &[String]| tags.iter().any(|t| self.keep_tags.contains(t));
        kept.extend(newest_first.iter().filter(|(_, _, tags)| tagged(tags)).map(|(id, ..)| *id));
        kept
    }
}

/// The proleptic Gregorian (year, month, day) of a day counted from 1970-01-01 (Howard
/// Hinnant's civil-from-days).
pub fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SnapshotId {
        SnapshotId([n; 32])
    }

    fn untagged(snaps: &[(SnapshotId, i64)]) -> Vec<(SnapshotId, i64, &'static [String])> {
        snaps.iter().map(|&(id, t)| (id, t, &[][..])).collect()
    }

    #[test]
    fn keeps_last_daily_and_weekly() {
        let hour = 3_600 * 1_000_000_000i64;
        // 2025-11-24 was a Monday: day 20416 since the epoch.
        let monday = 20_416 * DAY_NS;
        let snaps = untagged(&[
            (id(1), monday - 24 * hour),     // Sunday before: previous week
            (id(2), monday + hour),          // Monday
            (id(3), monday + 2 * hour),      // Monday, newer
            (id(4), monday + 24 * hour),     // Tuesday
            (id(5), monday + 25 * hour),     // Tuesday, newer
            (id(6), monday + 7 * 24 * hour), // next Monday
        ]);
        assert_eq!(Retention::last(2).keep(&snaps), HashSet::from([id(6), id(5)]));
        let daily = Retention { keep_daily: 3, ..Default::default() };
        assert_eq!(daily.keep(&snaps), HashSet::from([id(6), id(5), id(3)]));
        let weekly = Retention { keep_weekly: 3, ..Default::default() };
        assert_eq!(weekly.keep(&snaps), HashSet::from([id(6), id(5), id(1)]));
        let hourly = Retention { keep_hourly: 2, ..Default::default() };
        assert_eq!(hourly.keep(&snaps), HashSet::from([id(6), id(5)]));
        assert!(Retention::default().is_empty() && Retention::default().keep(&snaps).is_empty());
    }

    #[test]
    fn keeps_monthly_yearly_within_and_tagged() {
        // 2024-01-31, 2024-02-01, 2024-02-29 (leap day), 2025-03-01, 2025-03-02.
        let days = [19_753, 19_754, 19_782, 20_148, 20_149];
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(20_148), (2025, 3, 1));
        let snaps = untagged(&days.iter().enumerate().map(|(i, d)| (id(i as u8), d * DAY_NS)).collect::<Vec<_>>());
        let monthly = Retention { keep_monthly: 3, ..Default::default() };
        assert_eq!(monthly.keep(&snaps), HashSet::from([id(4), id(2), id(0)]));
        let yearly = Retention { keep_yearly: 5, ..Default::default() };
        assert_eq!(yearly.keep(&snaps), HashSet::from([id(4), id(2)]));
        let within = Retention { keep_within_ns: Some(DAY_NS), ..Default::default() };
        assert_eq!(within.keep(&snaps), HashSet::from([id(4), id(3)]));
        let keep_tag = ["keep".to_string()];
        let tagged: Vec<(SnapshotId, i64, &[String])> = snaps
            .iter()
            .enumerate()
            .map(|(i, &(id, t, _))| (id, t, if i == 1 { &keep_tag[..] } else { &[] }))
            .collect();
        let by_tag = Retention { keep_tags: vec!["keep".into()], ..Default::default() };
        assert_eq!(by_tag.keep(&tagged), HashSet::from([id(1)]));
        assert!(!by_tag.is_empty());
    }

    #[test]
    fn group_by_parses_its_words() {
        assert_eq!(GroupBy::parse("host,tags").unwrap(), GroupBy { host: true, paths: false, tags: true });
        assert_eq!(GroupBy::parse("").unwrap(), GroupBy { host: false, paths: false, tags: false });
        assert!(GroupBy::parse("hosts").is_err());
    }
}
