//! Who may wait for HELLO: at most so many connections per IP address and in all. When
//! the room is full the oldest waiting connection is closed to admit the newest, so a
//! flood of connections that never say HELLO costs its own connections their places and
//! never locks a member out; each waits at most the HELLO timeout anyway.

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

impl Room {
    fn release(&mut self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
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
}
