//! The service's TLS identity: the certificate the operator gives, or a self-signed
//! one generated on first start and kept in the data folder. Clients pin its SHA-256
//! fingerprint, which every credentials file carries.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no usable {what}: {reason}")]
    Invalid { path: PathBuf, what: &'static str, reason: String },
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    #[error("cannot use the certificate and key: {0}")]
    Config(String),
}

pub struct TlsIdentity {
    pub config: rustls::ServerConfig,
    pub fingerprint: String,
    pub cert_path: PathBuf,
}

/// Loads `cert`/`key`, or the generated pair under `data_dir/tls`, generating it on first use.
pub fn load_or_generate(data_dir: &Path, given: Option<(&Path, &Path)>) -> Result<TlsIdentity, TlsError> {
    let (cert_path, key_path) = match given {
        Some((cert, key)) => (cert.to_path_buf(), key.to_path_buf()),
        None => {
            let dir = data_dir.join("tls");
            let cert = dir.join("service.crt");
            let key = dir.join("service.key");
            if !cert.exists() || !key.exists() {
                generate(&dir, &cert, &key)?;
            }
            (cert, key)
        }
    };
    let read = |path: &Path| std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source });
    let cert_pem = read(&cert_path)?;
    let key_pem = read(&key_path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid { path: cert_path.clone(), what: "certificate", reason: e.to_string() })?;
    let first = certs.first().ok_or_else(|| TlsError::Invalid {
        path: cert_path.clone(),
        what: "certificate",
        reason: "no CERTIFICATE block".into(),
    })?;
    let fingerprint = offsite_api::tls::fingerprint(first.as_ref());
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Invalid {
        path: key_path.clone(),
        what: "private key",
        reason: e.to_string(),
    })?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsIdentity { config, fingerprint, cert_path })
}

fn generate(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.into(), source })?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(host) = rustix::system::uname().nodename().to_str() {
        names.push(host.to_string());
    }
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    offsite_api::files::write_secret_file(key_path, &certified.key_pair.serialize_pem())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::write(cert_path, certified.cert.pem())
        .map_err(|source| TlsError::Write { path: cert_path.into(), source })?;
    Ok(())
}
