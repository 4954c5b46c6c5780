//! The machine's registration: which service and vault it belongs to and its own
//! credential, kept in the state folder with 0600 permissions beside the
//! encryption passphrase (which never leaves the machine).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use offsite_api::files::{write_secret_file, ServiceEndpoint, VaultCredentials};
use offsite_api::Client;
use offsite_api::XmlCredentialFile;
use offsite_engine::repository::InitOptions;

use crate::error::{io_error, AgentError, AgentResult};
use crate::home::AgentHome;

/// The seed's agent asks for at least 16 characters.
pub const MIN_PASSPHRASE_CHARS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub service_url: String,
    pub fingerprint: String,
    pub subscription_id: String,
    pub vault_id: String,
    pub vault_name: String,
    pub machine_id: String,
    pub machine_name: String,
    pub machine_credential: String,
}

impl Registration {
    pub fn endpoint(&self) -> ServiceEndpoint {
        ServiceEndpoint { url: self.service_url.clone(), fingerprint: self.fingerprint.clone() }
    }

    pub fn client(&self) -> AgentResult<Client> {
        Ok(Client::new(&self.endpoint(), &self.machine_credential)?)
    }

    pub fn load(home: &AgentHome) -> AgentResult<Registration> {
        let path = home.registration_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(not_registered(home, path)),
            Err(err) => return Err(io_error(&path)(err)),
        };
        let registration: Registration =
            toml::from_str(&text).map_err(|e| AgentError::Config { path: path.clone(), reason: e.to_string() })?;
        registration.endpoint().check().map_err(|reason| AgentError::Config { path: path.clone(), reason })?;
        registration.endpoint().require_https(&path, "machine registration")?;
        Ok(registration)
    }

    fn save(&self, home: &AgentHome) -> AgentResult<()> {
        let path = home.registration_file();
        let text =
            toml::to_string(self).map_err(|e| AgentError::Config { path: path.clone(), reason: e.to_string() })?;
        write_secret_file(&path, &text)?;
        Ok(())
    }
}

fn not_registered(home: &AgentHome, path: PathBuf) -> AgentError {
    AgentError::NotRegistered { path, register: home.command("agent register --vault-credentials FILE") }
}

pub fn check_passphrase(passphrase: &str) -> AgentResult<()> {
    let len = passphrase.chars().count();
    if len < MIN_PASSPHRASE_CHARS {
        return Err(AgentError::PassphraseTooShort { min: MIN_PASSPHRASE_CHARS, len });
    }
    Ok(())
}

/// The passphrase the agent keeps for scheduled backups.
pub fn stored_passphrase(home: &AgentHome) -> AgentResult<String> {
    let path = home.passphrase_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim_end_matches('\n').to_string()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(not_registered(home, home.registration_file())),
        Err(err) => Err(io_error(&path)(err)),
    }
}

/// Registers this machine with vault credentials, stores the registration and the
/// passphrase, and creates the machine's repository in the vault.
pub fn register(
    home: &AgentHome,
    credentials_file: &Path,
    passphrase: &str,
    machine_name: &str,
) -> AgentResult<Registration> {
    register_with(home, credentials_file, passphrase, machine_name, InitOptions::default(), None)
}

/// [`register`], creating the repository with `init` (its pack size, say). With
/// `replaces` (a machine of the vault, by id or name), this machine takes that
/// one's place: its repository and recovery points, opened with `passphrase`,
/// so the next backup goes on incrementally.
pub fn register_with(
    home: &AgentHome,
    credentials_file: &Path,
    passphrase: &str,
    machine_name: &str,
    init: InitOptions,
    replaces: Option<&str>,
) -> AgentResult<Registration> {
    if let Ok(existing) = Registration::load(home) {
        return Err(AgentError::AlreadyRegistered {
            vault: existing.vault_name,
            machine: existing.machine_id,
            home: home.state_dir.clone(),
        });
    }
    check_passphrase(passphrase)?;
    offsite_api::types::check_name("machine", machine_name).map_err(AgentError::Invalid)?;
    let credentials = VaultCredentials::read(credentials_file)?;
    if credentials.expires <= time::OffsetDateTime::now_utc() {
        return Err(AgentError::CredentialsExpired {
            path: credentials_file.into(),
            expired: credentials.expires.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        });
    }
    home.ensure_state_dir()?;
    let client = Client::new(&credentials.service, &credentials.registration_secret)?;
    let hostname = crate::hostname();
    let registered = match replaces {
        Some(replaced) => client.register_replacing(machine_name, &hostname, replaced)?,
        None => client.register(machine_name, &hostname)?,
    };
    let registration = Registration {
        service_url: credentials.service.url.clone(),
        fingerprint: credentials.service.fingerprint.clone(),
        subscription_id: credentials.subscription_id.clone(),
        vault_id: registered.machine.vault_id.clone(),
        vault_name: credentials.vault_name.clone(),
        machine_id: registered.machine.id.clone(),
        machine_name: registered.machine.name.clone(),
        machine_credential: registered.machine_credential,
    };
    // Saved before anything else can fail: the credential exists only here now.
    registration.save(home)?;
    write_secret_file(&home.passphrase_file(), passphrase)?;
    crate::repository::open_or_create_with(
        &registration,
        passphrase,
        &crate::config::RetryPolicy::default(),
        None,
        init,
    )?;
    Ok(registration)
}
