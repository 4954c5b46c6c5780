//! Certificate pinning. The service may run with a self-signed certificate, so
//! clients do not ask a certificate authority: they accept exactly the certificate
//! whose SHA-256 fingerprint their credentials file carries, and still verify the
//! handshake signature with it (so only the holder of its private key passes).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// SHA-256 of a DER certificate, as lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Accepts `ab12…` or `AB:12:…` (as browsers show them); returns the 32 bytes.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let cleaned: String = text.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    let bytes = hex::decode(&cleaned).map_err(|_| format!("certificate fingerprint '{text}' is not hexadecimal"))?;
    bytes.try_into().map_err(|_| format!("certificate fingerprint '{text}' is not 32 bytes of SHA-256"))
}

#[derive(Debug)]
struct PinnedCertificate {
    expected: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if actual == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the service's certificate has fingerprint {}, not the {} your credentials file names: \
                 you may be talking to another server; download fresh credentials",
                hex::encode(actual),
                hex::encode(self.expected)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A rustls client configuration that trusts only the pinned certificate.
pub fn pinned_client_config(fingerprint: &str) -> Result<rustls::ClientConfig, String> {
    let expected = parse_fingerprint(fingerprint)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCertificate { expected, provider: provider.clone() });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_both_spellings() {
        let hex = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex).unwrap(), parse_fingerprint(&colons).unwrap());
        assert!(parse_fingerprint("abcd").unwrap_err().contains("32 bytes"));
        assert!(parse_fingerprint("zz").unwrap_err().contains("hexadecimal"));
    }
}
