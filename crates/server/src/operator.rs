//! The operator's credential. On every start the server makes sure the file
//! `operator.credentials` in its data folder holds a working operator token and the
//! current URL and certificate fingerprint; a missing or stale file gets a new token
//! and the old ones are revoked.

use std::path::Path;

use offsite_api::files::OperatorCredentials;

use crate::db::{CredentialKind, Db};
use crate::secrets;

const SUBJECT: &str = "operator";

pub async fn ensure(db: &Db, path: &Path, url: &str, fingerprint: &str) -> Result<(), String> {
    if let Ok(existing) = OperatorCredentials::read(path) {
        if still_valid(db, &existing.token).await {
            let updated =
                OperatorCredentials { url: url.into(), fingerprint: fingerprint.into(), token: existing.token };
            return updated.write(path).map_err(|e| e.to_string());
        }
    }
    db.revoke_credentials(CredentialKind::Operator, SUBJECT).await.map_err(|e| e.to_string())?;
    let token = db.issue_credential(CredentialKind::Operator, SUBJECT, None).await.map_err(|e| e.to_string())?;
    OperatorCredentials { url: url.into(), fingerprint: fingerprint.into(), token }
        .write(path)
        .map_err(|e| e.to_string())
}

async fn still_valid(db: &Db, token: &str) -> bool {
    let Some((id, secret)) = secrets::split_token(token) else { return false };
    let Ok(Some(row)) = db.credential(id).await else { return false };
    if row.kind != CredentialKind::Operator || row.revoked.is_some() {
        return false;
    }
    secrets::verify_bounded(secret.to_string(), row.secret_hash, None).await.unwrap_or(false)
}
