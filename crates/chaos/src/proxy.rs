//! A TCP proxy in front of each node, so the nemesis can cut a client's
//! connection in the middle of a request. It forwards bytes both ways and
//! reads just enough HTTP/2 framing to see where a request starts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::debug;

/// State shared by the connections of one proxy.
struct Route {
    upstream: Mutex<SocketAddr>,
    /// Set by [`Proxy::cut_mid_request`]: the next request a client sends
    /// is forwarded, and then its connection is dropped before the response
    /// gets back.
    armed: AtomicBool,
    cut: Notify,
}

pub struct Proxy {
    address: SocketAddr,
    route: Arc<Route>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let route = Arc::new(Route {
            upstream: Mutex::new(upstream),
            armed: AtomicBool::new(false),
            cut: Notify::new(),
        });
        let acceptor = tokio::spawn(accept(listener, route.clone()));
        Ok(Proxy {
            address,
            route,
            acceptor,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Points new connections at `upstream`, after the node restarted on
    /// another port.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self
            .route
            .upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = upstream;
    }

    /// Waits up to `within` for a client to send a request, forwards it to
    /// the node, and drops that client's connection before the response
    /// comes back. Returns whether a connection was cut.
    pub async fn cut_mid_request(&self, within: Duration) -> bool {
        let cut = self.route.cut.notified();
        self.route.armed.store(true, Ordering::SeqCst);
        let done = tokio::time::timeout(within, cut).await.is_ok();
        self.route.armed.store(false, Ordering::SeqCst);
        done
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept(listener: TcpListener, route: Arc<Route>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let upstream = *route
            .upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let route = route.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                debug!(%upstream, "proxy could not reach the node");
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let cutting = AtomicBool::new(false);
            // Whichever direction ends first ends the connection.
            tokio::select! {
                () = requests(client_read, server_write, &route, &cutting) => {}
                () = responses(server_read, client_write, &cutting) => {}
            }
        });
    }
}

/// How long the rest of a cut request may keep flowing to the node.
const REQUEST_TAIL: Duration = Duration::from_millis(20);

/// Copies client bytes to the node. Once armed, the first request to
/// start is forwarded, responses stop flowing back, and shortly after the
/// function returns, which drops the connection.
async fn requests(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    route: &Route,
    cutting: &AtomicBool,
) {
    let mut frames = FrameScanner::default();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let starts_request = frames.scan(&buffer[..read]);
        if starts_request && route.armed.swap(false, Ordering::SeqCst) {
            cutting.store(true, Ordering::SeqCst);
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
        if cutting.load(Ordering::SeqCst) {
            let _ = tokio::time::timeout(REQUEST_TAIL, forward(&mut from, &mut to)).await;
            route.cut.notify_waiters();
            return;
        }
    }
}

async fn forward(from: &mut OwnedReadHalf, to: &mut OwnedWriteHalf) {
    let _ = tokio::io::copy(from, to).await;
}

/// Copies the node's bytes to the client until the connection is being cut.
async fn responses(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, cutting: &AtomicBool) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if cutting.load(Ordering::SeqCst) {
            // Hold the response back until the connection drops.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// HTTP/2 client connection preface, which precedes the first frame.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS_FRAME: u8 = 0x1;

/// Follows the frame boundaries of the client's side of an HTTP/2
/// connection, to spot the HEADERS frame that starts each request.
#[derive(Default)]
struct FrameScanner {
    preface_seen: usize,
    header: Vec<u8>,
    payload_left: usize,
}

impl FrameScanner {
    /// Consumes the next bytes; returns whether a HEADERS frame of a stream
    /// began in them.
    fn scan(&mut self, mut bytes: &[u8]) -> bool {
        let mut starts_request = false;
        while !bytes.is_empty() {
            if self.preface_seen < PREFACE_LEN {
                let take = (PREFACE_LEN - self.preface_seen).min(bytes.len());
                self.preface_seen += take;
                bytes = &bytes[take..];
            } else if self.payload_left > 0 {
                let take = self.payload_left.min(bytes.len());
                self.payload_left -= take;
                bytes = &bytes[take..];
            } else {
                let take = (FRAME_HEADER_LEN - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.header.len() == FRAME_HEADER_LEN {
                    let length = usize::from(self.header[0]) << 16
                        | usize::from(self.header[1]) << 8
                        | usize::from(self.header[2]);
                    let stream = u32::from_be_bytes([
                        self.header[5] & 0x7f,
                        self.header[6],
                        self.header[7],
                        self.header[8],
                    ]);
                    starts_request |= self.header[3] == HEADERS_FRAME && stream != 0;
                    self.payload_left = length;
                    self.header.clear();
                }
            }
        }
        starts_request
    }
}

#[cfg(test)]
mod tests {
    use super::FrameScanner;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = payload.len() as u32;
        let mut bytes = length.to_be_bytes()[1..].to_vec();
        bytes.extend([kind, 0]);
        bytes.extend(stream.to_be_bytes());
        bytes.extend(payload);
        bytes
    }

    #[test]
    fn scanner_spots_headers_across_reads() {
        let mut connection = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        connection.extend(frame(0x4, 0, &[0; 6])); // SETTINGS
        let settings_end = connection.len();
        connection.extend(frame(0x1, 1, &[0x82; 30])); // HEADERS
        connection.extend(frame(0x0, 1, &[0x1; 12])); // DATA

        let mut scanner = FrameScanner::default();
        assert!(!scanner.scan(&connection[..settings_end]));
        assert!(!scanner.scan(&connection[settings_end..settings_end + 4]));
        assert!(scanner.scan(&connection[settings_end + 4..settings_end + 12]));
        assert!(!scanner.scan(&connection[settings_end + 12..]));
    }

    #[test]
    fn scanner_ignores_headers_bytes_inside_payloads() {
        let mut scanner = FrameScanner::default();
        let mut connection = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // A DATA frame whose payload looks like a HEADERS frame header.
        connection.extend(frame(0x0, 1, &frame(0x1, 3, &[])));
        assert!(!scanner.scan(&connection));
    }
}
