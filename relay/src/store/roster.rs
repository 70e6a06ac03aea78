//! The relay's copy of each group's roster log (`zerok_core::sync::roster`), verified entry
//! by entry exactly as devices verify them and kept with no TTL. It is the relay's second
//! line of defence: only current members may use a group, a removed device is refused
//! under any endpoint key, and a rotated group takes no more pushes. (The first line is
//! on the devices: they verify the same log and rotate the group secret.)
//!
//! A log belongs to a *lineage*, named by its genesis group; every rotation adds the next
//! group to the lineage. A relay that lost its state learns the log again from the first
//! member that connects (it appends the log from its genesis).

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use zerok_core::sync::{
    DeviceId, GroupId,
    roster::{Change, Entry, EntryHash, Roster, RosterError},
};

use super::{Store, dec, enc, keys::At};
use crate::{Error, Result};

/// group → lineage (its genesis group's id).
pub(super) const LINEAGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("roster_lineages");
/// lineage → the current [`Roster`].
pub(super) const ROSTERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rosters");
/// lineage ‖ seq (BE) → encoded entry.
const LOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("roster_log");
/// rotated group → the group that followed it.
const CLOSED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("closed_groups");

/// A device's standing in a group, as the relay's roster has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    /// The lineage's last roster position (0: no roster known).
    pub roster_seq: u64,
    /// A current member.
    pub member: bool,
    /// Removed from the group.
    pub removed: bool,
    /// The group rotated: it takes no more pushes.
    pub closed: bool,
}

/// A page of a roster log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RosterPage {
    /// Entries in order.
    pub entries: Vec<Entry>,
    /// More follow.
    pub has_more: bool,
    /// The lineage's last position (0: no roster known).
    pub seq: u64,
    /// Its entry's hash.
    pub head: EntryHash,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The lineage's last position now.
    pub seq: u64,
    /// Changes of the entries that were new, in order.
    pub changes: Vec<Change>,
    /// Groups closed by rotations among them.
    pub closed: Vec<GroupId>,
    /// Devices removed, each with the group it was removed from.
    pub removed: Vec<(GroupId, DeviceId)>,
}

fn lineage_of(t: &impl ReadableTable<&'static [u8], &'static [u8]>, group: &GroupId) -> Result<Option<GroupId>> {
    match t.get(group.0.as_slice())? {
        Some(v) => Ok(Some(super::keys::group(v.value())?)),
        None => Ok(None),
    }
}

fn refused(e: RosterError) -> Error {
    match e {
        RosterError::NotNext { .. } => Error::Conflict,
        other => Error::Roster(other.to_string()),
    }
}

/// Tables of the roster, created when the store opens.
pub(super) fn open_tables(tx: &redb::WriteTransaction) -> Result<()> {
    tx.open_table(LINEAGES)?;
    tx.open_table(ROSTERS)?;
    tx.open_table(LOG)?;
    tx.open_table(CLOSED)?;
    Ok(())
}

/// `device`'s standing in `group`, from either kind of transaction's tables.
fn standing_of(
    lineages: &impl ReadableTable<&'static [u8], &'static [u8]>,
    rosters: &impl ReadableTable<&'static [u8], &'static [u8]>,
    closed: &impl ReadableTable<&'static [u8], &'static [u8]>,
    group: &GroupId,
    device: &DeviceId,
) -> Result<Standing> {
    let Some(lineage) = lineage_of(lineages, group)? else { return Ok(Standing::default()) };
    let roster: Roster = match rosters.get(lineage.0.as_slice())? {
        Some(v) => dec(v.value())?,
        None => return Ok(Standing::default()),
    };
    Ok(Standing {
        roster_seq: roster.seq(),
        member: roster.is_member(device),
        removed: roster.is_removed(device),
        closed: closed.get(group.0.as_slice())?.is_some(),
    })
}

/// [`Store::standing`] inside a push's own transaction.
pub(super) fn standing_in(tx: &redb::WriteTransaction, group: &GroupId, device: &DeviceId) -> Result<Standing> {
    standing_of(&tx.open_table(LINEAGES)?, &tx.open_table(ROSTERS)?, &tx.open_table(CLOSED)?, group, device)
}

/// The current members of `group`, when the relay knows its roster and `group` is the
/// lineage's current one (the members of a group rotated away from are not kept: who said
/// HELLO there stands for them).
pub(super) fn members_in(
    lineages: &impl ReadableTable<&'static [u8], &'static [u8]>,
    rosters: &impl ReadableTable<&'static [u8], &'static [u8]>,
    group: &GroupId,
) -> Result<Option<Vec<DeviceId>>> {
    let Some(lineage) = lineage_of(lineages, group)? else { return Ok(None) };
    let Some(v) = rosters.get(lineage.0.as_slice())? else { return Ok(None) };
    let roster = dec::<Roster>(v.value())?;
    if roster.group() != *group {
        return Ok(None);
    }
    Ok(Some(roster.members().keys().copied().collect()))
}

impl Store {
    /// `device`'s standing in `group`.
    ///
    /// # Errors
    /// Database errors.
    pub fn standing(&self, group: &GroupId, device: &DeviceId) -> Result<Standing> {
        let tx = self.db.begin_read()?;
        standing_of(&tx.open_table(LINEAGES)?, &tx.open_table(ROSTERS)?, &tx.open_table(CLOSED)?, group, device)
    }

    /// Entries of `group`'s lineage after `after`, stopping before `budget` bytes; whether
    /// more remain; and the last position and its entry's hash.
    ///
    /// # Errors
    /// Database errors.
    pub fn roster_entries(&self, group: &GroupId, after: u64, budget: usize) -> Result<RosterPage> {
        let tx = self.db.begin_read()?;
        let Some(lineage) = lineage_of(&tx.open_table(LINEAGES)?, group)? else { return Ok(RosterPage::default()) };
        let (seq, head) = match tx.open_table(ROSTERS)?.get(lineage.0.as_slice())? {
            Some(v) => {
                let r = dec::<Roster>(v.value())?;
                (r.seq(), r.head())
            }
            None => (0, EntryHash::default()),
        };
        let log = tx.open_table(LOG)?;
        let (mut out, mut used) = (Vec::new(), 0);
        let (from, to) = At::range(&lineage, after.saturating_add(1));
        for item in log.range(from.as_slice()..=to.as_slice())? {
            let (_, v) = item?;
            used += v.value().len() + 8;
            if used > budget && !out.is_empty() {
                return Ok(RosterPage { entries: out, has_more: true, seq, head });
            }
            out.push(Entry::from_bytes(v.value()).map_err(|e| Error::Damaged(e.to_string()))?);
        }
        Ok(RosterPage { entries: out, has_more: false, seq, head })
    }

    /// Appends entries to `group`'s lineage, verifying each (ticket expiry by `now`). Entries
    /// the relay already has are skipped when identical; a relay that knows no roster for
    /// `group` takes a log from its genesis. All or nothing: the log must lead to `group`,
    /// and hold at most `max_members` members after each entry.
    ///
    /// # Errors
    /// [`Error::Conflict`] when an entry does not extend the head (or differs from the
    /// relay's at its position), [`Error::Roster`] when it does not verify,
    /// [`Error::UnknownRoster`] when the relay needs the log from its genesis.
    pub fn roster_append(&self, group: &GroupId, entries: &[Entry], now: u64, max_members: usize) -> Result<Appended> {
        let tx = self.db.begin_write()?;
        let appended = {
            let mut lineages = tx.open_table(LINEAGES)?;
            let mut rosters = tx.open_table(ROSTERS)?;
            let mut log = tx.open_table(LOG)?;
            let mut closed_t = tx.open_table(CLOSED)?;
            let first = entries.first().ok_or_else(|| Error::Roster("no entries".into()))?;
            let known = match lineage_of(&lineages, group)? {
                Some(l) => Some(l),
                None => {
                    let body = first.body().map_err(refused)?;
                    if body.seq != 1 {
                        return Err(Error::UnknownRoster);
                    }
                    lineage_of(&lineages, &body.group)?
                }
            };
            let (lineage, mut roster) = match known {
                Some(l) => {
                    let v =
                        rosters.get(l.0.as_slice())?.ok_or_else(|| Error::Damaged("lineage without roster".into()))?;
                    (l, dec::<Roster>(v.value())?)
                }
                None => {
                    let (r, _) = Roster::genesis(first).map_err(refused)?;
                    lineages.insert(r.group().0.as_slice(), r.group().0.as_slice())?;
                    log.insert(At::new(&r.group(), 1).encode().as_slice(), first.to_bytes().as_slice())?;
                    (r.group(), r)
                }
            };
            let (mut changes, mut closed, mut removed) = (Vec::new(), Vec::new(), Vec::new());
            for e in entries {
                let seq = e.body().map_err(refused)?.seq;
                let key = At::new(&lineage, seq).encode();
                if seq <= roster.seq() {
                    match log.get(key.as_slice())? {
                        Some(v) if v.value() == e.to_bytes().as_slice() => continue,
                        _ => return Err(Error::Conflict),
                    }
                }
                let before = roster.group();
                let change = roster.step(e, Some(now)).map_err(refused)?;
                if roster.members().len() > max_members {
                    return Err(Error::Roster(format!("this relay serves groups of at most {max_members} devices")));
                }
                log.insert(key.as_slice(), e.to_bytes().as_slice())?;
                if roster.group() != before {
                    if lineage_of(&lineages, &roster.group())?.is_some() {
                        return Err(Error::Roster("a rotation to a group that already exists".into()));
                    }
                    lineages.insert(roster.group().0.as_slice(), lineage.0.as_slice())?;
                    closed_t.insert(before.0.as_slice(), roster.group().0.as_slice())?;
                    closed.push(before);
                }
                match &change {
                    Change::Removed { device, .. } => {
                        super::devices::mark_revoked_in(&tx, &before, device)?;
                        removed.push((before, *device));
                    }
                    Change::Joined { invite, .. } => super::invites::drop_in(&tx, invite)?,
                    Change::Created(_) => {}
                }
                changes.push(change);
            }
            if lineage_of(&lineages, group)? != Some(lineage) {
                return Err(Error::Roster("the log does not lead to this group".into()));
            }
            rosters.insert(lineage.0.as_slice(), enc(&roster).as_slice())?;
            Appended { seq: roster.seq(), changes, closed, removed }
        };
        tx.commit()?;
        Ok(appended)
    }
}

#[cfg(test)]
mod tests {
    use zerok_core::sync::{
        SigningKey,
        roster::{Op, Ticket, create_entry, join_entry, next_entry},
    };

    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("relay.redb")).unwrap();
        (dir, s)
    }

    fn id(k: &SigningKey) -> DeviceId {
        DeviceId(k.verifying_key().to_bytes())
    }

    const G: GroupId = GroupId([1; 32]);

    #[test]
    fn members_only_joins_once_and_a_rotation_closes_the_group() {
        let (_d, s) = store();
        let (a, b, c) =
            (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]), SigningKey::from_bytes(&[3; 32]));
        assert_eq!(s.standing(&G, &id(&a)).unwrap(), Standing::default());
        let genesis = create_entry(G, &a, "a");
        let r0 = Roster::genesis(&genesis).unwrap().0;
        assert_eq!(s.roster_append(&G, std::slice::from_ref(&genesis), 0, 9).unwrap().seq, 1);
        assert!(s.standing(&G, &id(&a)).unwrap().member);
        assert!(!s.standing(&G, &id(&b)).unwrap().member, "a fresh key is nobody");

        let ticket = Ticket::new(G, &a, &[9; 32], 100);
        let join_b = join_entry(&r0, &b, "b", ticket.clone(), &[9; 32]);
        let r1 = r0.apply(&join_b, None).unwrap().0;
        s.roster_append(&G, std::slice::from_ref(&join_b), 50, 9).unwrap();
        s.roster_append(&G, std::slice::from_ref(&join_b), 50, 9).unwrap();
        assert_eq!(s.standing(&G, &id(&b)).unwrap().roster_seq, 2, "a resent entry is skipped");
        let join_c = join_entry(&r1, &c, "c", ticket, &[9; 32]);
        assert!(matches!(s.roster_append(&G, &[join_c], 50, 9), Err(Error::Roster(_))), "invite used twice");
        let late = join_entry(&r1, &c, "c", Ticket::new(G, &a, &[8; 32], 100), &[8; 32]);
        assert!(matches!(s.roster_append(&G, &[late], 100, 9), Err(Error::Roster(_))), "expired by relay time");

        // A stale entry (built on an old head) conflicts; the log is unchanged.
        let stale = next_entry(&r0, &a, Op::Remove { device: id(&b), rotation: None });
        assert!(matches!(s.roster_append(&G, &[stale], 50, 9), Err(Error::Conflict)));

        let next = GroupId([2; 32]);
        let rotation = zerok_core::sync::roster::Rotation {
            next,
            sealed: vec![zerok_core::sync::roster::SealedSecret { device: id(&a), sealed: vec![0; 80] }],
        };
        let remove = next_entry(&r1, &a, Op::Remove { device: id(&b), rotation: Some(rotation) });
        let done = s.roster_append(&G, &[remove], 60, 9).unwrap();
        assert_eq!(done.closed, vec![G]);
        let old = s.standing(&G, &id(&b)).unwrap();
        assert!(old.removed && !old.member && old.closed);
        assert!(s.standing(&next, &id(&a)).unwrap().member);
        assert!(s.standing(&G, &id(&a)).unwrap().closed);
        assert_eq!(s.roster_entries(&next, 0, usize::MAX).unwrap().entries.len(), 3, "one log for the lineage");
        let page = s.roster_entries(&G, 0, 10).unwrap();
        assert_eq!((page.entries.len(), page.has_more, page.seq), (1, true, 3));
    }

    #[test]
    fn an_unknown_group_needs_the_log_from_its_genesis() {
        let (_d, s) = store();
        let a = SigningKey::from_bytes(&[1; 32]);
        let genesis = create_entry(G, &a, "a");
        let r0 = Roster::genesis(&genesis).unwrap().0;
        let ticket = Ticket::new(G, &a, &[9; 32], 100);
        let join = join_entry(&r0, &SigningKey::from_bytes(&[2; 32]), "b", ticket, &[9; 32]);
        assert!(matches!(s.roster_append(&G, std::slice::from_ref(&join), 0, 9), Err(Error::UnknownRoster)));
        // Someone else's genesis cannot be planted under this group's id.
        let other = create_entry(GroupId([5; 32]), &a, "a");
        assert!(matches!(s.roster_append(&G, &[other], 0, 9), Err(Error::Roster(_))));
        assert_eq!(s.standing(&GroupId([5; 32]), &id(&a)).unwrap(), Standing::default(), "nothing kept");
        assert!(
            matches!(s.roster_append(&G, &[genesis.clone(), join.clone()], 0, 1), Err(Error::Roster(why)) if why.contains("at most 1")),
            "a relay bounds the devices of a group"
        );
        assert_eq!(s.roster_append(&G, &[genesis, join], 0, 9).unwrap().seq, 2);
    }
}
