//! Azurite, Microsoft's Azure Blob Storage emulator.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use base64::prelude::{Engine, BASE64_STANDARD};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::ObjectStore;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::process::ServerProcess;
use crate::{deps_dir, http, Error, Result};

/// API version sent with our own (container-creating) requests.
const API_VERSION: &str = "2021-08-06";

/// A running Azurite blob service on a loopback port, killed on drop.
#[derive(Debug)]
pub struct Azurite {
    process: ServerProcess,
}

impl Azurite {
    /// Azurite's built-in storage account.
    pub const ACCOUNT: &'static str = "devstoreaccount1";
    /// The published key of [`Self::ACCOUNT`] (the same in every Azurite install).
    pub const ACCOUNT_KEY: &'static str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// Starts Azurite from the npm package that `scripts/test` installs under
    /// [`deps_dir()`]`/node`.
    pub fn start() -> Result<Self> {
        Self::start_with_deps(&deps_dir())
    }

    /// Starts Azurite from the dependencies directory `deps` (normally [`deps_dir()`]).
    pub fn start_with_deps(deps: &Path) -> Result<Self> {
        let main_js = deps.join("node/node_modules/azurite/dist/src/blob/main.js");
        if !main_js.is_file() {
            return Err(Error::MissingDependency {
                what: "Azurite (npm package azurite@3.35)".to_string(),
                path: main_js,
            });
        }
        // Run the script with `node` directly (what `.bin/azurite-blob` does through its
        // shebang): a missing Node.js then shows up as a clear spawn error.
        let process = ServerProcess::start("Azurite", "offsite-azurite-", |port, dir| {
            let mut cmd = Command::new("node");
            cmd.arg(&main_js)
                .args(["--blobHost", "127.0.0.1", "--blobPort"])
                .arg(port.to_string())
                .arg("--location")
                .arg(dir)
                .args([
                    "--skipApiVersionCheck",
                    "--loose",
                    "--silent",
                    // Otherwise Azurite tries to send usage data over the internet.
                    "--disableTelemetry",
                ]);
            cmd
        })?;
        Ok(Azurite { process })
    }

    /// The loopback port Azurite's blob service listens on.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The blob service root, `http://127.0.0.1:<port>` (what the Azure SDKs call
    /// `AZURITE_BLOB_STORAGE_URL`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The account URL, `http://127.0.0.1:<port>/devstoreaccount1`: Azurite puts the
    /// account in the path where Azure puts it in the host name.
    pub fn account_url(&self) -> String {
        format!("{}/{}", self.endpoint(), Self::ACCOUNT)
    }

    /// Creates a blob container; succeeds if it already exists. object_store cannot
    /// create containers, so this signs a Shared Key request itself.
    pub fn create_container(&self, name: &str) -> Result<()> {
        validate_container_name(name)?;
        let date = OffsetDateTime::now_utc()
            .format(format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .map_err(|e| Error::Io {
                context: "formatting the request date".to_string(),
                source: std::io::Error::other(e),
            })?;
        let path = format!("/{}/{name}", Self::ACCOUNT);
        // https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key
        // Twelve standard headers, all empty here (Content-Length 0 is sent as empty),
        // then the canonicalized x-ms-* headers and resource.
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n/{account}{path}\nrestype:container",
            account = Self::ACCOUNT
        );
        let authorization = format!("SharedKey {}:{}", Self::ACCOUNT, sign(Self::ACCOUNT_KEY, &string_to_sign)?);
        let what = format!("creating Azurite container {name:?}");
        let response = http::send(
            self.port(),
            "PUT",
            &format!("{path}?restype=container"),
            &[("x-ms-date", date), ("x-ms-version", API_VERSION.to_string()), ("Authorization", authorization)],
            &what,
        )?;
        match response.status {
            201 => Ok(()),
            409 if response.body.contains("ContainerAlreadyExists") => Ok(()),
            status => Err(Error::Status { what, status, body: response.body }),
        }
    }

    /// The options that point `object_store`'s Azure client at this server, as
    /// environment-variable names `MicrosoftAzureBuilder::from_env()` reads. Each name,
    /// lowercased, is also a valid `AzureConfigKey`.
    ///
    /// This uses an explicit endpoint rather than `AZURE_STORAGE_USE_EMULATOR`: in
    /// emulator mode object_store 0.12 reads the server URL from the *process*
    /// environment (`AZURITE_BLOB_STORAGE_URL`) at build time, which cannot be set per
    /// client and races between parallel tests.
    pub fn object_store_env(&self) -> Vec<(String, String)> {
        [
            ("AZURE_STORAGE_ACCOUNT_NAME", Self::ACCOUNT.to_string()),
            ("AZURE_STORAGE_ACCOUNT_KEY", Self::ACCOUNT_KEY.to_string()),
            ("AZURE_STORAGE_ENDPOINT", self.account_url()),
            ("AZURE_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// An `object_store` client for `container` (create it first with
    /// [`Self::create_container`]), configured from [`Self::object_store_env`] without
    /// touching the process environment.
    pub fn azure_store(&self, container: &str) -> Result<Arc<dyn ObjectStore>> {
        let mut builder = MicrosoftAzureBuilder::new().with_container_name(container);
        for (name, value) in self.object_store_env() {
            let key: AzureConfigKey = name.to_ascii_lowercase().parse()?;
            builder = builder.with_config(key, value);
        }
        Ok(Arc::new(builder.build()?))
    }
}

/// Base64 HMAC-SHA256 of `message` under the base64 `key`, as Shared Key wants.
fn sign(key: &str, message: &str) -> Result<String> {
    let key = BASE64_STANDARD.decode(key).map_err(|e| Error::Io {
        context: "decoding the Azurite account key".to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    Ok(BASE64_STANDARD.encode(ring::hmac::sign(&key, message.as_bytes())))
}

/// Azure's container naming rules, so a bad name fails here with a clear message.
fn validate_container_name(name: &str) -> Result<()> {
    let invalid = |rule| Err(Error::InvalidName { kind: "container", name: name.to_string(), rule });
    if !(3..=63).contains(&name.len()) {
        return invalid("must be 3 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return invalid("only lowercase letters, digits and '-' are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return invalid("'-' must not start or end the name or appear twice in a row");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_are_checked() {
        assert!(validate_container_name("backups-1").is_ok());
        for bad in ["ab", "Upper", "a--b", "-ab", "ab-", "a/b", "a?b=c", &"a".repeat(64)] {
            assert!(validate_container_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn signature_matches_a_known_value() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), base64.
        let key = BASE64_STANDARD.encode("key");
        assert_eq!(
            sign(&key, "The quick brown fox jumps over the lazy dog").unwrap(),
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
    }
}
