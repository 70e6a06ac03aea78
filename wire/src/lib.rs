//! zerok-wire: the sync protocol on iroh, shared by the relay and the client — the ALPN,
//! endpoint construction (public relays, DNS discovery and mDNS off unless asked), relay addresses
//! (`ENDPOINT_ID@IP:PORT`), frame I/O on QUIC streams with the length checked before
//! anything is allocated and the buffer grown only as bytes arrive, and the connection
//! close codes; and serving attachments over iroh-blobs behind a gate ([`blobs`]).

pub mod blobs;

use std::net::SocketAddr;

use iroh::{
    Endpoint, EndpointAddr, RelayMode, SecretKey,
    endpoint::{Connection, NetReportConfig, PortmapperConfig, QuicTransportConfig, RecvStream, SendStream, presets},
};
use iroh_mdns_address_lookup::MdnsAddressLookup;
use zerok_core::sync::{
    Message,
    frame::{self, FrameError, HEADER_BYTES},
};

/// The protocol's ALPN.
pub const ALPN: &[u8] = b"/zerok-sync/1";

/// Frame I/O failures.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The frame was refused (too large, malformed).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream or connection failed.
    #[error("stream: {0}")]
    Stream(String),
    /// Bad relay address text.
    #[error("invalid relay address {0:?} (expected ENDPOINT_ID@IP:PORT as the relay printed it)")]
    Addr(String),
    /// The endpoint could not be created.
    #[error("endpoint: {0}")]
    Bind(String),
}

/// How a connection ended, as QUIC application close codes (protocol document §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// The session ended normally (BYE, or a client done).
    Bye = 0,
    /// Too many connections waiting for HELLO from this address.
    RateLimited = 1,
    /// The relay holds as many sessions as it serves.
    TooManySessions = 2,
    /// A malformed or oversized frame.
    BadFrame = 3,
    /// HELLO refused, missing or late; or the device was revoked.
    Refused = 4,
    /// The relay is shutting down.
    ShuttingDown = 3001,
}

impl CloseCode {
    /// Closes `conn` with this code and `reason`.
    pub fn close(self, conn: &Connection, reason: &str) {
        conn.close((self as u32).into(), reason.as_bytes());
    }

    /// The code a peer closed `conn` with, once it did.
    pub fn of(conn: &Connection) -> Option<Self> {
        let iroh::endpoint::ConnectionError::ApplicationClosed(close) = conn.close_reason()? else { return None };
        let code = u32::try_from(close.error_code.into_inner()).ok()?;
        [Self::Bye, Self::RateLimited, Self::TooManySessions, Self::BadFrame, Self::Refused, Self::ShuttingDown]
            .into_iter()
            .find(|c| *c as u32 == code)
    }
}

/// How an endpoint reaches the world. All off by default: a self-hosted group's devices
/// dial their relays at the addresses they were given, and nothing else learns of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NetOptions {
    /// Use iroh's public relay servers (hole punching across NATs; they see who talks
    /// to whom, never what).
    pub iroh_relays: bool,
    /// Publish and look up addresses through iroh's DNS discovery (n0's servers learn the
    /// endpoint id and its addresses).
    pub discovery: bool,
    /// Announce the endpoint on the local network and find others there by id (mDNS
    /// service [`MDNS_SERVICE`]): anyone on the LAN sees the endpoint id.
    pub mdns: bool,
    /// A server's endpoint: a peer may open two requests and send [`GREETING_WINDOW`]
    /// bytes in all until the server lets it in (see [`admit`]), and never a
    /// unidirectional stream. Off: QUIC's defaults, as a client needs.
    #[serde(skip)]
    pub server: bool,
}

/// The mDNS service zerok's endpoints announce (`<id>._zerok._udp.local`), apart from
/// other iroh applications on the same network.
pub const MDNS_SERVICE: &str = "zerok";

/// Bytes a peer may send on one stream before it is read: a whole frame and its header.
const STREAM_WINDOW: u32 = frame::MAX_FRAME_BYTES as u32 + (64 << 10);
/// Bytes a peer not yet let in (before HELLO) may have in flight on its connection, all
/// streams together: enough for a HELLO or an invite lookup, not for a flood.
pub const GREETING_WINDOW: u32 = 64 << 10;
/// Requests a peer not yet let in may have open at once.
const GREETING_STREAMS: u32 = 2;

/// Lets a peer that said HELLO open `streams` requests at once, each up to a whole frame.
pub fn admit(conn: &Connection, streams: u32) {
    conn.set_max_concurrent_bi_streams(streams.into());
    conn.set_receive_window(STREAM_WINDOW.saturating_mul(streams.max(1)).into());
}

/// Binds an iroh endpoint on `bind` with `secret` as its identity. With every option off it
/// sends nothing beyond `bind`'s interface: no relay, no discovery, no port mapping.
///
/// # Errors
/// [`WireError::Bind`].
pub async fn bind(
    secret: SecretKey,
    bind: SocketAddr,
    alpns: Vec<Vec<u8>>,
    net: NetOptions,
) -> Result<Endpoint, WireError> {
    let err = |e: &dyn std::fmt::Display| WireError::Bind(e.to_string());
    let mut builder = if net.discovery { Endpoint::builder(presets::N0) } else { Endpoint::builder(presets::Minimal) };
    builder = builder
        .secret_key(secret)
        .relay_mode(if net.iroh_relays { RelayMode::Default } else { RelayMode::Disabled })
        .clear_ip_transports()
        .bind_addr(bind)
        .map_err(|e| err(&e))?
        .portmapper_config(PortmapperConfig::Disabled)
        .alpns(alpns);
    if !net.iroh_relays {
        builder = builder.net_report_config(NetReportConfig::minimal());
    }
    if net.mdns {
        builder = builder.address_lookup(MdnsAddressLookup::builder().service_name(MDNS_SERVICE));
    }
    if net.server {
        builder = builder.transport_config(
            QuicTransportConfig::builder()
                .max_concurrent_bidi_streams(GREETING_STREAMS.into())
                .max_concurrent_uni_streams(0u32.into())
                .stream_receive_window(STREAM_WINDOW.into())
                .receive_window(GREETING_WINDOW.into())
                .build(),
        );
    }
    builder.bind().await.map_err(|e| err(&e))
}

/// Where a relay is: its endpoint id and, unless discovery finds it, its socket address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayAddr {
    /// Endpoint id (Ed25519 public key).
    pub id: [u8; 32],
    /// Socket address, when given.
    pub addr: Option<SocketAddr>,
}

impl RelayAddr {
    /// Parses `ID@IP:PORT` or a bare `ID` (64 hex digits).
    ///
    /// # Errors
    /// [`WireError::Addr`].
    pub fn parse(text: &str) -> Result<Self, WireError> {
        let bad = || WireError::Addr(text.to_string());
        let (id_text, addr) = match text.trim().split_once('@') {
            Some((id, addr)) => (id, Some(addr.parse().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        let mut id = [0u8; 32];
        hex::decode_to_slice(id_text, &mut id).map_err(|_| bad())?;
        iroh::PublicKey::from_bytes(&id).map_err(|_| bad())?;
        Ok(Self { id, addr })
    }

    /// The iroh address to dial.
    pub fn endpoint_addr(&self) -> EndpointAddr {
        let key = iroh::PublicKey::from_bytes(&self.id).expect("checked when parsed");
        let addr = EndpointAddr::new(key);
        match self.addr {
            Some(sock) => addr.with_ip_addr(sock),
            None => addr,
        }
    }
}

impl std::fmt::Display for RelayAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            Some(a) => write!(f, "{}@{a}", hex::encode(self.id)),
            None => f.write_str(&hex::encode(self.id)),
        }
    }
}

/// A frame body's buffer starts this large and grows as bytes arrive.
const FIRST_BUFFER_BYTES: usize = 16 << 10;

/// Reads one frame; the declared length is checked against `max` before anything is
/// allocated, and the body's buffer grows with the bytes that arrived (a peer that
/// declares a megabyte and sends nothing costs the first 16 KiB).
///
/// # Errors
/// [`WireError::Frame`] for an oversized or malformed frame, [`WireError::Stream`] when the
/// stream ends early.
pub async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Message, WireError> {
    let mut header = [0u8; HEADER_BYTES];
    recv.read_exact(&mut header).await.map_err(|e| WireError::Stream(e.to_string()))?;
    let len = frame::body_len(header, max)?;
    let mut body = Vec::with_capacity(len.min(FIRST_BUFFER_BYTES));
    while body.len() < len {
        match recv.read_chunk(len - body.len()).await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => {
                return Err(WireError::Stream(format!("stream ended {} bytes into a {len}-byte frame", body.len())));
            }
            Err(e) => return Err(WireError::Stream(e.to_string())),
        }
    }
    Ok(frame::decode(&body)?)
}

/// Writes one frame and finishes the stream.
///
/// # Errors
/// [`WireError::Stream`].
pub async fn write_frame(send: &mut SendStream, msg: &Message) -> Result<(), WireError> {
    send.write_all(&frame::encode(msg)).await.map_err(|e| WireError::Stream(e.to_string()))?;
    send.finish().map_err(|e| WireError::Stream(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_addresses_round_trip() {
        let id = SecretKey::from_bytes(&[7; 32]).public();
        let text = format!("{}@127.0.0.1:4433", hex::encode(id.as_bytes()));
        let parsed = RelayAddr::parse(&text).unwrap();
        assert_eq!(parsed.to_string(), text);
        assert_eq!(RelayAddr::parse(&hex::encode(id.as_bytes())).unwrap().addr, None);
        for bad in ["", "zz@127.0.0.1:1", "abcd", &format!("{}@nowhere", hex::encode(id.as_bytes()))] {
            assert!(RelayAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
