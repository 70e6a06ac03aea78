//! Who may wait for HELLO, and how many sessions an address may hold. At most so many
//! connections wait per address and in all; when the room is full the oldest waiting
//! connection is closed to admit the newest, so a flood of connections that never say
//! HELLO costs its own connections their places and never locks a member out; each waits
//! at most the HELLO timeout anyway. An IPv6 address counts by its /64, the block one
//! host is given.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex},
};

use tokio_util::sync::CancellationToken;

/// The waiting room.
pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    room: Mutex<Room>,
}

#[derive(Default)]
struct Room {
    per_ip: HashMap<IpAddr, usize>,
    /// Oldest first: (ticket number, address, its eviction token).
    waiting: VecDeque<(u64, Option<IpAddr>, CancellationToken)>,
    next: u64,
}

/// A place in the room, given back when dropped (at HELLO, or when the connection ends).
pub struct Ticket {
    admission: Arc<Admission>,
    number: u64,
    ip: Option<IpAddr>,
    evicted: CancellationToken,
}

impl Ticket {
    /// Resolves when the room needed this place for a newer connection.
    pub async fn evicted(&self) {
        self.evicted.cancelled().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut room = self.admission.room.lock().expect("admission");
        if let Some(i) = room.waiting.iter().position(|(n, ..)| *n == self.number) {
            room.waiting.remove(i);
            room.release(self.ip);
        }
    }
}

/// The key an address is counted under: IPv4 as it is, IPv6 by its /64.
fn block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Gives one of `ip`'s places back to `counts`.
fn give_back(counts: &mut HashMap<IpAddr, usize>, ip: Option<IpAddr>) {
    let Some(ip) = ip else { return };
    if let Some(n) = counts.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&ip);
        }
    }
}

impl Room {
    fn release(&mut self, ip: Option<IpAddr>) {
        give_back(&mut self.per_ip, ip);
    }
}

impl Admission {
    /// A room for `max_total` connections, `max_per_ip` from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self { max_total: max_total.max(1), max_per_ip: max_per_ip.max(1), room: Mutex::default() })
    }

    /// A place for a connection from `ip` (None: not an IP transport), or None when that
    /// address already holds its share. A full room evicts its oldest.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<Ticket> {
        let ip = ip.map(block);
        let mut room = self.room.lock().expect("admission");
        if let Some(ip) = ip
            && room.per_ip.get(&ip).is_some_and(|n| *n >= self.max_per_ip)
        {
            return None;
        }
        while room.waiting.len() >= self.max_total {
            let Some((_, old_ip, token)) = room.waiting.pop_front() else { break };
            room.release(old_ip);
            token.cancel();
        }
        let number = room.next;
        room.next += 1;
        let evicted = CancellationToken::new();
        room.waiting.push_back((number, ip, evicted.clone()));
        if let Some(ip) = ip {
            *room.per_ip.entry(ip).or_default() += 1;
        }
        Some(Ticket { admission: self.clone(), number, ip, evicted })
    }

    /// Connections waiting now.
    pub fn waiting(&self) -> usize {
        self.room.lock().expect("admission").waiting.len()
    }

    /// Whether the room is at least half full (then new peers must prove their address).
    pub fn crowded(&self) -> bool {
        self.waiting() * 2 >= self.max_total
    }
}

/// Sessions per address.
pub struct Sessions {
    max_per_ip: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// A session's count against its address, given back when dropped.
pub struct SessionSlot {
    sessions: Arc<Sessions>,
    ip: Option<IpAddr>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        give_back(&mut self.sessions.held.lock().expect("sessions"), self.ip);
    }
}

impl Sessions {
    /// At most `max_per_ip` sessions per address.
    pub fn new(max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self { max_per_ip: max_per_ip.max(1), held: Mutex::default() })
    }

    /// A slot for a session from `ip`, or None when the address holds its share.
    pub fn take(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<SessionSlot> {
        let ip = ip.map(block);
        if let Some(ip) = ip {
            let mut held = self.held.lock().expect("sessions");
            let n = held.entry(ip).or_default();
            if *n >= self.max_per_ip {
                return None;
            }
            *n += 1;
        }
        Some(SessionSlot { sessions: self.clone(), ip })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_a_full_room_evicts_its_oldest() {
        let room = Admission::new(3, 2);
        let (a, b) = (Some("127.0.0.2".parse().unwrap()), Some("127.0.0.3".parse().unwrap()));
        let first = room.admit(a).unwrap();
        let _second = room.admit(a).unwrap();
        assert!(room.admit(a).is_none(), "the address holds its share");
        let _third = room.admit(b).unwrap();
        let fourth = room.admit(b).unwrap();
        assert!(first.evicted.is_cancelled(), "the oldest made room");
        assert_eq!(room.waiting(), 3);
        assert!(room.admit(a).is_some(), "its place is free again (and the room evicted the next oldest)");
        drop(fourth);
        assert_eq!(room.waiting(), 1, "a dropped ticket gives its place back");
        drop(first);
        assert_eq!(room.waiting(), 1, "an evicted ticket's place was given back already");
    }

    #[test]
    fn an_ipv6_host_counts_by_its_block_and_sessions_per_address_are_bounded() {
        let room = Admission::new(10, 1);
        let _one = room.admit(Some("2001:db8:1:2::1".parse().unwrap())).unwrap();
        assert!(room.admit(Some("2001:db8:1:2:ffff::9".parse().unwrap())).is_none(), "same /64");
        assert!(room.admit(Some("2001:db8:1:3::1".parse().unwrap())).is_some(), "another /64");
        let sessions = Sessions::new(2);
        let ip = Some("127.0.0.9".parse().unwrap());
        let (a, _b) = (sessions.take(ip).unwrap(), sessions.take(ip).unwrap());
        assert!(sessions.take(ip).is_none(), "the address holds its share");
        drop(a);
        assert!(sessions.take(ip).is_some(), "a session that ended gives its slot back");
    }
}
