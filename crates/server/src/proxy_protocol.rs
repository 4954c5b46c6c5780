//! The PROXY protocol (v1 text or v2 binary, as HAProxy's `send-proxy` and
//! `send-proxy-v2` send it), read before TLS when `--proxy-protocol` is on: behind
//! a TCP balancer every connection comes from the balancer, and the header says
//! which client it carries. The per-source bounds (the portal's sign-in limit,
//! the Argon2 turns) then count clients, not the balancer.
//!
//! Parsing is the `ppp` crate's; this module only reads exactly the header's
//! bytes off the stream (the TLS handshake follows them) and hands the address on
//! as a [`ClientAddr`] request extension. With the option off nothing is read.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tower_http::add_extension::AddExtension;

/// The client a connection carries, as its PROXY header named it (`None`: no
/// header is read, or it named none, e.g. a balancer's own health check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<SocketAddr>);

/// The v2 header's fixed signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (the protocol's own bound).
const V1_MAX: usize = 107;
/// How long a connection may take to send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// An acceptor that reads a PROXY header first when `enabled`, then hands the
/// stream to `inner` (TLS).
#[derive(Debug, Clone, Copy)]
pub struct ProxyHeaderAcceptor<A> {
    inner: A,
    enabled: bool,
}

impl<A> ProxyHeaderAcceptor<A> {
    pub fn new(inner: A, enabled: bool) -> Self {
        ProxyHeaderAcceptor { inner, enabled }
    }
}

impl<A, S> Accept<TcpStream, S> for ProxyHeaderAcceptor<A>
where
    A: Accept<TcpStream, S> + Clone + Send + 'static,
    A::Future: Send,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = AddExtension<A::Service, ClientAddr>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, mut stream: TcpStream, service: S) -> Self::Future {
        let (inner, enabled) = (self.inner.clone(), self.enabled);
        Box::pin(async move {
            let client = match enabled {
                true => tokio::time::timeout(HEADER_TIMEOUT, read_header(&mut stream))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no PROXY header within 10 s"))??,
                false => None,
            };
            let (stream, service) = inner.accept(stream, service).await?;
            Ok((stream, AddExtension::new(service, ClientAddr(client))))
        })
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not a PROXY protocol header: {what}"))
}

/// Reads one header, exactly its bytes, and returns the client it names.
async fn read_header(stream: &mut TcpStream) -> io::Result<Option<SocketAddr>> {
    let mut head = [0u8; 16];
    stream.read_exact(&mut head[..5]).await?;
    if &head[..5] == b"PROXY" {
        let mut line = head[..5].to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(invalid("a v1 line longer than 107 bytes".into()));
            }
            line.push(stream.read_u8().await?);
        }
        let header = ppp::v1::Header::try_from(line.as_slice()).map_err(|e| invalid(e.to_string()))?;
        return Ok(match header.addresses {
            ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            ppp::v1::Addresses::Unknown => None,
        });
    }
    stream.read_exact(&mut head[5..]).await?;
    if head[..12] != V2_SIGNATURE {
        return Err(invalid("neither v1 ('PROXY …') nor v2 (its signature)".into()));
    }
    let length = u16::from_be_bytes([head[14], head[15]]) as usize;
    let mut header = head.to_vec();
    header.resize(16 + length, 0);
    stream.read_exact(&mut header[16..]).await?;
    let header = ppp::v2::Header::try_from(header.as_slice()).map_err(|e| invalid(e.to_string()))?;
    Ok(match (header.command, header.addresses) {
        (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
            Some(SocketAddr::from((a.source_address, a.source_port)))
        }
        (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
            Some(SocketAddr::from((a.source_address, a.source_port)))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn read_from(bytes: Vec<u8>) -> (io::Result<Option<SocketAddr>>, Vec<u8>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(&bytes).await.unwrap();
            client.write_all(b"TLS").await.unwrap();
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let found = read_header(&mut stream).await;
        writer.await.unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        (found, rest)
    }

    #[tokio::test]
    async fn a_v1_and_a_v2_header_name_the_client_and_leave_the_rest_unread() {
        let (found, rest) = read_from(b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\n".to_vec()).await;
        assert_eq!(found.unwrap(), Some("192.0.2.7:51000".parse().unwrap()));
        assert_eq!(rest, b"TLS");

        let addresses: ppp::v2::Addresses =
            ("[2001:db8::9]:40000".parse::<SocketAddr>().unwrap(), "[2001:db8::1]:443".parse::<SocketAddr>().unwrap())
                .into();
        let v2 = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            addresses,
        )
        .build()
        .unwrap();
        let (found, rest) = read_from(v2).await;
        assert_eq!(found.unwrap(), Some("[2001:db8::9]:40000".parse().unwrap()));
        assert_eq!(rest, b"TLS");
    }

    #[tokio::test]
    async fn a_connection_without_a_header_is_refused() {
        let (found, _) = read_from(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 a ClientHello".to_vec()).await;
        assert_eq!(found.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
