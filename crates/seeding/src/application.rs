//! The subscription's offline-seeding application identity, as `offsite certgen`
//! makes it: a key pair and a self-signed X.509 certificate (the private key stays
//! on the machine that made it), the certificate's thumbprint, and the
//! `OfflineApplicationParams.xml` file that tells the agent and diskprep which
//! application, subscription and service to use.
//!
//! Thumbprints are SHA-256 of the DER certificate in uppercase hex (Windows shows
//! SHA-1 thumbprints; SHA-1 is not used for anything new here).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use offsite_api::files::ServiceEndpoint;
use offsite_api::XmlCredentialFile;

#[derive(Debug, thiserror::Error)]
pub enum ApplicationError {
    #[error("cannot generate the application certificate: {0}")]
    Generate(String),
    #[error("the file is not an X.509 certificate in DER or PEM form: {0}")]
    NotACertificate(String),
}

/// A freshly generated application identity.
pub struct ApplicationCertificate {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    /// PKCS#8 PEM; write it with mode 0600 and never send it anywhere.
    pub key_pem: String,
    pub thumbprint: String,
}

/// SHA-256 of a DER certificate, uppercase hex.
pub fn thumbprint(cert_der: &[u8]) -> String {
    hex::encode_upper(Sha256::digest(cert_der))
}

/// Generates the key pair (ECDSA P-256) and a certificate valid for two years,
/// naming the subscription it belongs to.
pub fn generate(subscription_id: &str) -> Result<ApplicationCertificate, ApplicationError> {
    let failed = |e: rcgen::Error| ApplicationError::Generate(e.to_string());
    let key_pair = rcgen::KeyPair::generate().map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("offsite offline seeding {subscription_id}"));
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "offsite");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(730);
    let cert = params.self_signed(&key_pair).map_err(failed)?;
    let cert_der = cert.der().to_vec();
    Ok(ApplicationCertificate {
        thumbprint: thumbprint(&cert_der),
        cert_pem: cert.pem(),
        key_pem: key_pair.serialize_pem(),
        cert_der,
    })
}

/// Reads a `.cer` file as people have them: DER, or PEM with a CERTIFICATE block.
/// Checks the outer structure (one DER SEQUENCE spanning the whole input); the
/// service parses the certificate fully when it is uploaded.
pub fn read_certificate(bytes: &[u8]) -> Result<Vec<u8>, ApplicationError> {
    const MAX: usize = 64 * 1024;
    if bytes.len() > MAX {
        return Err(ApplicationError::NotACertificate(format!("larger than {MAX} bytes")));
    }
    // A DER certificate always opens with a SEQUENCE tag (0x30), which no PEM file
    // (text, maybe after a BOM or blank lines) does; DER bytes may contain '-' anywhere.
    let der = if bytes.first() != Some(&0x30) {
        let text = std::str::from_utf8(bytes).map_err(|_| ApplicationError::NotACertificate("not text".into()))?;
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
            .collect();
        if body.is_empty() {
            return Err(ApplicationError::NotACertificate("no CERTIFICATE block".into()));
        }
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|_| ApplicationError::NotACertificate("the PEM block is not base64".into()))?
    } else {
        bytes.to_vec()
    };
    check_der_sequence(&der)?;
    Ok(der)
}

fn check_der_sequence(der: &[u8]) -> Result<(), ApplicationError> {
    let bad = |why: &str| ApplicationError::NotACertificate(why.to_string());
    if der.first() != Some(&0x30) {
        return Err(bad("it does not start with a DER SEQUENCE"));
    }
    let (length, header) = match der.get(1) {
        Some(&n) if n < 0x80 => (n as usize, 2),
        Some(&n) if (0x81..=0x84).contains(&n) => {
            let count = (n & 0x7f) as usize;
            let bytes = der.get(2..2 + count).ok_or_else(|| bad("truncated length"))?;
            (bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize), 2 + count)
        }
        _ => return Err(bad("unsupported DER length")),
    };
    if header + length != der.len() {
        return Err(bad("its length does not match the file"));
    }
    Ok(())
}

/// The agent's user id, in the role of the Windows user SID in the seed's
/// `AzureADAppCertThumbprint_<user id>` registry entry.
pub fn user_id() -> String {
    format!("uid{}", current_uid())
}

fn current_uid() -> u32 {
    // /proc/self/status names the real uid without unsafe code or another crate.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// The agent configuration key that records the application certificate's
/// thumbprint for a user (the seed's `AzureADAppCertThumbprint_<user id>`).
pub fn thumbprint_entry(user_id: &str) -> String {
    format!("application_cert_thumbprint_{user_id}")
}

/// `OfflineApplicationParams.xml`: what certgen writes for the agent and diskprep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineApplicationParams {
    pub service: ServiceEndpoint,
    pub subscription_id: String,
    pub application_id: String,
    pub cert_thumbprint: String,
    /// Set in the agent-side copy, `OfflineApplicationParams_<storage account>.xml`.
    pub storage_account: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "OfflineApplicationParams")]
struct ParamsXml {
    #[serde(rename = "@SchemaVersion")]
    schema_version: u32,
    #[serde(rename = "ServiceUrl")]
    service_url: String,
    #[serde(rename = "CertificateFingerprint")]
    fingerprint: String,
    #[serde(rename = "SubscriptionId")]
    subscription_id: String,
    #[serde(rename = "ApplicationId")]
    application_id: String,
    #[serde(rename = "CertThumbprint")]
    cert_thumbprint: String,
    #[serde(rename = "StorageAccount", default, skip_serializing_if = "Option::is_none")]
    storage_account: Option<String>,
}

impl XmlCredentialFile for OfflineApplicationParams {
    const WHAT: &'static str = "OfflineApplicationParams";

    fn service(&self) -> &ServiceEndpoint {
        &self.service
    }

    fn to_xml(&self) -> String {
        let doc = ParamsXml {
            schema_version: 1,
            service_url: self.service.url.clone(),
            fingerprint: self.service.fingerprint.clone(),
            subscription_id: self.subscription_id.clone(),
            application_id: self.application_id.clone(),
            cert_thumbprint: self.cert_thumbprint.clone(),
            storage_account: self.storage_account.clone(),
        };
        offsite_api::files::xml_document(&doc)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let doc: ParamsXml = quick_xml::de::from_str(text).map_err(|e| e.to_string())?;
        offsite_api::files::check_schema(doc.schema_version)?;
        let hex_ok = doc.cert_thumbprint.len() == 64 && doc.cert_thumbprint.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex_ok {
            return Err(format!("certificate thumbprint '{}' is not 64 hexadecimal digits", doc.cert_thumbprint));
        }
        offsite_api::tls::parse_fingerprint(&doc.fingerprint)?;
        if doc.subscription_id.is_empty() || doc.application_id.is_empty() {
            return Err("the subscription or application id is empty".into());
        }
        let service = ServiceEndpoint { url: doc.service_url, fingerprint: doc.fingerprint };
        service.check()?;
        Ok(OfflineApplicationParams {
            service,
            subscription_id: doc.subscription_id,
            application_id: doc.application_id,
            cert_thumbprint: doc.cert_thumbprint.to_ascii_uppercase(),
            storage_account: doc.storage_account,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_reads_back_in_both_forms() {
        let app = generate("sub_1").unwrap();
        assert_eq!(read_certificate(&app.cert_der).unwrap(), app.cert_der);
        assert_eq!(read_certificate(app.cert_pem.as_bytes()).unwrap(), app.cert_der);
        assert_eq!(app.thumbprint, thumbprint(&app.cert_der));
        assert_eq!(app.thumbprint.len(), 64);
        assert!(app.key_pem.contains("PRIVATE KEY"));
        assert!(!app.cert_pem.contains("PRIVATE KEY"), "the certificate must not carry the key");
    }

    #[test]
    fn many_generated_certificates_read_back_as_der() {
        // DER bytes are random enough to hold '-' or text-like runs; none may be taken for PEM.
        for i in 0..200 {
            let app = generate(&format!("sub_{i}")).unwrap();
            assert_eq!(read_certificate(&app.cert_der).unwrap(), app.cert_der);
        }
    }

    #[test]
    fn pem_after_blank_lines_reads_back() {
        let app = generate("sub_1").unwrap();
        let text = format!("\n\n{}", app.cert_pem);
        assert_eq!(read_certificate(text.as_bytes()).unwrap(), app.cert_der);
    }

    #[test]
    fn other_files_are_not_certificates() {
        for bad in
            [&b""[..], b"hello", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", &[0x30, 0x05, 1]]
        {
            assert!(read_certificate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn params_round_trip_and_check_their_fields() {
        let params = OfflineApplicationParams {
            service: ServiceEndpoint { url: "https://backup.example:8443".into(), fingerprint: "ab".repeat(32) },
            subscription_id: "sub_1".into(),
            application_id: "app_1".into(),
            cert_thumbprint: "AB".repeat(32),
            storage_account: Some("contosostore".into()),
        };
        let xml = params.to_xml();
        assert!(xml.contains("<OfflineApplicationParams"), "{xml}");
        assert_eq!(OfflineApplicationParams::parse(&xml).unwrap(), params);
        let broken = xml.replace(&"AB".repeat(32), "XYZ");
        assert!(OfflineApplicationParams::parse(&broken).unwrap_err().contains("thumbprint"));
    }

    #[test]
    fn the_user_id_names_the_entry() {
        let id = user_id();
        assert!(id.starts_with("uid"));
        assert_eq!(thumbprint_entry(&id), format!("application_cert_thumbprint_{id}"));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = read_certificate(&bytes);
            let _ = OfflineApplicationParams::parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
