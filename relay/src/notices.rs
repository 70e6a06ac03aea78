//! Notices the relay sends on its own (NOTIFY, DEVICE_REVOKED): one queue and one sender per
//! connection, each notice on a unidirectional stream of its own.
//!
//! The queue is bounded without losing anything a device needs: while a NOTIFY waits to be
//! sent, a newer one for the same connection takes its place (it names a higher cursor, and
//! a device pulls everything after its own); so does a newer ROSTER_APPENDED (it names the
//! later roster position). A DEVICE_REVOKED is never dropped, but one per revoked device is
//! enough. So a device that reads slowly, or a group whose devices all push at once, costs
//! the relay one stream per device at a time and a queue no longer than the group's
//! devices.

use std::{collections::VecDeque, sync::Mutex};

use iroh::endpoint::Connection;
use zerok_core::sync::message::Message;
use zerok_wire::write_frame;

/// What waits to be sent to one connection.
#[derive(Default)]
pub struct Notices {
    queue: Mutex<VecDeque<Message>>,
    wake: tokio::sync::Notify,
}

impl Notices {
    /// Queues `msg`; a NOTIFY or ROSTER_APPENDED replaces one of its kind still waiting,
    /// and a DEVICE_REVOKED for a device already waiting is kept once.
    pub fn push(&self, msg: Message) {
        let mut queue = self.queue.lock().expect("notice queue");
        let same = |m: &Message| match (m, &msg) {
            (Message::Notify(_), Message::Notify(_)) | (Message::RosterAppended(_), Message::RosterAppended(_)) => true,
            (Message::DeviceRevoked(a), Message::DeviceRevoked(b)) => a.device_id == b.device_id,
            _ => false,
        };
        match queue.iter_mut().find(|m| same(m)) {
            Some(_) if matches!(msg, Message::DeviceRevoked(_)) => {}
            Some(old) => *old = msg,
            None => queue.push_back(msg),
        }
        drop(queue);
        self.wake.notify_one();
    }

    /// Notices waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().expect("notice queue").len()
    }

    fn pop(&self) -> Option<Message> {
        self.queue.lock().expect("notice queue").pop_front()
    }

    /// Sends what is queued, in order, until `conn` closes; `sent` runs after each notice.
    pub async fn run(&self, conn: Connection, sent: impl Fn()) {
        loop {
            while let Some(msg) = self.pop() {
                let Ok(mut send) = conn.open_uni().await else { return };
                if write_frame(&mut send, &msg).await.is_err() {
                    return;
                }
                sent();
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = conn.closed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use zerok_core::sync::{
        BlobId, DeviceId,
        message::{DeviceRevoked, Notify},
    };

    use super::*;

    fn notify(cursor: u64) -> Message {
        Message::Notify(Notify {
            blob_id: BlobId::random(),
            cursor,
            sender_id: DeviceId([1; 32]),
            timestamp: 0,
            size: 1,
        })
    }

    #[test]
    fn a_waiting_notify_gives_way_to_a_newer_one_and_other_notices_all_stay() {
        let notices = Notices::default();
        let revoked = Message::DeviceRevoked(DeviceRevoked {
            device_id: DeviceId([2; 32]),
            revoked_by: DeviceId([3; 32]),
            timestamp: 0,
        });
        notices.push(notify(1));
        notices.push(revoked.clone());
        notices.push(notify(2));
        notices.push(notify(3));
        let sent: Vec<Message> = std::iter::from_fn(|| notices.pop()).collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(matches!(&sent[0], Message::Notify(n) if n.cursor == 3), "{sent:?}");
        assert_eq!(sent[1], revoked);
        notices.push(notify(4));
        assert!(matches!(notices.pop(), Some(Message::Notify(n)) if n.cursor == 4));
    }

    #[test]
    fn a_flood_of_notices_keeps_the_queue_as_short_as_the_kinds_and_devices() {
        let notices = Notices::default();
        for i in 0..10_000u64 {
            notices.push(notify(i));
            notices.push(Message::RosterAppended(zerok_core::sync::message::RosterAppended { seq: i }));
            let device = DeviceId([(i % 5) as u8; 32]);
            notices.push(Message::DeviceRevoked(DeviceRevoked { device_id: device, revoked_by: device, timestamp: i }));
        }
        assert_eq!(notices.len(), 2 + 5, "one NOTIFY, one ROSTER_APPENDED, one DEVICE_REVOKED per device");
        let sent: Vec<Message> = std::iter::from_fn(|| notices.pop()).collect();
        assert!(matches!(&sent[0], Message::Notify(n) if n.cursor == 9_999));
        assert!(matches!(&sent[1], Message::RosterAppended(r) if r.seq == 9_999));
        assert_eq!(sent.iter().filter(|m| matches!(m, Message::DeviceRevoked(_))).count(), 5, "none is lost");
    }
}
