//! `offsite admin …`: administration through the service's API. Operator commands
//! use the operator credentials the server wrote into its data folder; subscription
//! commands use the subscription's publish-settings file (or operator credentials
//! plus `--subscription`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use offsite_api::files::{OperatorCredentials, PublishSettings, ServiceEndpoint, StationCredentials, VaultCredentials};
use offsite_api::types::{Datacenter, ManagementCredential, StationCredential, StorageAccount, Vault};
use offsite_api::Client;

use super::notifications::{self, NotificationCommand};
use super::protection::{self, ProtectionRequestCommand, VaultProtectionCommand};
use crate::display::when;
use offsite_api::XmlCredentialFile;

#[derive(Args)]
pub struct AdminArgs {
    /// The operator credentials file (written by `offsite server run` into its data folder).
    #[arg(long, global = true, env = "OFFSITE_OPERATOR_CREDENTIALS")]
    operator_credentials: Option<PathBuf>,
    /// A subscription's publish-settings file.
    #[arg(long, global = true, env = "OFFSITE_PUBLISH_SETTINGS")]
    publish_settings: Option<PathBuf>,
    /// The subscription to act on, when using operator credentials.
    #[arg(long, global = true)]
    subscription: Option<String>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Subscriptions (operator).
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// Vaults of a subscription.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Machines registered to a vault.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// Storage accounts of a subscription.
    #[command(subcommand, name = "storage-account")]
    StorageAccount(StorageAccountCommand),
    /// Containers of a storage account.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Datacenters and their shipping addresses.
    #[command(subcommand)]
    Datacenter(DatacenterCommand),
    /// The subscription's offline-seeding application and its certificates.
    #[command(subcommand)]
    Application(ApplicationCommand),
    /// People who sign in to the web portal (operator).
    #[command(subcommand, name = "portal-user")]
    PortalUser(PortalUserCommand),
    /// Requests to weaken a vault's protection, and an operator's decisions.
    #[command(subcommand, name = "protection-request")]
    ProtectionRequest(ProtectionRequestCommand),
    /// Alerts of a subscription (a machine's mass deletion).
    #[command(subcommand)]
    Alert(AlertCommand),
    /// E-mail and webhook notifications of a subscription.
    #[command(subcommand)]
    Notification(NotificationCommand),
}

#[derive(Subcommand)]
enum AlertCommand {
    /// The subscription's alerts, newest first.
    List,
}

#[derive(Subcommand)]
enum PortalUserCommand {
    /// Create a portal user of the subscription given with --subscription, or an
    /// operator with --operator. The password comes from OFFSITE_PORTAL_PASSWORD,
    /// --password-file, or a prompt.
    Create {
        email: String,
        /// Make an operator (sees every subscription and the datacenter pages).
        #[arg(long, conflicts_with = "subscription")]
        operator: bool,
        /// A file holding the password (one line).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    List,
    /// Disable a user: they cannot sign in, and their sessions end at once.
    Disable {
        /// Email address or id.
        user: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// Email address or id.
        user: String,
    },
    /// Remove a user for good; their sessions end at once.
    Remove {
        /// Email address or id.
        user: String,
    },
    /// Give a user a new password (from OFFSITE_PORTAL_PASSWORD, --password-file,
    /// or a prompt); their sessions end at once.
    #[command(name = "set-password")]
    SetPassword {
        /// Email address or id.
        user: String,
        /// A file holding the password (one line).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SubscriptionCommand {
    /// Create a subscription and write its publish-settings file.
    Create {
        name: String,
        /// Where to write the publish settings [default: NAME.publishsettings].
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    List,
    /// Issue another management credential and write it as a new publish-settings
    /// file (to rotate one, or for another administrator); older ones keep working
    /// until revoked.
    #[command(name = "issue-credential")]
    IssueCredential {
        /// Where to write the publish settings (never overwritten).
        #[arg(short, long)]
        output: PathBuf,
        /// Days until it stops working (1–3650) [default: until revoked]. Never
        /// later than the credential that issues it.
        #[arg(long)]
        valid_days: Option<u32>,
    },
    /// The subscription's management credentials (ids, when issued, expiry, revocation).
    Credentials,
    /// Set a subscription's storage quota (operator): BYTES (e.g. 500GiB, 2TB,
    /// 1000000) or `none`. Uploads that would pass it are refused.
    #[command(name = "set-quota")]
    SetQuota {
        /// The subscription's id.
        subscription_id: String,
        /// The most its machines' repositories may hold, or `none`.
        #[arg(value_parser = parse_quota)]
        bytes: Quota,
    },
    /// The subscription's storage quota and what counts against it.
    Quota,
    /// Revoke a management credential: every request with it is refused from now on.
    /// ID is the part of the publish settings' credential before the dot (see `credentials`).
    #[command(name = "revoke-credential")]
    RevokeCredential {
        id: String,
    },
}

#[derive(Subcommand)]
enum VaultCommand {
    Create {
        name: String,
    },
    List,
    /// Download vault credentials: they register one machine, once, before they expire.
    Credentials {
        /// Vault name or id.
        vault: String,
        #[arg(short, long)]
        output: PathBuf,
        /// Hours until the credentials expire (1–240).
        #[arg(long, default_value_t = 48)]
        valid_hours: u32,
    },
    /// Soft delete, immutability and the mass-deletion alert of a vault.
    #[command(subcommand)]
    Protection(VaultProtectionCommand),
}

#[derive(Subcommand)]
enum MachineCommand {
    /// Machines of a vault (name or id).
    List { vault: String },
    /// Remove a machine: its credential stops working at once; its recovery points stay.
    Remove { machine_id: String },
    /// What the machine removed that the vault still keeps, with purge dates.
    #[command(name = "soft-deleted")]
    SoftDeleted { machine_id: String },
    /// Bring back what the machine removed: the named recovery points (and the
    /// data they need), or everything.
    Undelete {
        machine_id: String,
        /// A soft-deleted recovery point (repeatable); none: everything.
        #[arg(long = "point", value_name = "ID")]
        points: Vec<String>,
    },
}

#[derive(Subcommand)]
enum StorageAccountCommand {
    Create { name: String },
    List,
}

#[derive(Subcommand)]
enum ContainerCommand {
    Create {
        name: String,
        #[arg(long)]
        storage_account: String,
    },
    List {
        #[arg(long)]
        storage_account: String,
    },
}

#[derive(Subcommand)]
enum DatacenterCommand {
    /// Add a datacenter; its import key pair is made here and only the public key is sent.
    Add {
        name: String,
        /// The shipping address (use \n or several lines).
        #[arg(long)]
        address: String,
        /// Where to write the import secret key (64 hex digits, mode 0600) for the
        /// datacenter's ingest stations; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        import_key_out: PathBuf,
    },
    List,
    /// Credentials of the datacenter's ingest stations: they receive packages and
    /// ingest drives of the import jobs shipped to that datacenter, nothing else.
    #[command(subcommand, name = "station-credential")]
    StationCredential(StationCredentialCommand),
}

#[derive(Subcommand)]
enum StationCredentialCommand {
    /// Issue a station credential and write it as a station credentials file
    /// (mode 0600) for `offsite datacenter --station-credentials FILE …`.
    Issue {
        /// The datacenter's name or id.
        datacenter: String,
        /// Where to write the station credentials (never overwritten).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Days until it stops working (1–3650) [default: until revoked].
        #[arg(long)]
        valid_days: Option<u32>,
    },
    /// The datacenter's station credentials (ids, when issued, expiry, revocation).
    List {
        /// The datacenter's name or id.
        datacenter: String,
    },
    /// Revoke a station credential: every request with it is refused from now on.
    /// ID is the part of the file's token before the dot (see `list`).
    Revoke {
        /// The datacenter's name or id.
        datacenter: String,
        id: String,
    },
}

#[derive(Subcommand)]
enum ApplicationCommand {
    /// Register another certificate of the application (the manual path: the
    /// certificate exported with `offsite certgen export-cert`, without its key).
    #[command(name = "upload-cert")]
    UploadCert {
        /// The certificate file with its proof of possession, as `offsite certgen
        /// export-cert --challenge CHALLENGE --out FILE` writes it.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
    },
    /// A challenge for a certificate upload: sign it on the machine that holds the
    /// key with `offsite certgen export-cert --challenge CHALLENGE` (single use,
    /// valid for a day).
    Challenge,
    /// Show the application and the thumbprints of its certificates.
    Show,
    /// Remove a certificate (a retired or lost machine's): requests signed with its
    /// key are refused from now on.
    #[command(name = "remove-cert")]
    RemoveCert { thumbprint: String },
}

pub(super) struct Session {
    pub(super) client: Client,
    endpoint: ServiceEndpoint,
    subscription_id: Option<String>,
    json: bool,
}

impl Session {
    fn operator(args: &AdminArgs) -> Result<Session> {
        let path = match &args.operator_credentials {
            Some(path) => path.clone(),
            None => bail!(
                "this command needs the operator credentials: pass --operator-credentials FILE \
                 (the server writes DATA_DIR/operator.credentials) or set OFFSITE_OPERATOR_CREDENTIALS"
            ),
        };
        let creds = OperatorCredentials::read(&path)?;
        let endpoint = creds.endpoint();
        Ok(Session {
            client: Client::new(&endpoint, &creds.token)?,
            endpoint,
            subscription_id: args.subscription.clone(),
            json: args.json,
        })
    }

    /// Publish settings when given, else operator credentials plus --subscription.
    fn subscription(args: &AdminArgs) -> Result<Session> {
        if let Some(path) = &args.publish_settings {
            let settings = PublishSettings::read(path)?;
            return Ok(Session {
                client: Client::new(&settings.service, &settings.management_credential)?,
                endpoint: settings.service.clone(),
                subscription_id: Some(settings.subscription_id),
                json: args.json,
            });
        }
        if args.operator_credentials.is_some() && args.subscription.is_none() {
            bail!("with operator credentials, name the subscription with --subscription ID");
        }
        if args.operator_credentials.is_none() {
            bail!("this command needs a subscription: pass --publish-settings FILE (or --operator-credentials FILE --subscription ID)");
        }
        Session::operator(args)
    }

    pub(super) fn subscription_id(&self) -> &str {
        self.subscription_id.as_deref().unwrap_or_default()
    }

    pub(super) fn vault(&self, name_or_id: &str) -> Result<Vault> {
        let vaults = self.client.list_vaults(self.subscription_id())?;
        vaults
            .into_iter()
            .find(|v| v.id == name_or_id || v.name == name_or_id)
            .with_context(|| format!("no vault '{name_or_id}' in this subscription (see `offsite admin vault list`)"))
    }

    fn datacenter(&self, name_or_id: &str) -> Result<Datacenter> {
        let datacenters = self.client.list_datacenters()?;
        datacenters
            .into_iter()
            .find(|d| d.id == name_or_id || d.name == name_or_id)
            .with_context(|| format!("no datacenter '{name_or_id}' (see `offsite admin datacenter list`)"))
    }

    fn storage_account(&self, name_or_id: &str) -> Result<StorageAccount> {
        let accounts = self.client.list_storage_accounts(self.subscription_id())?;
        accounts.into_iter().find(|a| a.id == name_or_id || a.name == name_or_id).with_context(|| {
            format!("no storage account '{name_or_id}' in this subscription (see `offsite admin storage-account list`)")
        })
    }

    /// Prints JSON, or the human form.
    pub(super) fn show<T: Serialize>(&self, value: &T, human: impl FnOnce(&T)) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            human(value);
        }
        Ok(())
    }
}

/// The new user's password: a file, OFFSITE_PORTAL_PASSWORD, or a prompt at a terminal.
fn portal_password(file: Option<&Path>) -> Result<String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the password file {}", path.display()))?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_string());
    }
    if let Ok(value) = std::env::var("OFFSITE_PORTAL_PASSWORD") {
        return Ok(value);
    }
    if !crate::prompt::interactive() {
        bail!("no password given: set OFFSITE_PORTAL_PASSWORD, or pass --password-file FILE");
    }
    let first = rpassword::prompt_password("Portal password: ").context("cannot read the password")?;
    let again = rpassword::prompt_password("Repeat the password: ").context("cannot read the password")?;
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

pub fn run(args: AdminArgs) -> Result<ExitCode> {
    match &args.command {
        AdminCommand::PortalUser(PortalUserCommand::Create { email, operator, password_file }) => {
            let session = Session::operator(&args)?;
            if !operator && args.subscription.is_none() {
                bail!("say whose user this is: --subscription ID for a subscription's user, or --operator");
            }
            let password = portal_password(password_file.as_deref())?;
            let user = session.client.create_portal_user(&offsite_api::types::CreatePortalUser {
                email: email.clone(),
                password,
                subscription_id: args.subscription.clone(),
            })?;
            session.show(&user, |u| match &u.subscription_id {
                Some(id) => println!("portal user {} created for subscription {id}", u.email),
                None => println!("portal user {} created: an operator", u.email),
            })?;
        }
        AdminCommand::PortalUser(PortalUserCommand::List) => {
            let session = Session::operator(&args)?;
            session.show(&session.client.list_portal_users()?, |list| {
                for u in list {
                    let role =
                        u.subscription_id.as_deref().map(|s| format!("subscription {s}")).unwrap_or("operator".into());
                    let disabled = u.disabled.map(|t| format!("  disabled since {}", when(t))).unwrap_or_default();
                    println!("{}  {}  {role}  created {}{disabled}", u.id, u.email, when(u.created));
                }
            })?;
        }
        AdminCommand::PortalUser(
            command @ (PortalUserCommand::Disable { user }
            | PortalUserCommand::Enable { user }
            | PortalUserCommand::Remove { user }
            | PortalUserCommand::SetPassword { user, .. }),
        ) => {
            let session = Session::operator(&args)?;
            let found = portal_user(&session, user)?;
            let (changed, done) = match command {
                PortalUserCommand::Disable { .. } => {
                    (session.client.set_portal_user_disabled(&found.id, true)?, "disabled: their sessions ended")
                }
                PortalUserCommand::Enable { .. } => {
                    (session.client.set_portal_user_disabled(&found.id, false)?, "enabled")
                }
                PortalUserCommand::Remove { .. } => {
                    (session.client.remove_portal_user(&found.id)?, "removed: their sessions ended")
                }
                PortalUserCommand::SetPassword { password_file, .. } => {
                    let password = portal_password(password_file.as_deref())?;
                    (
                        session.client.set_portal_user_password(&found.id, &password)?,
                        "has a new password: their sessions ended",
                    )
                }
                _ => unreachable!("matched above"),
            };
            session.show(&changed, |u| println!("portal user {} {done}", u.email))?;
        }
        AdminCommand::Subscription(SubscriptionCommand::SetQuota { subscription_id, bytes }) => {
            let session = Session::operator(&args)?;
            let quota = session.client.set_storage_quota(subscription_id, bytes.0)?;
            session.show(&quota, print_quota)?;
        }
        AdminCommand::Subscription(SubscriptionCommand::Quota) => {
            let session = Session::subscription(&args)?;
            session.show(&session.client.storage_quota(session.subscription_id())?, print_quota)?;
        }
        AdminCommand::Subscription(SubscriptionCommand::Create { name, output }) => {
            let session = Session::operator(&args)?;
            let created = session.client.create_subscription(name)?;
            let settings = PublishSettings {
                service: session.endpoint.clone(),
                subscription_id: created.subscription.id.clone(),
                subscription_name: created.subscription.name.clone(),
                management_credential: created.management_credential.clone(),
                expires: None,
            };
            let path = output.clone().unwrap_or_else(|| PathBuf::from(format!("{name}.publishsettings")));
            settings.write(&path)?;
            #[derive(Serialize)]
            struct Out<'a> {
                subscription: &'a offsite_api::types::Subscription,
                publish_settings: &'a Path,
            }
            session.show(&Out { subscription: &created.subscription, publish_settings: &path }, |out| {
                println!("subscription {} created: {}", out.subscription.name, out.subscription.id);
                println!(
                    "publish settings written to {} (keep it private: it manages the subscription)",
                    path.display()
                );
            })?;
        }
        AdminCommand::Subscription(SubscriptionCommand::List) => {
            let session = Session::operator(&args)?;
            session.show(&session.client.list_subscriptions()?, |list| {
                for s in list {
                    println!("{}  {}  created {}", s.id, s.name, when(s.created));
                }
            })?;
        }
        AdminCommand::Subscription(SubscriptionCommand::IssueCredential { output, valid_days }) => {
            let session = Session::subscription(&args)?;
            if output.exists() {
                bail!("{} exists already: choose another path for the new publish settings", output.display());
            }
            let subscription = session.client.subscription(session.subscription_id())?;
            let issued = session.client.issue_management_credential(&subscription.id, *valid_days)?;
            let settings = PublishSettings {
                service: session.endpoint.clone(),
                subscription_id: subscription.id.clone(),
                subscription_name: subscription.name.clone(),
                management_credential: issued.management_credential.clone(),
                expires: issued.credential.expires,
            };
            settings.write(output)?;
            #[derive(Serialize)]
            struct Out<'a> {
                credential: &'a ManagementCredential,
                publish_settings: &'a Path,
                expires_with_issuer: bool,
            }
            let out = Out {
                credential: &issued.credential,
                publish_settings: output,
                expires_with_issuer: issued.expires_with_issuer,
            };
            session.show(&out, |out| {
                let until = match out.credential.expires {
                    Some(t) if out.expires_with_issuer => {
                        format!("valid until {}, when the credential that issued it expires", when(t))
                    }
                    Some(t) => format!("valid until {}", when(t)),
                    None => "valid until revoked: it has no expiry (pass --valid-days N to limit one)".to_string(),
                };
                println!("management credential {} issued, {until}", out.credential.id);
                println!("publish settings written to {} (keep it private)", output.display());
            })?;
        }
        AdminCommand::Subscription(SubscriptionCommand::Credentials) => {
            let session = Session::subscription(&args)?;
            session.show(&session.client.management_credentials(session.subscription_id())?, |list| {
                for c in list {
                    println!("{}  {}", c.id, credential_status(c.created, c.expires, c.revoked));
                }
            })?;
        }
        AdminCommand::Subscription(SubscriptionCommand::RevokeCredential { id }) => {
            let session = Session::subscription(&args)?;
            let revoked = session.client.revoke_management_credential(session.subscription_id(), id)?;
            session.show(&revoked, |c| {
                println!("management credential {}: {}", c.id, credential_status(c.created, c.expires, c.revoked))
            })?;
        }
        AdminCommand::Vault(VaultCommand::Create { name }) => {
            let session = Session::subscription(&args)?;
            let vault = session.client.create_vault(session.subscription_id(), name)?;
            session.show(&vault, |v| println!("vault {} created: {}", v.name, v.id))?;
        }
        AdminCommand::Vault(VaultCommand::List) => {
            let session = Session::subscription(&args)?;
            session.show(&session.client.list_vaults(session.subscription_id())?, |list| {
                for v in list {
                    println!("{}  {}  created {}", v.id, v.name, when(v.created));
                }
            })?;
        }
        AdminCommand::Vault(VaultCommand::Credentials { vault, output, valid_hours }) => {
            let session = Session::subscription(&args)?;
            let vault = session.vault(vault)?;
            let issued = session.client.vault_credentials(&vault.id, Some(*valid_hours))?;
            let (expires, capped) = (issued.expires, issued.expires_with_issuer);
            VaultCredentials::issued(session.endpoint.clone(), issued).write(output)?;
            #[derive(Serialize)]
            struct Out<'a> {
                vault_id: &'a str,
                file: &'a Path,
                #[serde(with = "time::serde::rfc3339")]
                expires: time::OffsetDateTime,
            }
            session.show(&Out { vault_id: &vault.id, file: output, expires }, |out| {
                println!(
                    "vault credentials for '{}' written to {}: they register one machine and expire at {}{}",
                    vault.name,
                    out.file.display(),
                    when(out.expires),
                    if capped { ", when the credential that issued them expires" } else { "" }
                );
            })?;
        }
        AdminCommand::Machine(MachineCommand::List { vault }) => {
            let session = Session::subscription(&args)?;
            let vault = session.vault(vault)?;
            session.show(&session.client.list_machines(&vault.id)?, |list| {
                for m in list {
                    let state = if m.removed.is_some() { "removed" } else { "registered" };
                    let last = m.last_backup.map(when).unwrap_or_else(|| "never".into());
                    println!("{}  {} ({})  {}  last backup {}", m.id, m.name, m.hostname, state, last);
                }
            })?;
        }
        AdminCommand::Machine(MachineCommand::Remove { machine_id }) => {
            let session = Session::subscription(&args)?;
            let machine = session.client.remove_machine(machine_id)?;
            session.show(&machine, |_| println!("machine {machine_id} removed; its credential no longer works"))?;
        }
        AdminCommand::Machine(MachineCommand::SoftDeleted { machine_id }) => {
            protection::soft_deleted(&Session::subscription(&args)?, machine_id)?;
        }
        AdminCommand::Machine(MachineCommand::Undelete { machine_id, points }) => {
            protection::undelete(&Session::subscription(&args)?, machine_id, points)?;
        }
        AdminCommand::Vault(VaultCommand::Protection(command)) => {
            protection::vault_protection(&Session::subscription(&args)?, command)?;
        }
        AdminCommand::ProtectionRequest(command) => {
            // The subscription lists its own; an operator lists all and decides.
            let session =
                if args.publish_settings.is_some() { Session::subscription(&args)? } else { Session::operator(&args)? };
            protection::protection_request(&session, command)?;
        }
        AdminCommand::Notification(command) => {
            notifications::run(&Session::subscription(&args)?, command)?;
        }
        AdminCommand::Alert(AlertCommand::List) => {
            protection::alerts(&Session::subscription(&args)?)?;
        }
        AdminCommand::StorageAccount(StorageAccountCommand::Create { name }) => {
            let session = Session::subscription(&args)?;
            let account = session.client.create_storage_account(session.subscription_id(), name)?;
            session.show(&account, |a| println!("storage account {} created: {}", a.name, a.id))?;
        }
        AdminCommand::StorageAccount(StorageAccountCommand::List) => {
            let session = Session::subscription(&args)?;
            session.show(&session.client.list_storage_accounts(session.subscription_id())?, |list| {
                for a in list {
                    println!("{}  {}", a.id, a.name);
                }
            })?;
        }
        AdminCommand::Container(ContainerCommand::Create { name, storage_account }) => {
            let session = Session::subscription(&args)?;
            let account = session.storage_account(storage_account)?;
            let container = session.client.create_container(&account.id, name)?;
            session.show(&container, |c| println!("container {} created in {}: {}", c.name, account.name, c.id))?;
        }
        AdminCommand::Container(ContainerCommand::List { storage_account }) => {
            let session = Session::subscription(&args)?;
            let account = session.storage_account(storage_account)?;
            session.show(&session.client.list_containers(&account.id)?, |list| {
                for c in list {
                    println!("{}  {}", c.id, c.name);
                }
            })?;
        }
        AdminCommand::Datacenter(DatacenterCommand::Add { name, address, import_key_out }) => {
            let session = Session::operator(&args)?;
            let address = address.replace("\\n", "\n");
            if import_key_out.symlink_metadata().is_ok() {
                bail!(
                    "{} exists: it may hold the import key of drives already prepared. Choose another --import-key-out",
                    import_key_out.display()
                );
            }
            let (secret, public) = offsite_api::import_key::generate_import_key();
            // The secret is written first: a datacenter must not exist whose key is lost.
            offsite_api::import_key::write_import_secret(import_key_out, &secret)?;
            let dc = match session.client.add_datacenter(name, &address, &hex_of(&public)) {
                Ok(dc) => dc,
                Err(err) => {
                    let _ = std::fs::remove_file(import_key_out);
                    return Err(err.into());
                }
            };
            #[derive(Serialize)]
            struct Out<'a> {
                datacenter: &'a offsite_api::types::Datacenter,
                import_key_file: &'a Path,
            }
            session.show(&Out { datacenter: &dc, import_key_file: import_key_out }, |out| {
                println!("datacenter {} added: {}", out.datacenter.name, out.datacenter.id);
                println!(
                    "import secret key written to {} (mode 0600): give it to the datacenter's ingest stations only",
                    import_key_out.display()
                );
            })?;
        }
        AdminCommand::Datacenter(DatacenterCommand::List) => {
            let session =
                if args.publish_settings.is_some() { Session::subscription(&args)? } else { Session::operator(&args)? };
            session.show(&session.client.list_datacenters()?, |list| {
                for d in list {
                    println!("{}  {}\n    {}", d.id, d.name, d.address.replace('\n', "\n    "));
                }
            })?;
        }
        AdminCommand::Datacenter(DatacenterCommand::StationCredential(StationCredentialCommand::Issue {
            datacenter,
            output,
            valid_days,
        })) => {
            let session = Session::operator(&args)?;
            if output.symlink_metadata().is_ok() {
                bail!("{} exists already: choose another path for the station credentials", output.display());
            }
            let datacenter = session.datacenter(datacenter)?;
            // The station's custody signing key: its public half registered with the
            // credential, its secret only in the file.
            let signing_key = offsite_seeding::custody::StationKey::generate();
            let issued = session.client.issue_station_credential_with_key(
                &datacenter.id,
                *valid_days,
                Some(&signing_key.public_hex()),
            )?;
            let creds = StationCredentials {
                url: session.endpoint.url.clone(),
                fingerprint: session.endpoint.fingerprint.clone(),
                datacenter_id: datacenter.id.clone(),
                datacenter: datacenter.name.clone(),
                token: issued.station_credential.clone(),
                signing_key: Some(signing_key.secret_hex()),
            };
            creds.write(output)?;
            #[derive(Serialize)]
            struct Out<'a> {
                credential: &'a StationCredential,
                datacenter: &'a str,
                station_credentials: &'a Path,
            }
            let out = Out { credential: &issued.credential, datacenter: &datacenter.name, station_credentials: output };
            session.show(&out, |out| {
                let until = out.credential.expires.map(|t| format!(", valid until {}", when(t))).unwrap_or_default();
                println!("station credential {} issued for datacenter {}{until}", out.credential.id, out.datacenter);
                println!(
                    "station credentials written to {} (mode 0600): give it to the datacenter's ingest stations \
                     only, which pass it with --station-credentials (or OFFSITE_STATION_CREDENTIALS)",
                    output.display()
                );
            })?;
        }
        AdminCommand::Datacenter(DatacenterCommand::StationCredential(StationCredentialCommand::List {
            datacenter,
        })) => {
            let session = Session::operator(&args)?;
            let datacenter = session.datacenter(datacenter)?;
            session.show(&session.client.station_credentials(&datacenter.id)?, |list| {
                if list.is_empty() {
                    println!("datacenter {} has no station credentials", datacenter.name);
                }
                for c in list {
                    println!("{}  {}", c.id, credential_status(c.created, c.expires, c.revoked));
                }
            })?;
        }
        AdminCommand::Datacenter(DatacenterCommand::StationCredential(StationCredentialCommand::Revoke {
            datacenter,
            id,
        })) => {
            let session = Session::operator(&args)?;
            let datacenter = session.datacenter(datacenter)?;
            let revoked = session.client.revoke_station_credential(&datacenter.id, id)?;
            session.show(&revoked, |c| {
                println!("station credential {}: {}", c.id, credential_status(c.created, c.expires, c.revoked))
            })?;
        }
        AdminCommand::Application(ApplicationCommand::UploadCert { cert }) => {
            let session = Session::subscription(&args)?;
            let bytes = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
            // The service parses the certificate fully and refuses private keys.
            let text = offsite_api::application_auth::certificate_text(&bytes);
            let possession = offsite_api::possession::find_block(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?
                .with_context(|| {
                    format!(
                        "{} has no proof of possession, which every certificate upload needs: get a challenge with \
                         `offsite admin application challenge`, then on the machine that holds the certificate's key \
                         run `offsite certgen export-cert --challenge CHALLENGE --out {}` and upload that file",
                        cert.display(),
                        cert.display()
                    )
                })?;
            let upload = offsite_api::types::UploadCertificate { certificate: text, possession: Some(possession) };
            let application = session.client.upload_application_certificate(session.subscription_id(), &upload)?;
            session.show(&application, |app| {
                println!("certificate uploaded to application {}:", app.id);
                print_certificates(app);
                println!("record its thumbprint on the agent with `offsite certgen add-agent-entries`");
            })?;
        }
        AdminCommand::Application(ApplicationCommand::Challenge) => {
            let session = Session::subscription(&args)?;
            let challenge = session.client.certificate_challenge(session.subscription_id())?;
            session.show(&challenge, |c| {
                println!("challenge {} (single use, valid until {})", c.challenge, crate::display::when(c.expires));
                println!(
                    "next, on the machine that holds the certificate's key: offsite certgen export-cert --challenge {} \
                     --out offsite-application.cer",
                    c.challenge
                );
            })?;
        }
        AdminCommand::Application(ApplicationCommand::RemoveCert { thumbprint }) => {
            let session = Session::subscription(&args)?;
            let application = session.client.remove_application_certificate(session.subscription_id(), thumbprint)?;
            session.show(&application, |app| {
                println!("certificate {thumbprint} removed from application {}; it keeps:", app.id);
                print_certificates(app);
            })?;
        }
        AdminCommand::Application(ApplicationCommand::Show) => {
            let session = Session::subscription(&args)?;
            let application = session.client.application(session.subscription_id())?;
            session.show(&application, |app| {
                println!(
                    "application {} of subscription {}, created {}",
                    app.id,
                    app.subscription_id,
                    when(app.created)
                );
                print_certificates(app);
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A storage quota in bytes; `None` for no quota.
#[derive(Debug, Clone, Copy)]
struct Quota(Option<u64>);

fn parse_quota(text: &str) -> Result<Quota, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Quota(None));
    }
    super::diskprep::parse_size(text).map(|bytes| Quota(Some(bytes))).map_err(|e| format!("{e:#}, or `none`"))
}

fn print_quota(q: &offsite_api::types::StorageQuota) {
    use offsite_api::size::ByteSize;
    let quota = q.quota_bytes.map(|b| format!("{} ({b} bytes)", ByteSize(b))).unwrap_or_else(|| "none".into());
    println!("subscription {}: storage quota {quota}", q.subscription_id);
    println!(
        "  used {} ({} bytes), of which {} soft-deleted (counted until purged)",
        ByteSize(q.used_bytes),
        q.used_bytes,
        ByteSize(q.soft_deleted_bytes)
    );
}

/// A portal user by email address or id.
fn portal_user(session: &Session, user: &str) -> Result<offsite_api::types::PortalUser> {
    let wanted = user.trim().to_lowercase();
    session
        .client
        .list_portal_users()?
        .into_iter()
        .find(|u| u.id == user || u.email == wanted)
        .with_context(|| format!("no portal user '{user}' (see `offsite admin portal-user list`)"))
}

/// "issued …, valid until …, revoked …".
fn credential_status(
    created: time::OffsetDateTime,
    expires: Option<time::OffsetDateTime>,
    revoked: Option<time::OffsetDateTime>,
) -> String {
    let mut text = format!("issued {}", when(created));
    if let Some(t) = expires {
        text.push_str(&format!(", valid until {}", when(t)));
    }
    if let Some(t) = revoked {
        text.push_str(&format!(", revoked {}", when(t)));
    }
    text
}

fn print_certificates(app: &offsite_api::types::Application) {
    for c in &app.certificates {
        let until = c.not_after.map(|t| format!(", valid until {}", when(t))).unwrap_or_default();
        let stops = c
            .expires
            .map(|t| format!(", signs until {} (when the credential that registered it expires)", when(t)))
            .unwrap_or_default();
        println!("  certificate {}  added {}{until}{stops}", c.thumbprint, when(c.added));
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
