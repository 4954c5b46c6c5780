//! Azurite starts, takes a container, and serves object_store's Azure client.

mod common;

use offsite_testbed::{Azurite, Error};

#[tokio::test]
async fn object_store_round_trip_on_azurite() {
    let azurite = Azurite::start().expect("start Azurite");
    azurite.create_container("offsite").expect("create container");
    // Creating it again is fine: tests may share set-up code.
    azurite.create_container("offsite").expect("re-create container");
    let store = azurite.azure_store("offsite").expect("azure client");
    common::exercise(store).await;
}

#[test]
fn env_names_are_object_store_config_keys() {
    let azurite = Azurite::start().expect("start Azurite");
    let env = azurite.object_store_env();
    for (name, _) in &env {
        name.to_ascii_lowercase()
            .parse::<object_store::azure::AzureConfigKey>()
            .unwrap_or_else(|e| panic!("{name} is not an Azure config key: {e}"));
    }
    let endpoint = env.iter().find(|(name, _)| name == "AZURE_STORAGE_ENDPOINT").map(|(_, value)| value.clone());
    assert_eq!(endpoint, Some(azurite.account_url()));
}

#[test]
fn server_stops_on_drop() {
    let azurite = Azurite::start().expect("start Azurite");
    let port = azurite.port();
    drop(azurite);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers after drop");
}

#[test]
fn missing_azurite_is_a_clear_error() {
    let empty = tempfile::tempdir().expect("temp dir");
    let err = Azurite::start_with_deps(empty.path()).expect_err("no Azurite installed there");
    assert!(matches!(err, Error::MissingDependency { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("azurite"), "{message}");
    assert!(message.contains("run scripts/test (it installs test dependencies)"), "{message}");
}

#[test]
fn bad_container_names_are_rejected_before_sending() {
    let azurite = Azurite::start().expect("start Azurite");
    let err = azurite.create_container("x/../y").expect_err("path characters in a name");
    assert!(matches!(err, Error::InvalidName { .. }), "{err:?}");
}
