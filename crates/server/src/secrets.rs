//! Credentials the service issues: random ids, bearer tokens `<id>.<secret>`, and the
//! Argon2id hashes that are all the database keeps of a secret.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

/// A new resource id: a readable prefix and 16 random bytes, e.g. `vlt_3f9c…`.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// A credential as issued: `token` goes to the caller once; `hash` is stored.
pub struct IssuedSecret {
    pub id: String,
    pub token: String,
    pub hash: String,
}

/// Tokens carry 256 random bits, so a slow hash is not what protects them from
/// guessing; Argon2id at OWASP's minimum cost keeps a stolen database from turning
/// into working tokens, while verification (cached per token) stays cheap.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn issue(prefix: &str) -> IssuedSecret {
    let id = new_id(prefix);
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let secret = hex::encode(secret);
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = hasher().hash_password(secret.as_bytes(), &salt).expect("hashing a 64-byte secret succeeds").to_string();
    IssuedSecret { token: format!("{id}.{secret}"), id, hash }
}

/// An Argon2id hash of a portal user's password (PHC string, salted).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher().hash_password(password.as_bytes(), &salt).expect("Argon2id hashes any password").to_string()
}

/// 32 random bytes as hex: session secrets and CSRF tokens.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Splits a bearer token into credential id and secret.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let plausible =
        |s: &str| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (plausible(id) && plausible(secret)).then_some((id, secret))
}

pub fn verify(secret: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => hasher().verify_password(secret.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let issued = issue("mch");
        let (id, secret) = split_token(&issued.token).unwrap();
        assert_eq!(id, issued.id);
        assert!(verify(secret, &issued.hash));
        assert!(!verify(&secret.replace('a', "b").replace('1', "2"), &issued.hash));
        assert!(!issued.hash.contains(secret), "the hash must not contain the secret");
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for token in ["", ".", "abc", "a.b.c", "id.sec ret", "id.", ".secret"] {
            assert!(split_token(token).is_none(), "{token}");
        }
    }
}
