//! Notices the relay sends on its own (NOTIFY, DEVICE_REVOKED): one queue and one sender per
//! connection, each notice on a unidirectional stream of its own.
//!
//! NOTIFYs coalesce: while one waits to be sent, a newer one for the same connection takes its
//! place, since it names a higher cursor and a device pulls everything after its own cursor.
//! So a device that reads slowly, or a group whose devices all push at once, costs the relay
//! one stream per device at a time, not one task and one stream per message. Every other
//! notice is kept and sent in order.

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
    /// Queues `msg`; a NOTIFY replaces one that is still waiting.
    pub fn push(&self, msg: Message) {
        let mut queue = self.queue.lock().expect("notice queue");
        let waiting = queue.iter_mut().find(|m| matches!(m, Message::Notify(_)));
        match (waiting, &msg) {
            (Some(old), Message::Notify(_)) => *old = msg,
            _ => queue.push_back(msg),
        }
        drop(queue);
        self.wake.notify_one();
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
}
