//! Where a request comes from, as the service's per-source bounds count it (the
//! portal's sign-in limit, the Argon2 turns): an IPv4 address, or the /64 network
//! of an IPv6 one (a single host is commonly given a whole /64 to choose from).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::Extensions;

use crate::proxy_protocol::ClientAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                Source(IpAddr::V6(network.into()))
            }
            v4 => Source(v4),
        }
    }

    /// The address (or network) as text, for keys that name the source.
    pub fn key(&self) -> String {
        self.0.to_string()
    }
}

/// The client's address: the one its balancer's PROXY header named, when the
/// service reads them, else the TCP peer's.
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(ClientAddr(Some(client))) = extensions.get::<ClientAddr>() {
        return Some(client.ip());
    }
    extensions.get::<ConnectInfo<SocketAddr>>().map(|peer| peer.0.ip())
}

/// [`client_ip`] as an extractor.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = axum::http::StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        client_ip(&parts.extensions).map(ClientIp).ok_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv6_network_of_64_bits_is_one_source() {
        assert_eq!(Source::of(ip("2001:db8:1:2::1")), Source::of(ip("2001:db8:1:2:ffff::7")));
        assert_ne!(Source::of(ip("2001:db8:1:2::1")), Source::of(ip("2001:db8:1:3::1")));
        assert_eq!(Source::of(ip("::ffff:192.0.2.1")), Source::of(ip("192.0.2.1")));
        assert_ne!(Source::of(ip("192.0.2.1")), Source::of(ip("192.0.2.2")));
    }
}
