//! Hostile credential files and headers: publish settings, vault credentials,
//! operator credentials, the import secret key and signed application request
//! headers are fed random bytes, random text, oversized files and mutations of
//! valid ones. None may panic; a file that is readable but not valid is refused
//! as `FileError::Invalid` naming the file and what it should have been (never as
//! an I/O error); allocation stays bounded (the binary counts it).
//!
//! `PROPTEST_CASES` raises the number of inputs per parser (the soak sets it).

use std::path::Path;

use offsite_api::application_auth::parse_header;
use offsite_api::files::{
    FileError, OperatorCredentials, PublishSettings, ServiceEndpoint, VaultCredentials, XmlCredentialFile,
};
use offsite_api::import_key::{parse_key_hex, read_import_secret};
use offsite_testbed::allocation::{cases, is_counting, peak_during, CountingAllocator};
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn endpoint() -> ServiceEndpoint {
    ServiceEndpoint { url: "https://backup.example:8443".into(), fingerprint: "ab".repeat(32) }
}

fn publish_settings() -> String {
    PublishSettings {
        service: endpoint(),
        subscription_id: "sub_1".into(),
        subscription_name: "Contoso & Sons".into(),
        management_credential: "cred.secret".into(),
        expires: None,
    }
    .to_xml()
}

fn vault_credentials() -> String {
    VaultCredentials {
        service: endpoint(),
        subscription_id: "sub_1".into(),
        vault_id: "vlt_1".into(),
        vault_name: "main".into(),
        expires: time::macros::datetime!(2030-01-02 03:04:05 UTC),
        registration_secret: "reg.secret".into(),
    }
    .to_xml()
}

fn operator_credentials(dir: &Path) -> String {
    let path = dir.join("operator.toml");
    OperatorCredentials {
        url: "https://backup.example:8443".into(),
        fingerprint: "ab".repeat(32),
        token: "op.secret".into(),
    }
    .write(&path)
    .unwrap();
    std::fs::read_to_string(path).unwrap()
}

/// Reads `bytes` as each kind of file: each answer is a value or `Invalid` naming
/// the file and its kind, and a small file never costs more than a bound.
fn read_as_every_file(dir: &Path, bytes: &[u8]) {
    let path = dir.join("hostile");
    std::fs::write(&path, bytes).unwrap();
    let check = |what: &str, result: Result<(), FileError>, peak: u64| {
        assert!(is_counting());
        assert!(peak <= 1024 * 1024 + 64 * bytes.len() as u64, "{what}: {peak} bytes for {} bytes", bytes.len());
        match result {
            Ok(()) => {}
            Err(FileError::Invalid { path: named, what: kind, reason }) => {
                assert_eq!(named, path);
                assert_eq!(kind, what);
                assert!(!reason.is_empty());
            }
            Err(other) => panic!("{what}: a readable file refused as {other}"),
        }
    };
    let (r, peak) = peak_during(|| PublishSettings::read(&path).map(drop));
    check("publish-settings", r, peak);
    let (r, peak) = peak_during(|| VaultCredentials::read(&path).map(drop));
    check("vault credentials", r, peak);
    let (r, peak) = peak_during(|| OperatorCredentials::read(&path).map(drop));
    check("operator credentials", r, peak);
    let (r, peak) = peak_during(|| read_import_secret(&path).map(drop));
    check("import secret key", r, peak);
}

fn mutate(text: &str, edits: &[(prop::sample::Index, u8)], cut: Option<prop::sample::Index>) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for (at, value) in edits {
        let i = at.index(bytes.len());
        bytes[i] = *value;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut.index(bytes.len() + 1));
    }
    bytes
}

#[test]
fn oversized_and_binary_files_are_named_not_taken_for_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let mut huge = publish_settings().into_bytes();
    huge.resize(64 * 1024 + 1, b' ');
    read_as_every_file(dir.path(), &huge);
    let path = dir.path().join("hostile");
    match PublishSettings::read(&path) {
        Err(e @ FileError::Invalid { .. }) => assert!(e.to_string().contains("larger than 65536 bytes"), "{e}"),
        other => panic!("{other:?}"),
    }
    read_as_every_file(dir.path(), &[0xFF, 0xFE, 0x00, 0x80, 0xC3]);
    match VaultCredentials::read(&path) {
        Err(e @ FileError::Invalid { .. }) => assert!(e.to_string().contains("not text"), "{e}"),
        other => panic!("{other:?}"),
    }
    match read_import_secret(&path) {
        Err(e @ FileError::Invalid { .. }) => assert!(e.to_string().contains("not text"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_valid_files_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, publish_settings()).unwrap();
    assert_eq!(PublishSettings::read(&path).unwrap().subscription_id, "sub_1");
    std::fs::write(&path, vault_credentials()).unwrap();
    assert_eq!(VaultCredentials::read(&path).unwrap().vault_id, "vlt_1");
    std::fs::write(&path, operator_credentials(dir.path())).unwrap();
    assert_eq!(OperatorCredentials::read(&path).unwrap().token, "op.secret");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    #[test]
    fn random_bytes_are_refused_by_name(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().unwrap();
        read_as_every_file(dir.path(), &bytes);
    }

    #[test]
    fn random_text_is_refused_by_name(text in "\\PC{0,600}") {
        let dir = tempfile::tempdir().unwrap();
        read_as_every_file(dir.path(), text.as_bytes());
        let (r, peak) = peak_during(|| parse_header(&text).map(drop));
        prop_assert!(peak <= 64 * 1024 + 16 * text.len() as u64);
        if let Err(e) = r {
            prop_assert!(e.contains("OffsiteApp"), "{}", e);
        }
        if let Err(e) = parse_key_hex(&text) {
            prop_assert!(e.contains("import key"), "{}", e);
        }
    }

    #[test]
    fn mutated_valid_files_are_refused_by_name(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let valid = match which {
            0 => publish_settings(),
            1 => vault_credentials(),
            2 => operator_credentials(dir.path()),
            _ => format!("{}\n", "5a".repeat(32)),
        };
        read_as_every_file(dir.path(), &mutate(&valid, &edits, cut));
    }

    /// Signed-request headers: the four fields, each mangled.
    #[test]
    fn mutated_signed_headers_never_panic(
        id in "[ -~]{0,20}", thumbprint in "[0-9A-Fa-f:]{0,70}", seconds in "[-0-9a-z]{0,25}",
        signature in "[A-Za-z0-9+/=:]{0,800}",
    ) {
        let header = format!("{id}:{thumbprint}:{seconds}:{signature}");
        match parse_header(&header) {
            Ok(parsed) => prop_assert!(!parsed.signature.is_empty() && parsed.signature.len() <= 512),
            Err(e) => prop_assert!(e.contains("OffsiteApp"), "{}", e),
        }
    }
}
