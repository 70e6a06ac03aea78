//! A UDP forwarder on loopback between QUIC peers and a server, with the network's events
//! switched on at will: added one-way delay (pipelined: packets in flight overlap, as on a
//! WAN link) and a black hole (every packet dropped, both ways, as when a relay's host
//! stalls or its route dies).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::net::UdpSocket;

/// Largest datagram forwarded.
const MAX_DATAGRAM: usize = 65_536;

/// A running forwarder; stops when dropped.
pub struct UdpProxy {
    /// Where peers send: give them this instead of the server's address.
    pub addr: SocketAddr,
    link: Arc<Link>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Link {
    delay_us: AtomicU64,
    black_hole: AtomicBool,
}

impl Link {
    fn passes(&self) -> bool {
        !self.black_hole.load(Ordering::Relaxed)
    }

    /// Sends `packet` with `to.send_to` after the one-way delay, without holding up the
    /// packets behind it.
    fn forward(&self, to: Arc<UdpSocket>, packet: Vec<u8>, dest: SocketAddr) {
        let delay = Duration::from_micros(self.delay_us.load(Ordering::Relaxed));
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let _ = to.send_to(&packet, dest).await;
        });
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UdpProxy {
    /// Forwards datagrams from peers to `server` and back; each peer gets an upstream
    /// socket of its own, so the server tells them apart.
    ///
    /// # Panics
    /// When no loopback port is free: a test setup failure.
    pub async fn start(server: SocketAddr) -> UdpProxy {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind loopback"));
        let addr = front.local_addr().expect("local addr");
        let link = Arc::new(Link::default());
        let peers: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
        let task = tokio::spawn({
            let link = link.clone();
            async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                let mut returns = Vec::new();
                loop {
                    let Ok((n, peer)) = front.recv_from(&mut buf).await else { return };
                    let known = peers.lock().expect("peers").get(&peer).cloned();
                    let upstream = match known {
                        Some(u) => u,
                        None => {
                            let Ok(u) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                            let u = Arc::new(u);
                            peers.lock().expect("peers").insert(peer, u.clone());
                            returns.push(tokio::spawn(back(u.clone(), front.clone(), peer, link.clone())));
                            u
                        }
                    };
                    if link.passes() {
                        link.forward(upstream, buf[..n].to_vec(), server);
                    }
                }
            }
        });
        UdpProxy { addr, link, task }
    }

    /// Adds `delay` each way (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        self.link.delay_us.store(delay.as_micros() as u64, Ordering::Relaxed);
    }

    /// Drops every packet, both ways, while `on`.
    pub fn set_black_hole(&self, on: bool) {
        self.link.black_hole.store(on, Ordering::Relaxed);
    }
}

/// Carries the server's answers to one peer.
async fn back(upstream: Arc<UdpSocket>, front: Arc<UdpSocket>, peer: SocketAddr, link: Arc<Link>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok(n) = upstream.recv(&mut buf).await else { return };
        if link.passes() {
            link.forward(front.clone(), buf[..n].to_vec(), peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_both_ways_delays_and_drops() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let proxy = UdpProxy::start(server.local_addr().unwrap()).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = [0u8; 16];
        client.send_to(b"ping", proxy.addr).await.unwrap();
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ping");
        server.send_to(b"pong", from).await.unwrap();
        let n = client.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pong");

        proxy.set_delay(Duration::from_millis(40));
        let t = std::time::Instant::now();
        client.send_to(b"slow", proxy.addr).await.unwrap();
        server.recv_from(&mut buf).await.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(40));

        proxy.set_black_hole(true);
        client.send_to(b"lost", proxy.addr).await.unwrap();
        let lost = tokio::time::timeout(Duration::from_millis(300), server.recv_from(&mut buf)).await;
        assert!(lost.is_err(), "a black hole drops everything");
    }
}
