//! moto starts, takes a bucket, and serves object_store's S3 client.

mod common;

use offsite_testbed::{Error, S3Server};

#[tokio::test]
async fn object_store_round_trip_on_moto() {
    let s3 = S3Server::start().expect("start moto");
    s3.create_bucket("offsite").expect("create bucket");
    s3.create_bucket("offsite").expect("re-create bucket");
    let store = s3.s3_store("offsite").expect("s3 client");
    common::exercise(store).await;
}

#[test]
fn env_names_are_object_store_config_keys() {
    let s3 = S3Server::start().expect("start moto");
    for (name, _) in s3.object_store_env() {
        name.to_ascii_lowercase()
            .parse::<object_store::aws::AmazonS3ConfigKey>()
            .unwrap_or_else(|e| panic!("{name} is not an S3 config key: {e}"));
    }
}

#[test]
fn server_stops_on_drop() {
    let s3 = S3Server::start().expect("start moto");
    let port = s3.port();
    drop(s3);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers after drop");
}

#[test]
fn missing_moto_is_a_clear_error() {
    let empty = tempfile::tempdir().expect("temp dir");
    let err = S3Server::start_with_deps(empty.path()).expect_err("no moto installed there");
    assert!(matches!(err, Error::MissingDependency { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("moto"), "{message}");
    assert!(message.contains("run scripts/test (it installs test dependencies)"), "{message}");
}
