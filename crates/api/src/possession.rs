//! Proof of possession for certificate uploads: whoever registers a certificate
//! for an offline-seeding application signs a challenge the service gave out
//! with the certificate's private key, so no one registers a certificate whose
//! key they do not hold (one copied from another machine or subscription).
//!
//! ```text
//! signed bytes: offsite-certificate-possession-v1\n<challenge>\n<thumbprint>
//! ```
//!
//! The service gives a challenge to its subscription only, once, for a day (the
//! manual path may take a person that long); the signature binds it to one
//! certificate. In a file (`offsite certgen export-cert --challenge`), the proof
//! follows the certificate's PEM block as a block of its own, [`BEGIN`] … [`END`].

use ring::rand::SystemRandom;

use crate::application_auth::Key;
use crate::types::PossessionProof;

/// The first line of the signed bytes: such a signature means nothing elsewhere.
pub const CONTEXT: &str = "offsite-certificate-possession-v1";
pub const BEGIN: &str = "-----BEGIN OFFSITE POSSESSION PROOF-----";
pub const END: &str = "-----END OFFSITE POSSESSION PROOF-----";

/// The bytes a proof signs.
pub fn message(challenge: &str, thumbprint: &str) -> Vec<u8> {
    format!("{CONTEXT}\n{challenge}\n{}", thumbprint.to_ascii_uppercase()).into_bytes()
}

/// Signs `challenge` for the certificate `thumbprint` with its key (PKCS#8 PEM).
pub fn prove(key_pem: &str, challenge: &str, thumbprint: &str) -> Result<PossessionProof, String> {
    use base64::Engine;
    let rng = SystemRandom::new();
    let key = Key::parse(key_pem, &rng)?;
    let signature = key.sign(&rng, &message(challenge, thumbprint))?;
    Ok(PossessionProof {
        challenge: challenge.to_string(),
        signature: base64::engine::general_purpose::STANDARD.encode(signature),
    })
}

/// The proof as a block to put after the certificate's PEM block in a file.
pub fn block(proof: &PossessionProof) -> String {
    format!("{BEGIN}\nChallenge: {}\nSignature: {}\n{END}\n", proof.challenge, proof.signature)
}

/// The proof block of a certificate file's text, if it has one.
pub fn find_block(text: &str) -> Result<Option<PossessionProof>, String> {
    let Some(start) = text.find(BEGIN) else { return Ok(None) };
    let rest = &text[start + BEGIN.len()..];
    let body = rest.find(END).map(|end| &rest[..end]).ok_or("the possession proof block has no end line")?;
    let field = |name: &str| {
        body.lines()
            .find_map(|line| line.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("the possession proof block has no '{name}' line"))
    };
    Ok(Some(PossessionProof { challenge: field("Challenge:")?, signature: field("Signature:")? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_written_to_a_file_reads_back_and_verifies_for_its_challenge_only() {
        let key = rcgen::KeyPair::generate().unwrap();
        let proof = prove(&key.serialize_pem(), "chl_1", "ab12").unwrap();
        let file = format!("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n{}", block(&proof));
        assert_eq!(find_block(&file).unwrap(), Some(proof.clone()));
        assert_eq!(find_block("-----BEGIN CERTIFICATE-----\n").unwrap(), None);
        assert!(find_block(&format!("{BEGIN}\nChallenge: x\n")).unwrap_err().contains("no end line"));

        use base64::Engine;
        let signature = base64::engine::general_purpose::STANDARD.decode(&proof.signature).unwrap();
        let public =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key.public_key_raw());
        public.verify(&message("chl_1", "AB12"), &signature).unwrap();
        assert!(public.verify(&message("chl_2", "AB12"), &signature).is_err());
        assert!(public.verify(&message("chl_1", "CD34"), &signature).is_err());
    }
}
