//! How an offline-seeding application authenticates: every request is signed with
//! the private key of one of the application's registered certificates.
//!
//! ```text
//! Authorization: OffsiteApp <application id>:<thumbprint>:<unix seconds>:<base64 signature>
//! signed bytes:  offsite-app-v1\n<METHOD>\n<path and query as sent>\n<unix seconds>
//! ```
//!
//! The signature is ECDSA P-256 with SHA-256 (ASN.1 DER) or Ed25519, by the key of
//! the certificate whose thumbprint (uppercase hex SHA-256 of its DER) is named.
//! The service accepts it within [`MAX_SKEW_SECONDS`] of its clock. The key and
//! the signatures are secrets: nothing here logs or displays them.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

/// The `Authorization` scheme of signed application requests.
pub const SCHEME: &str = "OffsiteApp";
/// The first line of every signed message: a signature made for this protocol
/// means nothing anywhere else.
pub const CONTEXT: &str = "offsite-app-v2";
/// How far a request's time may be from the service's clock.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// An application identity as certgen leaves it on a machine.
#[derive(Clone, PartialEq, Eq)]
pub struct ApplicationIdentity {
    pub application_id: String,
    /// Uppercase hex SHA-256 of the certificate (DER).
    pub thumbprint: String,
    /// The certificate's private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
}

impl std::fmt::Debug for ApplicationIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationIdentity")
            .field("application_id", &self.application_id)
            .field("thumbprint", &self.thumbprint)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A certificate file's bytes (PEM or DER) as the service takes them in
/// [`crate::types::UploadCertificate`]: PEM text as it is, DER in base64.
pub fn certificate_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => text.to_string(),
        _ => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// The bytes an application signs for one request.
pub fn signed_message(
    method: &str,
    path_and_query: &str,
    unix_seconds: i64,
    nonce: &str,
    body_sha256: &str,
) -> Vec<u8> {
    format!("{CONTEXT}\n{}\n{path_and_query}\n{unix_seconds}\n{nonce}\n{body_sha256}", method.to_ascii_uppercase())
        .into_bytes()
}

/// The hex SHA-256 of a request body, as a signed header names it.
pub fn body_sha256(body: &[u8]) -> String {
    hex_of(ring::digest::digest(&ring::digest::SHA256, body).as_ref())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An application's private key, parsed.
pub(crate) enum Key {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl Key {
    /// Reads a PKCS#8 PEM key: ECDSA P-256 or Ed25519.
    pub(crate) fn parse(pem: &str, rng: &SystemRandom) -> Result<Key, String> {
        let der = pkcs8_der(pem)?;
        match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der, rng) {
            Ok(pair) => Ok(Key::Ecdsa(pair)),
            Err(_) => match Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
                Ok(pair) => Ok(Key::Ed25519(pair)),
                Err(_) => Err("the application key is neither an ECDSA P-256 nor an Ed25519 key".into()),
            },
        }
    }

    /// The signature over `message` (ECDSA as ASN.1 DER).
    pub(crate) fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Key::Ecdsa(pair) => {
                Ok(pair.sign(rng, message).map_err(|_| "signing failed".to_string())?.as_ref().to_vec())
            }
            Key::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// Signs requests for one application identity (the key parsed once).
pub struct Signer {
    application_id: String,
    thumbprint: String,
    key: Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("application_id", &self.application_id)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

/// The DER of the first `PRIVATE KEY` block of a PEM text.
fn pkcs8_der(pem: &str) -> Result<Vec<u8>, String> {
    if pem.contains("-----BEGIN EC PRIVATE KEY-----") || pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err("the application key must be an unencrypted PKCS#8 key (-----BEGIN PRIVATE KEY-----), as \
                    certgen writes it"
            .into());
    }
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
        .skip(1)
        .take_while(|l| *l != "-----END PRIVATE KEY-----")
        .collect();
    if body.is_empty() {
        return Err("the application key has no '-----BEGIN PRIVATE KEY-----' block".into());
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "the application key's PEM block is not base64".to_string())
}

impl Signer {
    pub fn new(identity: &ApplicationIdentity) -> Result<Signer, String> {
        let rng = SystemRandom::new();
        let key = Key::parse(&identity.key_pem, &rng)?;
        let check = |what: &str, value: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(format!("the application {what} '{value}' cannot go into a request header"))
            }
        };
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        check("id", &identity.application_id, plain(&identity.application_id))?;
        check("certificate thumbprint", &identity.thumbprint, plain(&identity.thumbprint))?;
        Ok(Signer {
            application_id: identity.application_id.clone(),
            thumbprint: identity.thumbprint.to_ascii_uppercase(),
            key,
            rng,
        })
    }

    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// Uppercase hex SHA-256 of the certificate.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Whether the key is Ed25519 (else ECDSA P-256).
    pub fn is_ed25519(&self) -> bool {
        matches!(self.key, Key::Ed25519(_))
    }

    /// A signature with the application's key over `message` (ECDSA as ASN.1 DER),
    /// for other signed statements than requests (custody events): their messages
    /// open with their own context line, so one is never taken for another.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.key.sign(&self.rng, message)
    }

    /// The public key (SEC1 uncompressed point for ECDSA, 32 bytes for Ed25519).
    pub fn public_key(&self) -> &[u8] {
        match &self.key {
            Key::Ecdsa(pair) => pair.public_key().as_ref(),
            Key::Ed25519(pair) => pair.public_key().as_ref(),
        }
    }

    /// The `Authorization` header value for a request.
    /// The `Authorization` value of a request: the signature over its method,
    /// path and query, time, a fresh nonce (the service refuses a nonce it has
    /// seen, so a captured request cannot be replayed) and the hash of `body`
    /// (the service refuses a body that does not match it).
    pub fn authorization(
        &self,
        method: &str,
        path_and_query: &str,
        unix_seconds: i64,
        body: &[u8],
    ) -> Result<String, String> {
        let mut nonce = [0u8; 16];
        ring::rand::SecureRandom::fill(&self.rng, &mut nonce).map_err(|_| "no random nonce".to_string())?;
        let nonce = hex_of(&nonce);
        let body_hash = body_sha256(body);
        let message = signed_message(method, path_and_query, unix_seconds, &nonce, &body_hash);
        let signature = self.key.sign(&self.rng, &message).map_err(|e| format!("{e} (the request's signature)"))?;
        let signature = base64::engine::general_purpose::STANDARD.encode(signature);
        Ok(format!(
            "{SCHEME} {}:{}:{unix_seconds}:{nonce}:{body_hash}:{signature}",
            self.application_id, self.thumbprint
        ))
    }
}

/// The parts of an `OffsiteApp` header value (after the scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeader {
    pub application_id: String,
    pub thumbprint: String,
    pub unix_seconds: i64,
    /// 32 hex digits, never accepted twice.
    pub nonce: String,
    /// The hex SHA-256 of the body the request carries.
    pub body_sha256: String,
    pub signature: Vec<u8>,
}

/// Parses `<application id>:<thumbprint>:<unix seconds>:<nonce>:<body sha256>:<base64 signature>`.
pub fn parse_header(credentials: &str) -> Result<SignedHeader, String> {
    let form = "the Authorization header must be 'OffsiteApp <application id>:<thumbprint>:<unix seconds>:<nonce>:\
                <body sha256>:<signature>'";
    let parts: Vec<&str> = credentials.trim().splitn(6, ':').collect();
    let [id, thumbprint, seconds, nonce, body_sha256, signature] = parts[..] else {
        return Err(form.into());
    };
    let unix_seconds: i64 = seconds.parse().map_err(|_| form.to_string())?;
    let signature = base64::engine::general_purpose::STANDARD.decode(signature).map_err(|_| form.to_string())?;
    let hex = |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit());
    if id.is_empty()
        || thumbprint.is_empty()
        || signature.is_empty()
        || signature.len() > 512
        || !hex(nonce, 32)
        || !hex(body_sha256, 64)
    {
        return Err(form.into());
    }
    Ok(SignedHeader {
        application_id: id.to_string(),
        thumbprint: thumbprint.to_ascii_uppercase(),
        unix_seconds,
        nonce: nonce.to_ascii_lowercase(),
        body_sha256: body_sha256.to_ascii_lowercase(),
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(key_pem: String) -> ApplicationIdentity {
        ApplicationIdentity { application_id: "app_1".into(), thumbprint: "ab12".into(), key_pem }
    }

    #[test]
    fn an_rcgen_key_signs_verifiable_headers() {
        let key = rcgen::KeyPair::generate().unwrap();
        let signer = Signer::new(&identity(key.serialize_pem())).unwrap();
        let header = signer.authorization("get", "/api/v1/datacenters?x=1", 1_700_000_000, b"{}").unwrap();
        let rest = header.strip_prefix("OffsiteApp ").unwrap();
        let parsed = parse_header(rest).unwrap();
        assert_eq!((parsed.application_id.as_str(), parsed.thumbprint.as_str()), ("app_1", "AB12"));
        assert_eq!(parsed.body_sha256, body_sha256(b"{}"));
        let again =
            parse_header(signer.authorization("GET", "/x", 1, b"").unwrap().strip_prefix("OffsiteApp ").unwrap());
        assert_ne!(again.unwrap().nonce, parsed.nonce, "a fresh nonce each request");
        let message =
            signed_message("GET", "/api/v1/datacenters?x=1", 1_700_000_000, &parsed.nonce, &parsed.body_sha256);
        let public =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key.public_key_raw());
        public.verify(&message, &parsed.signature).unwrap();
        assert!(public.verify(b"other", &parsed.signature).is_err());
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let key = rcgen::KeyPair::generate().unwrap();
        let id = identity(key.serialize_pem());
        let shown = format!("{id:?} {:?}", Signer::new(&id).unwrap());
        assert!(!shown.contains("PRIVATE KEY") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn bad_keys_and_headers_are_named() {
        assert!(Signer::new(&identity("not a key".into())).unwrap_err().contains("PRIVATE KEY"));
        assert!(parse_header("app:AB:notanumber:AAAA").is_err());
        assert!(parse_header("app:AB:12").is_err());
        let (nonce, hash) = ("0".repeat(32), "a".repeat(64));
        assert!(parse_header(&format!("app:AB:12:{nonce}:{hash}:AAAA")).is_ok());
        assert!(parse_header(&format!("app:AB:12:{nonce}:short:AAAA")).is_err());
        assert!(parse_header(&format!("app:AB:12:xyz:{hash}:AAAA")).is_err());
    }
}
