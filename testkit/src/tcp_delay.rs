//! [`TcpDelay`]: a pipelined latency link for TCP on loopback. Every byte is forwarded, in
//! order, a fixed one-way delay after it arrived, in both directions, with no bandwidth cap:
//! a request is answered one round trip later however many are in flight, as over a WAN.
//! Connection setup is not delayed (the listener accepts at once); the first bytes are.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp},
    sync::mpsc,
    time::Instant,
};

/// Reads buffered per direction before the reader waits for the writer (bounds memory at
/// this many × [`READ_BYTES`] per connection direction).
const QUEUED_READS: usize = 4096;
/// Largest read forwarded at once.
const READ_BYTES: usize = 64 << 10;

/// A loopback listener that forwards to `upstream` with a one-way delay; stops when
/// dropped (with every connection it forwards).
pub struct TcpDelay {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The accept loop and its links, stopped when this is dropped.
    _task: tokio_util::task::AbortOnDropHandle<()>,
}

impl TcpDelay {
    /// Listens on a free 127.0.0.1 port.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> std::io::Result<TcpDelay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                links.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (client_rx, client_tx) = client.into_split();
                    let (server_rx, server_tx) = server.into_split();
                    tokio::join!(pipe(client_rx, server_tx, one_way), pipe(server_rx, client_tx, one_way));
                });
            }
        });
        Ok(TcpDelay { addr, _task: tokio_util::task::AbortOnDropHandle::new(task) })
    }
}

/// Forwards one direction: a reader stamps what it reads with the time it is due, a writer
/// sleeps until then and writes it. End of stream is forwarded (delayed) as a shutdown.
async fn pipe(mut from: tcp::OwnedReadHalf, mut to: tcp::OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUED_READS);
    let reader = async move {
        let mut buf = vec![0u8; READ_BYTES];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            if tx.send((Instant::now() + delay, buf[..n].to_vec())).await.is_err() || n == 0 {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if bytes.is_empty() {
                let _ = to.shutdown().await;
                return;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_in_order_one_delay_later_however_many_are_in_flight() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = echo.accept().await.unwrap();
            let (mut r, mut w) = sock.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
        });
        let delay = Duration::from_millis(50);
        let link = TcpDelay::start(upstream, delay).await.unwrap();
        let mut sock = TcpStream::connect(link.addr).await.unwrap();
        let started = Instant::now();
        let (mut r, mut w) = sock.split();
        let send = async {
            for i in 0..10u8 {
                w.write_all(&[i; 100]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let recv = async {
            r.read_to_end(&mut got).await.unwrap();
        };
        tokio::join!(send, recv);
        let took = started.elapsed();
        let want: Vec<u8> = (0..10u8).flat_map(|i| [i; 100]).collect();
        assert_eq!(got, want, "every byte, in order");
        // Ten writes 10 ms apart, each back a round trip (100 ms) later: pipelined, the last
        // lands ~190 ms in; one at a time it would be 10 round trips (over a second).
        assert!(took >= Duration::from_millis(190), "delayed: {took:?}");
        assert!(took < Duration::from_millis(900), "pipelined, not one round trip per write: {took:?}");
    }
}
