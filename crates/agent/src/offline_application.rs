//! The offline-seeding application identity on the source machine: what
//! `offsite certgen` leaves here and `offsite diskprep` uses to speak for the
//! subscription without its publish settings.
//!
//! The seed keeps these in the certificate store and the registry; here they are
//! files in the agent's state folder and a table in its configuration:
//!
//! ```text
//! <state>/offline/application.key                    private key (PKCS#8 PEM, 0600), never sent
//! <state>/offline/application.cer                    the certificate (PEM), public
//! <state>/offline/OfflineApplicationParams_<sa>.xml  the "registry entries" per storage account
//! agent.toml [offline_application]                   application id, and
//!                                                    application_cert_thumbprint_<user id> = thumbprint
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use offsite_api::application_auth::ApplicationIdentity;
use offsite_api::XmlCredentialFile;
use offsite_seeding::application::{thumbprint, thumbprint_entry, user_id, OfflineApplicationParams};

use crate::config::AgentConfig;
use crate::error::{io_error, AgentError, AgentResult};
use crate::home::AgentHome;

/// The `[offline_application]` table of `agent.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApplicationEntries {
    pub application_id: String,
    pub subscription_id: String,
    /// `application_cert_thumbprint_<user id>` → thumbprint (the seed's
    /// `AzureADAppCertThumbprint_<user id>`), one per user who ran certgen.
    #[serde(flatten)]
    pub thumbprints: BTreeMap<String, String>,
}

/// Where certgen's files live for this agent.
pub struct ApplicationFiles {
    pub folder: PathBuf,
    /// The agent's home, for the commands its messages name.
    home: AgentHome,
}

impl ApplicationFiles {
    pub fn of(home: &AgentHome) -> ApplicationFiles {
        ApplicationFiles { folder: home.state_dir.join("offline"), home: home.clone() }
    }

    pub fn key_file(&self) -> PathBuf {
        self.folder.join("application.key")
    }

    pub fn certificate_file(&self) -> PathBuf {
        self.folder.join("application.cer")
    }

    pub fn params_file(&self, storage_account: &str) -> PathBuf {
        self.folder.join(format!("OfflineApplicationParams_{storage_account}.xml"))
    }

    fn ensure(&self, home: &AgentHome) -> AgentResult<()> {
        use std::os::unix::fs::PermissionsExt;
        home.ensure_state_dir()?;
        std::fs::create_dir_all(&self.folder).map_err(io_error(&self.folder))?;
        std::fs::set_permissions(&self.folder, std::fs::Permissions::from_mode(0o700)).map_err(io_error(&self.folder))
    }

    /// Keeps a freshly generated key pair and certificate. An existing key is never
    /// overwritten: it may be the one the service knows.
    pub fn save_generated(&self, home: &AgentHome, key_pem: &str, cert_pem: &str) -> AgentResult<()> {
        self.ensure(home)?;
        let key = self.key_file();
        if key.exists() {
            return Err(AgentError::Invalid(format!(
                "{} already holds an application key: certgen keeps it rather than replace a key the service \
                 may know. Use `{}` to upload its certificate, or move the file away first",
                key.display(),
                home.command("certgen export-cert --out offsite-application.cer")
            )));
        }
        offsite_api::files::write_secret_file(&key, key_pem)?;
        let cert = self.certificate_file();
        std::fs::write(&cert, cert_pem).map_err(io_error(&cert))
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> AgentResult<Vec<u8>> {
        let path = self.certificate_file();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(AgentError::Invalid(format!(
                    "no application certificate at {}: run `{}` first",
                    path.display(),
                    self.home.command("certgen create-application --subscription SUB --publish-settings FILE")
                )))
            }
            Err(err) => return Err(io_error(&path)(err)),
        };
        offsite_seeding::application::read_certificate(&bytes)
            .map_err(|e| AgentError::Config { path, reason: e.to_string() })
    }

    /// Signs a service challenge with this machine's application key: the proof of
    /// possession a certificate upload carries.
    pub fn prove_possession(&self, challenge: &str) -> AgentResult<offsite_api::types::PossessionProof> {
        let thumbprint = offsite_seeding::application::thumbprint(&self.certificate_der()?);
        offsite_api::possession::prove(&self.key_pem()?, challenge, &thumbprint)
            .map_err(|reason| AgentError::Config { path: self.key_file(), reason })
    }

    fn key_pem(&self) -> AgentResult<String> {
        let path = self.key_file();
        std::fs::read_to_string(&path).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => AgentError::Invalid(format!(
                "no application key at {}: this is not the machine certgen ran on; give diskprep the \
                 subscription's --publish-settings file instead",
                path.display()
            )),
            _ => io_error(&path)(err),
        })
    }
}

/// Writes the agent-side entries: `OfflineApplicationParams_<storage account>.xml`
/// in the state folder and the thumbprint under this user's id in `agent.toml`.
/// Returns the params file written.
pub fn add_entries(home: &AgentHome, params: &OfflineApplicationParams, storage_account: &str) -> AgentResult<PathBuf> {
    offsite_api::types::check_name("storage account", storage_account).map_err(AgentError::Invalid)?;
    let files = ApplicationFiles::of(home);
    files.ensure(home)?;
    let local = OfflineApplicationParams { storage_account: Some(storage_account.to_string()), ..params.clone() };
    let path = files.params_file(storage_account);
    local.write(&path)?;
    let mut config = AgentConfig::load(&home.config_file)?;
    let entries = config.offline_application.get_or_insert_with(ApplicationEntries::default);
    entries.application_id = params.application_id.clone();
    entries.subscription_id = params.subscription_id.clone();
    entries.thumbprints.insert(thumbprint_entry(&user_id()), params.cert_thumbprint.clone());
    config.save(&home.config_file)?;
    Ok(path)
}

/// The application identity certgen left on this machine for a storage account:
/// its params and a signing identity whose certificate matches the recorded
/// thumbprint.
pub fn load_identity(
    home: &AgentHome,
    storage_account: &str,
) -> AgentResult<(OfflineApplicationParams, ApplicationIdentity)> {
    let files = ApplicationFiles::of(home);
    let path = files.params_file(storage_account);
    if !path.exists() {
        return Err(AgentError::Invalid(format!(
            "no {} on this machine: run `{} …`, or give the subscription's --publish-settings file",
            path.display(),
            home.command(&format!("certgen add-agent-entries --storage-account {storage_account}"))
        )));
    }
    let params = OfflineApplicationParams::read(&path)?;
    let der = files.certificate_der()?;
    let local = thumbprint(&der);
    if local != params.cert_thumbprint {
        return Err(AgentError::Invalid(format!(
            "the certificate in {} (thumbprint {local}) is not the one {} names ({}): run certgen again on this machine",
            files.certificate_file().display(),
            path.display(),
            params.cert_thumbprint
        )));
    }
    let identity = ApplicationIdentity {
        application_id: params.application_id.clone(),
        thumbprint: params.cert_thumbprint.clone(),
        key_pem: files.key_pem()?,
    };
    Ok((params, identity))
}

/// The storage accounts certgen wrote entries for, from the params files present.
pub fn storage_accounts(home: &AgentHome) -> Vec<String> {
    let folder = ApplicationFiles::of(home).folder;
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            Some(name.strip_prefix("OfflineApplicationParams_")?.strip_suffix(".xml")?.to_string())
        })
        .collect();
    names.sort();
    names
}

/// Where `OfflineApplicationParams.xml` goes by default: the current folder, as
/// the seed's tool writes it next to itself.
pub fn default_params_path() -> &'static Path {
    Path::new("OfflineApplicationParams.xml")
}
