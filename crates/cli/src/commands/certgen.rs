//! `offsite certgen …`: prepares the source machine for offline seeding, as the
//! seed's AzureOfflineBackupCertGen tool does. It creates the subscription's
//! offline-seeding application identity (a key pair whose private half stays here),
//! writes `OfflineApplicationParams.xml`, and writes the agent-side entries. When
//! the application already exists it says so and guides the manual path: export
//! the certificate with a proof of possession, upload it, record its thumbprint.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use offsite_agent::home::shell_word;
use offsite_agent::offline_application::{self, ApplicationFiles};
use offsite_agent::AgentHome;
use offsite_api::files::PublishSettings;
use offsite_api::types::UploadCertificate;
use offsite_api::{Client, XmlCredentialFile};
use offsite_seeding::application::{self as app, OfflineApplicationParams};

/// Where the manual path exports the certificate to.
const CER: &str = "offsite-application.cer";

#[derive(Args)]
pub struct CertgenArgs {
    /// The agent's folder (as `offsite agent --agent-home`); default: the usual places.
    #[arg(long, global = true, env = "OFFSITE_AGENT_HOME")]
    agent_home: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CertgenCommand,
}

#[derive(Subcommand)]
enum CertgenCommand {
    /// Create the subscription's offline-seeding application with a new certificate
    /// and write OfflineApplicationParams.xml.
    CreateApplication {
        #[arg(long)]
        subscription: String,
        /// The subscription's publish-settings file (from the portal or `offsite admin subscription create`).
        #[arg(long, env = "OFFSITE_PUBLISH_SETTINGS")]
        publish_settings: Option<PathBuf>,
        /// Where to write OfflineApplicationParams.xml.
        #[arg(long, default_value = "OfflineApplicationParams.xml")]
        params_out: PathBuf,
    },
    /// Export the application certificate without its private key (DER, or PEM with
    /// --pem). With --challenge, the file is PEM and carries a proof of possession:
    /// the challenge signed with the key, which every certificate upload needs.
    ExportCert {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        pem: bool,
        /// A challenge from `offsite admin application challenge` or the portal's
        /// application page (single use, valid for a day).
        #[arg(long)]
        challenge: Option<String>,
    },
    /// Print this user's id, under which the agent records the certificate thumbprint.
    ShowUserId,
    /// Write the agent-side entries: OfflineApplicationParams_<storage account>.xml
    /// and the certificate thumbprint in the agent configuration.
    AddAgentEntries {
        #[arg(long)]
        subscription: String,
        /// The OfflineApplicationParams.xml written by create-application.
        #[arg(long)]
        params_file: PathBuf,
        #[arg(long)]
        storage_account: String,
    },
}

#[derive(Serialize)]
struct Created {
    application_id: String,
    subscription_id: String,
    thumbprint: String,
    created: bool,
    key_file: PathBuf,
    certificate_file: PathBuf,
    params_file: PathBuf,
}

pub fn run(args: CertgenArgs) -> Result<ExitCode> {
    let home = match &args.agent_home {
        Some(folder) => AgentHome::in_folder(folder),
        None => AgentHome::default_locations(),
    };
    let files = ApplicationFiles::of(&home);
    match args.command {
        CertgenCommand::CreateApplication { subscription, publish_settings, params_out } => {
            let Some(path) = publish_settings else {
                bail!(
                    "certgen needs the subscription's publish settings: pass --publish-settings FILE \
                     (download it from the portal, or `offsite admin subscription create`)"
                );
            };
            let settings = PublishSettings::read(&path)?;
            if settings.subscription_id != subscription {
                bail!(
                    "{} is for subscription {}, not {subscription}: use that subscription's publish settings",
                    path.display(),
                    settings.subscription_id
                );
            }
            let client = Client::new(&settings.service, &settings.management_credential)?;
            let existing = match client.application(&subscription) {
                Ok(application) => Some(application),
                Err(err) if err.status() == Some(404) => None,
                Err(err) => return Err(err.into()),
            };
            let have_key = files.key_file().exists();
            let (thumbprint, generated_now) = if have_key {
                (app::thumbprint(&files.certificate_der()?), false)
            } else {
                let generated = app::generate(&subscription)?;
                files.save_generated(&home, &generated.key_pem, &generated.cert_pem)?;
                (generated.thumbprint, true)
            };
            let (application, created) = match existing {
                Some(application) => (application, false),
                None => {
                    let cert_pem = std::fs::read_to_string(files.certificate_file())
                        .with_context(|| format!("cannot read {}", files.certificate_file().display()))?;
                    let challenge = client.certificate_challenge(&subscription)?;
                    let upload = UploadCertificate {
                        certificate: cert_pem,
                        possession: Some(files.prove_possession(&challenge.challenge)?),
                    };
                    (client.create_application(&subscription, &upload)?, true)
                }
            };
            let params = OfflineApplicationParams {
                service: settings.service.clone(),
                subscription_id: subscription.clone(),
                application_id: application.id.clone(),
                cert_thumbprint: thumbprint.clone(),
                storage_account: None,
            };
            params.write(&params_out)?;
            let add_entries = home.command(&format!(
                "certgen add-agent-entries --subscription {} --params-file {} --storage-account NAME",
                shell_word(&subscription),
                shell_word(&params_out.display().to_string())
            ));
            let known = application.certificates.iter().any(|c| c.thumbprint == thumbprint);
            let out = Created {
                application_id: application.id.clone(),
                subscription_id: subscription.clone(),
                thumbprint: thumbprint.clone(),
                created,
                key_file: files.key_file(),
                certificate_file: files.certificate_file(),
                params_file: params_out.clone(),
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if created {
                println!("offline-seeding application {} created for subscription {subscription}", application.id);
                println!("certificate thumbprint: {thumbprint}");
                println!("private key: {} (mode 0600; it never leaves this machine)", files.key_file().display());
                println!("wrote {}", params_out.display());
                println!("next: {add_entries}");
            }
            if !created && !known {
                // The upload must prove possession of this machine's key: the
                // challenge is signed by step 1, here, where the key is.
                let challenge = client.certificate_challenge(&subscription)?;
                let export =
                    home.command(&format!("certgen export-cert --challenge {} --out {CER}", challenge.challenge));
                let upload = format!(
                    "offsite admin --publish-settings {} application upload-cert --cert {CER}",
                    shell_word(&path.display().to_string())
                );
                // Said even with --json: the application was not created and the
                // user has manual steps to do.
                eprintln!(
                    "The subscription already has an offline-seeding application ({}); certgen did not create \
                     another.\n{} this machine's certificate (thumbprint {thumbprint}). To use it, follow the manual \
                     path:\n  1. {export}\n  2. {upload} (or upload it in the portal)\n  3. {add_entries}\n     \
                     (records thumbprint {thumbprint} under user id {})",
                    application.id,
                    if generated_now { "A new key pair was made for" } else { "The service does not know" },
                    app::user_id()
                );
                return Ok(ExitCode::from(crate::exit::MANUAL_STEPS));
            }
            if !created && !args.json {
                println!(
                    "the subscription's application {} already knows this machine's certificate ({thumbprint}); \
                     wrote {}",
                    application.id,
                    params_out.display()
                );
            }
        }
        CertgenCommand::ExportCert { out, pem, challenge } => {
            let der = files.certificate_der()?;
            let pem = pem || out.extension().is_some_and(|e| e == "pem");
            if let Some(challenge) = &challenge {
                let proof = files.prove_possession(challenge)?;
                let text = std::fs::read_to_string(files.certificate_file())?;
                let text = if text.ends_with('\n') { text } else { format!("{text}\n") };
                write_new(&out, format!("{text}{}", offsite_api::possession::block(&proof)).as_bytes())?;
            } else if pem {
                let text = std::fs::read_to_string(files.certificate_file())?;
                write_new(&out, text.as_bytes())?;
            } else {
                write_new(&out, &der)?;
            }
            if args.json {
                println!("{}", serde_json::json!({ "file": out, "thumbprint": app::thumbprint(&der) }));
            } else {
                println!(
                    "wrote the certificate (no private key{}) to {}; thumbprint {}",
                    if challenge.is_some() { ", with its proof of possession" } else { "" },
                    out.display(),
                    app::thumbprint(&der)
                );
            }
        }
        CertgenCommand::ShowUserId => {
            let id = app::user_id();
            if args.json {
                println!("{}", serde_json::json!({ "user_id": id, "entry": app::thumbprint_entry(&id) }));
            } else {
                println!("{id}");
            }
        }
        CertgenCommand::AddAgentEntries { subscription, params_file, storage_account } => {
            let params = OfflineApplicationParams::read(&params_file)?;
            if params.subscription_id != subscription {
                bail!("{} is for subscription {}, not {subscription}", params_file.display(), params.subscription_id);
            }
            let written = offline_application::add_entries(&home, &params, &storage_account)?;
            if args.json {
                println!("{}", serde_json::json!({ "params_file": written, "config": home.config_file }));
            } else {
                println!("wrote {}", written.display());
                println!(
                    "recorded {} = {} in {}",
                    app::thumbprint_entry(&app::user_id()),
                    params.cert_thumbprint,
                    home.config_file.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses to replace an existing file: an export never overwrites.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path).with_context(|| {
        format!("cannot create {} (an existing file is never replaced; choose another name)", path.display())
    })?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
