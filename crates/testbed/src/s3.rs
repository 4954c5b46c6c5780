//! An S3-compatible server: moto's standalone server mode.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::ObjectStore;

use crate::process::ServerProcess;
use crate::{deps_dir, http, Error, Result};

/// A running moto S3 server on a loopback port, killed on drop. moto keeps everything
/// in memory and accepts any credentials.
#[derive(Debug)]
pub struct S3Server {
    process: ServerProcess,
}

impl S3Server {
    /// Dummy credentials: moto accepts any, but object_store insists on some.
    pub const ACCESS_KEY_ID: &'static str = "testing";
    /// See [`Self::ACCESS_KEY_ID`].
    pub const SECRET_ACCESS_KEY: &'static str = "testing";
    /// The region buckets are created in.
    pub const REGION: &'static str = "us-east-1";

    /// Starts moto from the Python venv that `scripts/test` creates under
    /// [`deps_dir()`]`/venv`.
    pub fn start() -> Result<Self> {
        Self::start_with_deps(&deps_dir())
    }

    /// Starts moto from the dependencies directory `deps` (normally [`deps_dir()`]).
    pub fn start_with_deps(deps: &Path) -> Result<Self> {
        let moto_server = deps.join("venv/bin/moto_server");
        if !moto_server.is_file() {
            return Err(Error::MissingDependency {
                what: "moto_server (PyPI package moto[server])".to_string(),
                path: moto_server,
            });
        }
        let process = ServerProcess::start("moto S3 server", "offsite-moto-", |port, _dir| {
            let mut cmd = Command::new(&moto_server);
            cmd.args(["-H", "127.0.0.1", "-p"]).arg(port.to_string());
            cmd
        })?;
        Ok(S3Server { process })
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The server's URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// Creates a bucket; succeeds if it already exists. A plain unsigned `PUT /<bucket>`
    /// is enough for moto.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        validate_bucket_name(name)?;
        let what = format!("creating S3 bucket {name:?}");
        let response = http::send(self.port(), "PUT", &format!("/{name}"), &[], &what)?;
        match response.status {
            200 => Ok(()),
            status => Err(Error::Status { what, status, body: response.body }),
        }
    }

    /// The options that point `object_store`'s S3 client at this server, as
    /// environment-variable names `AmazonS3Builder::from_env()` reads. Each name,
    /// lowercased, is also a valid `AmazonS3ConfigKey`.
    pub fn object_store_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET_ACCESS_KEY.to_string()),
            ("AWS_REGION", Self::REGION.to_string()),
            // Path-style URLs (`<endpoint>/<bucket>/<key>`): no DNS name per bucket here.
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// An `object_store` client for `bucket` (create it first with
    /// [`Self::create_bucket`]), configured from [`Self::object_store_env`] without
    /// touching the process environment.
    pub fn s3_store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        for (name, value) in self.object_store_env() {
            let key: AmazonS3ConfigKey = name.to_ascii_lowercase().parse()?;
            builder = builder.with_config(key, value);
        }
        Ok(Arc::new(builder.build()?))
    }
}

/// S3's bucket naming rules (the common subset), so a bad name fails here clearly.
fn validate_bucket_name(name: &str) -> Result<()> {
    let invalid = |rule| Err(Error::InvalidName { kind: "bucket", name: name.to_string(), rule });
    if !(3..=63).contains(&name.len()) {
        return invalid("must be 3 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
        return invalid("only lowercase letters, digits, '.' and '-' are allowed");
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return invalid("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return invalid("must not contain '..'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_are_checked() {
        assert!(validate_bucket_name("offsite-test.1").is_ok());
        for bad in ["ab", "Upper", "a..b", "-ab", "ab.", "a/b", "a?x=y", &"a".repeat(64)] {
            assert!(validate_bucket_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
