//! What can go wrong in the agent, one variant per situation a user acts on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// `register` is the command that registers it (with this agent's `--agent-home`).
    #[error("this machine is not registered (no {path}): run `{register}` first")]
    NotRegistered { path: PathBuf, register: String },
    #[error("this machine is already registered to vault '{vault}' as machine {machine}; its state is in {home}")]
    AlreadyRegistered { vault: String, machine: String, home: PathBuf },
    #[error(
        "the vault credentials in {path} expired at {expired}: download new ones (offsite admin vault credentials)"
    )]
    CredentialsExpired { path: PathBuf, expired: String },
    #[error("the encryption passphrase must be at least {min} characters (it has {len})")]
    PassphraseTooShort { min: usize, len: usize },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("cannot access {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "wrong passphrase: it does not open this machine's repository; use the passphrase chosen at \
         registration (--passphrase-file FILE). Without it these backups cannot be read"
    )]
    WrongPassphrase,
    /// `protect` is the command that adds a path (with this agent's `--agent-home`).
    #[error("nothing to back up: add a path with `{protect}`")]
    NothingProtected { protect: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Api(#[from] offsite_api::ApiError),
    #[error(transparent)]
    File(#[from] offsite_api::files::FileError),
    #[error(transparent)]
    Engine(#[from] offsite_engine::error::Error),
}

pub type AgentResult<T> = Result<T, AgentError>;

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AgentError {
    let path = path.into();
    move |source| AgentError::Io { path, source }
}

impl From<offsite_engine::backend::BackendError> for AgentError {
    fn from(err: offsite_engine::backend::BackendError) -> AgentError {
        AgentError::Engine(err.into())
    }
}
