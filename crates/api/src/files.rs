//! The credential files people download and carry to other machines:
//! - the publish-settings file of a subscription (XML, in the role of Azure's
//!   `.publishsettings`): service URL, certificate fingerprint, subscription id and
//!   its management credential;
//! - a vault credentials file (XML, in the role of `.VaultCredentials`): lets one
//!   machine register to one vault, once, before it expires;
//! - the operator credentials the server writes into its data folder (TOML).
//!
//! Every file carries the SHA-256 fingerprint of the service's TLS certificate so
//! the client pins it: a self-signed service needs no certificate authority.
//! Files are read defensively: size-capped, every field checked, errors name the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Credential files are small; anything bigger is not one of ours.
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a {what} file: {reason}")]
    Invalid { path: PathBuf, what: &'static str, reason: String },
    #[error(
        "{path} gives the service URL {url}, which is plain HTTP: offsite speaks to the service only over \
         HTTPS with its certificate pinned, since over HTTP credentials and signed requests travel in clear \
         to whoever answers. Correct it to the service's https:// URL (the URL `offsite server run` prints), \
         or get the {what} file anew from the service"
    )]
    PlainHttp { path: PathBuf, what: &'static str, url: String },
}

/// Where a client finds the service and how it knows it is the right one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    pub url: String,
    /// SHA-256 of the service certificate (DER), lowercase hex.
    pub fingerprint: String,
}

impl ServiceEndpoint {
    /// Checks the URL's form and the fingerprint. A plain `http://` URL passes here
    /// and is refused by [`Self::require_https`], which names the file it came from.
    pub fn check(&self) -> Result<(), String> {
        if !(self.is_https() || self.url.starts_with("http://")) {
            return Err(format!("service URL '{}' must start with https://", self.url));
        }
        crate::tls::parse_fingerprint(&self.fingerprint).map(|_| ())
    }

    fn is_https(&self) -> bool {
        self.url.starts_with("https://")
    }

    /// Refuses a URL that is not `https://`: over plain HTTP the certificate is not
    /// pinned and the credential goes in clear. `path` is the file that gave it.
    pub fn require_https(&self, path: &Path, what: &'static str) -> Result<(), FileError> {
        if self.is_https() {
            return Ok(());
        }
        Err(FileError::PlainHttp { path: path.into(), what, url: self.url.clone() })
    }
}

/// Reads a credential file of at most [`MAX_FILE_BYTES`] as text; a larger or
/// binary file is not one of ours, and is named as such (not as unreadable).
fn read_capped(path: &Path, what: &'static str) -> Result<String, FileError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| FileError::Read { path: path.into(), source })?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Read { path: path.into(), source })?;
    let invalid = |reason: String| FileError::Invalid { path: path.into(), what, reason };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(invalid(format!("it is larger than {MAX_FILE_BYTES} bytes")));
    }
    String::from_utf8(bytes)
        .map_err(|e| invalid(format!("it is not text (invalid UTF-8 at byte {})", e.utf8_error().valid_up_to())))
}

/// Writes a file holding a secret: created with mode 0600 before any byte is written.
pub fn write_secret_file(path: &Path, text: &str) -> Result<(), FileError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| FileError::Write { path: path.into(), source };
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(err)?;
    // An existing file keeps its mode through open(); make sure it is private.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

/// A credential file in XML: how it is parsed and written; reading and writing
/// the file (size cap, mode 0600, errors naming the file) is the same for all.
pub trait XmlCredentialFile: Sized {
    /// What the file is, for messages ("publish-settings").
    const WHAT: &'static str;
    fn to_xml(&self) -> String;
    fn parse(text: &str) -> Result<Self, String>;
    /// The service the file points at.
    fn service(&self) -> &ServiceEndpoint;

    /// Reads and parses the file; a service URL that is not `https://` is refused.
    fn read(path: &Path) -> Result<Self, FileError> {
        let file = Self::parse(&read_capped(path, Self::WHAT)?).map_err(|reason| FileError::Invalid {
            path: path.into(),
            what: Self::WHAT,
            reason,
        })?;
        file.service().require_https(path, Self::WHAT)?;
        Ok(file)
    }

    fn write(&self, path: &Path) -> Result<(), FileError> {
        write_secret_file(path, &self.to_xml())
    }
}

/// An XML credential document with its declaration.
pub fn xml_document<T: Serialize>(doc: &T) -> String {
    let body = quick_xml::se::to_string(doc).unwrap_or_default();
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{body}\n")
}

/// Credential files carry `SchemaVersion="1"`; anything else is refused by name.
pub fn check_schema(version: u32) -> Result<(), String> {
    if version != 1 {
        return Err(format!("schema version {version} is not supported (this offsite reads 1)"));
    }
    Ok(())
}

// ---------------------------------------------------------------- publish settings

/// A subscription's publish settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSettings {
    pub service: ServiceEndpoint,
    pub subscription_id: String,
    pub subscription_name: String,
    pub management_credential: String,
    /// When the management credential stops working; `None` for one that works
    /// until revoked (and in files written before expiries were recorded).
    pub expires: Option<OffsetDateTime>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "PublishData")]
struct PublishDataXml {
    #[serde(rename = "PublishProfile")]
    profile: PublishProfileXml,
}

#[derive(Serialize, Deserialize)]
struct PublishProfileXml {
    #[serde(rename = "@SchemaVersion")]
    schema_version: u32,
    #[serde(rename = "@PublishMethod")]
    publish_method: String,
    #[serde(rename = "Subscription")]
    subscription: SubscriptionXml,
}

#[derive(Serialize, Deserialize)]
struct SubscriptionXml {
    #[serde(rename = "@ServiceUrl")]
    service_url: String,
    #[serde(rename = "@CertificateFingerprint")]
    fingerprint: String,
    #[serde(rename = "@Id")]
    id: String,
    #[serde(rename = "@Name")]
    name: String,
    #[serde(rename = "@ManagementCredential")]
    credential: String,
    /// RFC 3339; absent when the credential has no expiry.
    #[serde(rename = "@Expires", default, skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
}

impl XmlCredentialFile for PublishSettings {
    const WHAT: &'static str = "publish-settings";

    fn service(&self) -> &ServiceEndpoint {
        &self.service
    }

    fn to_xml(&self) -> String {
        let doc = PublishDataXml {
            profile: PublishProfileXml {
                schema_version: 1,
                publish_method: "OffsiteServiceApi".into(),
                subscription: SubscriptionXml {
                    service_url: self.service.url.clone(),
                    fingerprint: self.service.fingerprint.clone(),
                    id: self.subscription_id.clone(),
                    name: self.subscription_name.clone(),
                    credential: self.management_credential.clone(),
                    expires: self.expires.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                },
            },
        };
        xml_document(&doc)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let doc: PublishDataXml = quick_xml::de::from_str(text).map_err(|e| e.to_string())?;
        check_schema(doc.profile.schema_version)?;
        let s = doc.profile.subscription;
        let expires = match &s.expires {
            Some(text) => Some(
                OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| format!("expiry '{text}' is not a time: {e}"))?,
            ),
            None => None,
        };
        let settings = PublishSettings {
            service: ServiceEndpoint { url: s.service_url, fingerprint: s.fingerprint },
            subscription_id: s.id,
            subscription_name: s.name,
            management_credential: s.credential,
            expires,
        };
        settings.service.check()?;
        if settings.subscription_id.is_empty() || settings.management_credential.is_empty() {
            return Err("the subscription id or management credential is empty".into());
        }
        Ok(settings)
    }
}

// ---------------------------------------------------------------- vault credentials

/// Lets one machine register to one vault, once, before `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultCredentials {
    pub service: ServiceEndpoint,
    pub subscription_id: String,
    pub vault_id: String,
    pub vault_name: String,
    pub expires: OffsetDateTime,
    pub registration_secret: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "VaultCredentials")]
struct VaultCredentialsXml {
    #[serde(rename = "@SchemaVersion")]
    schema_version: u32,
    #[serde(rename = "ServiceUrl")]
    service_url: String,
    #[serde(rename = "CertificateFingerprint")]
    fingerprint: String,
    #[serde(rename = "SubscriptionId")]
    subscription_id: String,
    #[serde(rename = "VaultId")]
    vault_id: String,
    #[serde(rename = "VaultName")]
    vault_name: String,
    #[serde(rename = "Expires")]
    expires: String,
    #[serde(rename = "RegistrationSecret")]
    secret: String,
}

impl VaultCredentials {
    /// The file for credentials the service just issued (CLI and portal downloads).
    pub fn issued(service: ServiceEndpoint, issued: crate::types::VaultCredentialsIssued) -> Self {
        VaultCredentials {
            service,
            subscription_id: issued.subscription_id,
            vault_id: issued.vault_id,
            vault_name: issued.vault_name,
            expires: issued.expires,
            registration_secret: issued.registration_secret,
        }
    }
}

impl XmlCredentialFile for VaultCredentials {
    const WHAT: &'static str = "vault credentials";

    fn service(&self) -> &ServiceEndpoint {
        &self.service
    }

    fn to_xml(&self) -> String {
        let doc = VaultCredentialsXml {
            schema_version: 1,
            service_url: self.service.url.clone(),
            fingerprint: self.service.fingerprint.clone(),
            subscription_id: self.subscription_id.clone(),
            vault_id: self.vault_id.clone(),
            vault_name: self.vault_name.clone(),
            expires: self.expires.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            secret: self.registration_secret.clone(),
        };
        xml_document(&doc)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let doc: VaultCredentialsXml = quick_xml::de::from_str(text).map_err(|e| e.to_string())?;
        check_schema(doc.schema_version)?;
        let expires = OffsetDateTime::parse(&doc.expires, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("expiry '{}' is not a time: {e}", doc.expires))?;
        let creds = VaultCredentials {
            service: ServiceEndpoint { url: doc.service_url, fingerprint: doc.fingerprint },
            subscription_id: doc.subscription_id,
            vault_id: doc.vault_id,
            vault_name: doc.vault_name,
            expires,
            registration_secret: doc.secret,
        };
        creds.service.check()?;
        if creds.vault_id.is_empty() || creds.registration_secret.is_empty() {
            return Err("the vault id or registration secret is empty".into());
        }
        Ok(creds)
    }
}

// ---------------------------------------------------------------- operator credentials

/// The operator's token, written by the server into its data folder at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorCredentials {
    pub url: String,
    pub fingerprint: String,
    pub token: String,
}

impl OperatorCredentials {
    const WHAT: &'static str = "operator credentials";

    pub fn endpoint(&self) -> ServiceEndpoint {
        ServiceEndpoint { url: self.url.clone(), fingerprint: self.fingerprint.clone() }
    }

    pub fn read(path: &Path) -> Result<Self, FileError> {
        let invalid = |reason: String| FileError::Invalid { path: path.into(), what: Self::WHAT, reason };
        let creds: OperatorCredentials =
            toml::from_str(&read_capped(path, Self::WHAT)?).map_err(|e| invalid(e.to_string()))?;
        creds.endpoint().check().map_err(invalid)?;
        creds.endpoint().require_https(path, Self::WHAT)?;
        Ok(creds)
    }

    pub fn write(&self, path: &Path) -> Result<(), FileError> {
        let text = toml::to_string(self)
            .map_err(|e| FileError::Write { path: path.into(), source: std::io::Error::other(e) })?;
        write_secret_file(path, &format!("# offsite operator credentials: keep this file private\n{text}"))
    }
}

// ---------------------------------------------------------------- station credentials

/// A datacenter's station credential, which `offsite admin datacenter
/// station-credential issue` writes for an ingest station (TOML, mode 0600): it
/// receives and ingests the import jobs shipped to that datacenter and nothing
/// else, so the operator's credentials stay off the station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationCredentials {
    pub url: String,
    pub fingerprint: String,
    /// The datacenter's id and name, for people and messages.
    pub datacenter_id: String,
    pub datacenter: String,
    pub token: String,
    /// The station's Ed25519 signing key for custody events: its 32-byte seed in
    /// 64 hex digits (the service holds the public key, registered when the
    /// credential was issued). Absent in files issued before custody logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
}

impl StationCredentials {
    const WHAT: &'static str = "station credentials";

    pub fn endpoint(&self) -> ServiceEndpoint {
        ServiceEndpoint { url: self.url.clone(), fingerprint: self.fingerprint.clone() }
    }

    pub fn read(path: &Path) -> Result<Self, FileError> {
        let invalid = |reason: String| FileError::Invalid { path: path.into(), what: Self::WHAT, reason };
        let creds: StationCredentials =
            toml::from_str(&read_capped(path, Self::WHAT)?).map_err(|e| invalid(e.to_string()))?;
        creds.endpoint().check().map_err(invalid)?;
        if creds.token.is_empty() {
            return Err(invalid("the token is empty".into()));
        }
        Ok(creds)
    }

    pub fn write(&self, path: &Path) -> Result<(), FileError> {
        let text = toml::to_string(self)
            .map_err(|e| FileError::Write { path: path.into(), source: std::io::Error::other(e) })?;
        write_secret_file(
            path,
            &format!(
                "# offsite station credentials of datacenter {}: keep this file private, on its ingest stations only\n{text}",
                self.datacenter
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> ServiceEndpoint {
        ServiceEndpoint { url: "https://backup.example:8443".into(), fingerprint: "ab".repeat(32) }
    }

    #[test]
    fn publish_settings_round_trip() {
        let settings = PublishSettings {
            service: endpoint(),
            subscription_id: "sub_1".into(),
            subscription_name: "Contoso & Sons".into(),
            management_credential: "cred.secret".into(),
            expires: None,
        };
        let xml = settings.to_xml();
        assert!(xml.contains("<PublishData>") && !xml.contains("Expires"), "{xml}");
        assert_eq!(PublishSettings::parse(&xml).unwrap(), settings);
        let expiring = PublishSettings { expires: Some(time::macros::datetime!(2030-01-02 03:04:05 UTC)), ..settings };
        let xml = expiring.to_xml();
        assert!(xml.contains("Expires=\"2030-01-02T03:04:05Z\""), "{xml}");
        assert_eq!(PublishSettings::parse(&xml).unwrap(), expiring);
    }

    #[test]
    fn vault_credentials_round_trip() {
        let creds = VaultCredentials {
            service: endpoint(),
            subscription_id: "sub_1".into(),
            vault_id: "vlt_1".into(),
            vault_name: "main".into(),
            expires: time::macros::datetime!(2030-01-02 03:04:05 UTC),
            registration_secret: "reg.secret".into(),
        };
        assert_eq!(VaultCredentials::parse(&creds.to_xml()).unwrap(), creds);
    }

    #[test]
    fn station_credentials_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("station.credentials");
        let endpoint = endpoint();
        let creds = StationCredentials {
            url: endpoint.url,
            fingerprint: endpoint.fingerprint,
            datacenter_id: "dc_1".into(),
            datacenter: "west".into(),
            token: "stn_1.secret".into(),
            signing_key: Some("ab".repeat(32)),
        };
        creds.write(&path).unwrap();
        assert_eq!(StationCredentials::read(&path).unwrap(), creds);
    }

    #[test]
    fn bad_fingerprint_is_named() {
        let mut settings = PublishSettings {
            service: endpoint(),
            subscription_id: "sub_1".into(),
            subscription_name: "x".into(),
            management_credential: "c".into(),
            expires: None,
        };
        settings.service.fingerprint = "xyz".into();
        let err = PublishSettings::parse(&settings.to_xml()).unwrap_err();
        assert!(err.contains("fingerprint"), "{err}");
    }

    #[test]
    fn secret_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.publishsettings");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret_file(&path, "new").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in ".{0,400}") {
            let _ = PublishSettings::parse(&text);
            let _ = VaultCredentials::parse(&text);
        }
    }
}
