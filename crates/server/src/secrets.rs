//! Credentials the service issues: random ids, bearer tokens `<id>.<secret>`, and the
//! Argon2id hashes that are all the database keeps of a secret.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// Argon2id memory cost in KiB (OWASP's minimum for Argon2id).
pub const M_COST_KIB: u32 = 19 * 1024;

/// Tokens carry 256 random bits, so a slow hash is not what protects them from
/// guessing; Argon2id at OWASP's minimum cost keeps a stolen database from turning
/// into working tokens, while verification (cached per token) stays cheap.
fn params() -> Params {
    Params::new(M_COST_KIB, 2, 1, None).expect("constant Argon2 parameters are valid")
}

/// A salted Argon2id hash (PHC string) of `secret`, computed in `memory`.
fn hash_with(secret: &[u8], memory: &mut [Block]) -> String {
    let params = params();
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).expect("a generated salt decodes");
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; 32];
    argon2
        .hash_password_into_with_memory(secret, salt_bytes, &mut out, memory)
        .expect("Argon2id hashes any secret with its own parameters");
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("constant parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).expect("32 bytes is a valid output")),
    };
    hash.to_string()
}

/// Whether `secret` matches the PHC string `hash`, computed in `memory` (hashes
/// with other parameters than the service's are checked in memory of their own).
fn verify_with(secret: &[u8], hash: &str, memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed)) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else { return false };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let computed = if params.block_count() <= memory.len() {
        argon2.hash_password_into_with_memory(secret, salt_bytes, &mut out, memory)
    } else {
        argon2.hash_password_into(secret, salt_bytes, &mut out)
    };
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|out| out == expected)
}

#[cfg(test)]
fn issue(prefix: &str) -> IssuedSecret {
    issue_with(prefix, &mut crate::argon2_slots::fresh_memory())
}

fn issue_with(prefix: &str, memory: &mut [Block]) -> IssuedSecret {
    let id = new_id(prefix);
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let secret = hex::encode(secret);
    let hash = hash_with(secret.as_bytes(), memory);
    IssuedSecret { token: format!("{id}.{secret}"), id, hash }
}

/// An Argon2id hash of a portal user's password (PHC string, salted).
pub fn hash_password(password: &str) -> String {
    hash_with(password.as_bytes(), &mut crate::argon2_slots::fresh_memory())
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

#[cfg(test)]
fn verify(secret: &str, hash: &str) -> bool {
    verify_with(secret.as_bytes(), hash, &mut crate::argon2_slots::fresh_memory())
}

/// [`verify`] in one of the service's Argon2 slots (one per core), in the turn
/// of the request's source (one run at a time per source).
pub async fn verify_bounded(
    secret: String,
    hash: String,
    source: Option<crate::source::Source>,
) -> Result<bool, String> {
    crate::argon2_slots::run_for(source, move |memory| verify_with(secret.as_bytes(), &hash, memory)).await
}

/// [`issue`] in one of the service's Argon2 slots.
pub async fn issue_bounded(prefix: &'static str) -> Result<IssuedSecret, String> {
    crate::argon2_slots::run(move |memory| issue_with(prefix, memory)).await
}

/// [`hash_password`] in one of the service's Argon2 slots.
pub async fn hash_password_bounded(password: String) -> Result<String, String> {
    crate::argon2_slots::run(move |memory| hash_with(password.as_bytes(), memory)).await
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
    fn hashes_made_by_the_argon2_crate_verify_and_ours_verify_there() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = argon2.hash_password(b"a stored secret", &salt).unwrap().to_string();
        assert!(verify("a stored secret", &theirs));
        assert!(!verify("another secret", &theirs));
        let ours = hash_password("a portal password");
        assert!(argon2.verify_password(b"a portal password", &PasswordHash::new(&ours).unwrap()).is_ok());
        assert!(!verify("a portal password", "not a PHC string"));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for token in ["", ".", "abc", "a.b.c", "id.sec ret", "id.", ".secret"] {
            assert!(split_token(token).is_none(), "{token}");
        }
    }
}
