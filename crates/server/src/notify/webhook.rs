//! Webhooks: the event's JSON POSTed to the subscription's URL, signed so the
//! receiver can tell it came from this service and was not replayed later:
//! `X-Offsite-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//! under the channel's secret (the scheme Stripe and others use).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ring::hmac;

pub struct Sender {
    http: reqwest::Client,
    private_allowed: bool,
}

/// Whether an address is one a subscription must not make the service call: the
/// service's own host, its private network, link-local (cloud metadata).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Resolves names for webhook requests, leaving out private addresses, so a
/// name that resolves (or is re-pointed) to the service's own network is not
/// called. By hand: reqwest takes a resolver, but none that filters ships with it.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| !is_private(a.ip())).collect();
            if public.is_empty() {
                let refused = format!("{host} resolves to no public address; webhooks go to public addresses only");
                return Err(Box::<dyn std::error::Error + Send + Sync>::from(refused));
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Checks a webhook URL: http or https, a host, and (unless private receivers
/// are allowed) not an address of a private network.
pub fn check_url(url: &str, private_allowed: bool) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("'{url}' is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!("a webhook URL is https:// (or http://), not {}", parsed.scheme()));
    }
    let host = parsed.host().ok_or_else(|| format!("'{url}' names no host"))?;
    let literal = match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    };
    if !private_allowed && literal.is_some_and(is_private) {
        return Err(format!(
            "{url} is an address of a private network: webhooks go to public addresses (an operator can allow \
             private ones with offsite server run --webhooks-to-private-addresses)"
        ));
    }
    Ok(parsed)
}

impl Sender {
    /// `private_allowed`: also call receivers on private networks (an operator's
    /// choice for an internal chat bridge; tests on loopback).
    pub fn new(private_allowed: bool) -> Result<Sender, String> {
        // Public CAs (webpki-roots) for https receivers: the service's own pinning
        // is for its clients, not for the receivers subscriptions name.
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let tls =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let mut http = reqwest::Client::builder();
        if !private_allowed {
            http = http.dns_resolver(std::sync::Arc::new(PublicOnly));
        }
        let http = http
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Sender { http, private_allowed })
    }

    /// Whether receivers on private networks are allowed.
    pub fn private_allowed(&self) -> bool {
        self.private_allowed
    }

    pub async fn post(&self, url: &str, secret: &str, body: &str, now: time::OffsetDateTime) -> Result<(), String> {
        check_url(url, self.private_allowed)?;
        let t = now.unix_timestamp();
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Offsite-Signature", signature(secret, t, body))
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{url} answered HTTP {status}"))
        }
    }
}

/// `t=<t>,v1=<hex>`: what [`Sender::post`] sends, and what a receiver computes
/// again with the secret to check it.
pub fn signature(secret_hex: &str, t: i64, body: &str) -> String {
    let key = hex::decode(secret_hex).unwrap_or_default();
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let tag = hmac::sign(&key, format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_receivers_are_refused_unless_allowed() {
        for url in ["http://127.0.0.1:9000/x", "https://10.1.2.3/", "http://169.254.169.254/latest", "http://[::1]/"] {
            assert!(check_url(url, false).is_err(), "{url}");
            assert!(check_url(url, true).is_ok(), "{url}");
        }
        assert!(check_url("https://hooks.example.com/offsite", false).is_ok());
        assert!(check_url("ftp://hooks.example.com/", true).is_err());
    }

    #[test]
    fn the_signature_covers_time_and_body() {
        let secret = "00112233445566778899aabbccddeeff";
        let one = signature(secret, 1000, "{\"a\":1}");
        assert!(one.starts_with("t=1000,v1=") && one.len() == "t=1000,v1=".len() + 64, "{one}");
        assert_ne!(one, signature(secret, 1001, "{\"a\":1}"));
        assert_ne!(one, signature(secret, 1000, "{\"a\":2}"));
        assert_ne!(one, signature("ff112233445566778899aabbccddeeff", 1000, "{\"a\":1}"));
        assert_eq!(one, signature(secret, 1000, "{\"a\":1}"));
    }
}
