//! Offline-seeding application certificates: parsed fully when they are uploaded
//! (rustls-webpki), and used to verify the signatures of application requests.
//! Only certificates whose key is ECDSA P-256 or Ed25519 are taken; private keys
//! and anything that is not a certificate are refused with a sentence saying so.

use base64::Engine;
use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm};
use webpki::EndEntityCert;

/// The kinds of key an application may sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    Ed25519,
}

impl KeyKind {
    fn algorithm(self) -> &'static dyn SignatureVerificationAlgorithm {
        match self {
            KeyKind::EcdsaP256 => webpki::ring::ECDSA_P256_SHA256,
            KeyKind::Ed25519 => webpki::ring::ED25519,
        }
    }
}

/// A certificate that passed every check.
#[derive(Debug, Clone)]
pub struct ParsedCertificate {
    pub der: Vec<u8>,
    /// Uppercase hex SHA-256 of the DER.
    pub thumbprint: String,
    pub key: KeyKind,
    /// The end of its validity (Unix seconds), when it could be read.
    pub not_after: Option<i64>,
}

const MANUAL_PATH: &str = "export the certificate without its private key with `offsite certgen export-cert`";

/// Reads an uploaded certificate: PEM text, or base64 of the DER.
pub fn parse_upload(text: &str) -> Result<ParsedCertificate, String> {
    if text.contains("PRIVATE KEY") {
        return Err(format!(
            "this is (or contains) a private key: never upload it; the service needs the certificate only \
             ({MANUAL_PATH})"
        ));
    }
    let der = if text.contains("-----BEGIN") {
        offsite_seeding::application::read_certificate(text.as_bytes()).map_err(|e| e.to_string())?
    } else {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.is_empty() {
            return Err("no certificate was given: send its PEM text or its DER in base64".into());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| "the certificate is neither PEM (-----BEGIN CERTIFICATE-----) nor base64 DER".to_string())?;
        offsite_seeding::application::read_certificate(&bytes).map_err(|e| e.to_string())?
    };
    parse_der(&der)
}

/// Checks a DER certificate and finds its key kind and validity.
pub fn parse_der(der: &[u8]) -> Result<ParsedCertificate, String> {
    // PKCS#8 and SEC1 private keys are SEQUENCEs too; they open with an INTEGER
    // (their version) where a certificate has its tbsCertificate SEQUENCE.
    if let Some((_, content, _)) = tlv(der) {
        if content.first() == Some(&0x02) {
            return Err(format!("this is a private key, not a certificate: never upload it ({MANUAL_PATH})"));
        }
    }
    let cert_der = CertificateDer::from(der);
    let cert = EndEntityCert::try_from(&cert_der)
        .map_err(|e| format!("the file is not an X.509 certificate the service can read ({e:?})"))?;
    let spki = cert.subject_public_key_info();
    let algorithm_id = tlv(spki.as_ref())
        .and_then(|(_, content, _)| tlv(content))
        .filter(|(tag, _, _)| *tag == 0x30)
        .map(|(_, content, _)| content)
        .ok_or_else(|| "the certificate's public key cannot be read".to_string())?;
    let key = [KeyKind::EcdsaP256, KeyKind::Ed25519]
        .into_iter()
        .find(|kind| kind.algorithm().public_key_alg_id().as_ref() == algorithm_id)
        .ok_or_else(|| {
            "the certificate's key is neither ECDSA P-256 nor Ed25519 (RSA and other curves are not taken): \
             create the application certificate with `offsite certgen`"
                .to_string()
        })?;
    Ok(ParsedCertificate {
        der: der.to_vec(),
        thumbprint: offsite_seeding::application::thumbprint(der),
        key,
        not_after: not_after(der),
    })
}

/// Whether `signature` over `message` was made by the certificate's key.
pub fn verify(der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(parsed) = parse_der(der) else { return false };
    let cert_der = CertificateDer::from(der);
    let Ok(cert) = EndEntityCert::try_from(&cert_der) else { return false };
    cert.verify_signature(parsed.key.algorithm(), message, signature).is_ok()
}

/// The certificate's public key: its kind, and the subjectPublicKey's bytes (the
/// SEC1 uncompressed point for ECDSA P-256, the 32 bytes for Ed25519), as custody
/// logs list it for verifiers without an X.509 parser.
pub fn public_key(der: &[u8]) -> Option<(KeyKind, Vec<u8>)> {
    let parsed = parse_der(der).ok()?;
    let cert_der = CertificateDer::from(der);
    let cert = EndEntityCert::try_from(&cert_der).ok()?;
    let spki = cert.subject_public_key_info();
    // SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE, subjectPublicKey BIT STRING }
    let (_, content, _) = tlv(spki.as_ref())?;
    let (_, _, rest) = tlv(content)?;
    let (tag, bits, _) = tlv(rest)?;
    let (&unused, key) = bits.split_first()?;
    (tag == 0x03 && unused == 0).then(|| (parsed.key, key.to_vec()))
}

/// One DER element: (tag, content, what follows). Lengths up to 4 bytes.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (length, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = input.get(2..2 + count)?;
        (bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize), 2 + count)
    };
    let end = header.checked_add(length)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

/// notAfter of tbsCertificate.validity, as Unix seconds.
fn not_after(der: &[u8]) -> Option<i64> {
    validity(der).and_then(|(_, after)| after)
}

/// (notBefore, notAfter) of tbsCertificate.validity, as Unix seconds, each when
/// it could be read.
pub fn validity(der: &[u8]) -> Option<(Option<i64>, Option<i64>)> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2; // version
    }
    rest = tlv(rest)?.2; // serialNumber
    rest = tlv(rest)?.2; // signature
    rest = tlv(rest)?.2; // issuer
    let (_, validity, _) = tlv(rest)?;
    let (before_tag, before, after) = tlv(validity)?;
    let (after_tag, after, _) = tlv(after)?;
    Some((asn1_time(before_tag, before), asn1_time(after_tag, after)))
}

/// A UTCTime (0x17) or GeneralizedTime (0x18), as Unix seconds.
fn asn1_time(tag: u8, text: &[u8]) -> Option<i64> {
    // Only ASCII digits are sliced below (other bytes could split a character).
    let digits = std::str::from_utf8(text).ok()?.strip_suffix('Z').filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
    let (year, rest) = match tag {
        0x17 if digits.len() == 12 => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        0x18 if digits.len() == 14 => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<u8> { rest.get(i..i + 2)?.parse().ok() };
    let month = time::Month::try_from(field(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, field(2)?).ok()?;
    let at = date.with_hms(field(4)?, field(6)?, field(8)?).ok()?.assume_utc();
    Some(at.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certgen_certificates_are_taken_with_their_validity() {
        let generated = offsite_seeding::application::generate("sub_1").unwrap();
        let parsed = parse_upload(&generated.cert_pem).unwrap();
        assert_eq!(parsed.key, KeyKind::EcdsaP256);
        assert_eq!(parsed.thumbprint, generated.thumbprint);
        let in_two_years = time::OffsetDateTime::now_utc().unix_timestamp() + 730 * 86_400;
        assert!(parsed.not_after.is_some_and(|t| (t - in_two_years).abs() < 86_400), "{:?}", parsed.not_after);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&generated.cert_der);
        assert_eq!(parse_upload(&b64).unwrap().thumbprint, generated.thumbprint);
    }

    #[test]
    fn the_public_key_is_the_one_the_signer_holds() {
        let generated = offsite_seeding::application::generate("sub_1").unwrap();
        let (kind, key) = public_key(&generated.cert_der).unwrap();
        assert_eq!(kind, KeyKind::EcdsaP256);
        let identity = offsite_api::application_auth::ApplicationIdentity {
            application_id: "app".into(),
            thumbprint: generated.thumbprint.clone(),
            key_pem: generated.key_pem.clone(),
        };
        let signer = offsite_api::application_auth::Signer::new(&identity).unwrap();
        assert_eq!(key, signer.public_key());
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&ed).unwrap();
        assert_eq!(public_key(cert.der()).unwrap(), (KeyKind::Ed25519, ed.public_key_raw().to_vec()));
    }

    #[test]
    fn ed25519_certificates_are_taken_and_rsa_is_not() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&key).unwrap();
        assert_eq!(parse_der(cert.der()).unwrap().key, KeyKind::Ed25519);
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&p384).unwrap();
        assert!(parse_der(cert.der()).unwrap_err().contains("neither ECDSA P-256 nor Ed25519"));
    }

    /// The DER of a certgen certificate with its notAfter time's content replaced.
    fn with_not_after(content: &[u8]) -> Vec<u8> {
        let mut der = offsite_seeding::application::generate("sub_1").unwrap().cert_der;
        // Validity is SEQUENCE { notBefore, notAfter }: two UTCTimes of 13 bytes.
        let at = der.windows(2).rposition(|w| w == [0x17, 0x0d]).expect("a UTCTime");
        der[at + 2..at + 15].copy_from_slice(content);
        der
    }

    #[test]
    fn a_validity_time_that_is_not_ascii_is_ignored_not_a_panic() {
        // 12 bytes before the Z, as a UTCTime has, but with a 3-byte character at byte 1.
        let der = with_not_after("1\u{20ac}23456789Z".as_bytes());
        let parsed = parse_der(&der).unwrap();
        assert_eq!(parsed.not_after, None);
        let der = with_not_after(b"3012312359 9Z");
        assert_eq!(parse_der(&der).unwrap().not_after, None);
    }

    fn a_certificate() -> &'static [u8] {
        static CERT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        CERT.get_or_init(|| offsite_seeding::application::generate("sub_1").unwrap().cert_der)
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        /// A real certificate with bytes changed or cut, as DER (base64) and PEM:
        /// taken, or refused with a message; never a panic.
        #[test]
        fn mutated_certificates_are_taken_or_refused_by_name(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in proptest::option::of(any::<prop::sample::Index>()),
            pem in any::<bool>(),
        ) {
            let mut der = a_certificate().to_vec();
            for (at, value) in edits {
                let i = at.index(der.len());
                der[i] = value;
            }
            if let Some(cut) = cut {
                der.truncate(cut.index(der.len() + 1));
            }
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
            let text = if pem { format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n") } else { b64 };
            match parse_upload(&text) {
                Ok(parsed) => prop_assert_eq!(parsed.der, der),
                Err(message) => prop_assert!(message.len() > 20, "{}", message),
            }
        }

        /// Random DER-looking bytes and random text.
        #[test]
        fn random_uploads_are_refused_by_name(bytes in proptest::collection::vec(any::<u8>(), 0..1500), text in "\\PC{0,300}") {
            let mut der = bytes.clone();
            if der.len() >= 4 {
                // A SEQUENCE spanning the input, so the parser gets past the outer check.
                let len = der.len() - 4;
                der[..4].copy_from_slice(&[0x30, 0x82, (len >> 8) as u8, len as u8]);
            }
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
            for upload in [b64, text.clone(), format!("-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----")] {
                if let Err(message) = parse_upload(&upload) {
                    prop_assert!(message.len() > 20, "{}", message);
                }
            }
            let _ = verify(&der, b"message", &bytes);
        }
    }

    #[test]
    fn private_keys_and_junk_are_refused_by_name() {
        let generated = offsite_seeding::application::generate("sub_1").unwrap();
        assert!(parse_upload(&generated.key_pem).unwrap_err().contains("private key"));
        let key_der = rcgen::KeyPair::generate().unwrap().serialize_der();
        let b64 = base64::engine::general_purpose::STANDARD.encode(key_der);
        assert!(parse_upload(&b64).unwrap_err().contains("private key"));
        assert!(parse_upload("hello").is_err());
        assert!(parse_upload("").is_err());
        let junk = base64::engine::general_purpose::STANDARD.encode([0x30, 0x03, 0x30, 0x01, 0x00]);
        assert!(parse_upload(&junk).unwrap_err().contains("not an X.509 certificate"));
    }
}
