//! Datacenters, their shipping addresses and import public keys: operators add
//! them; every authenticated caller but a station may read them (customers ship
//! drives there, encrypted to the datacenter's import key). Operators issue each
//! datacenter's ingest stations their own credentials.

use offsite_api::types::{
    CreateDatacenter, Datacenter, IssueStationCredential, StationCredential, StationCredentialIssued,
};

use crate::db::{time_of, CredentialKind, CredentialRow};
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::secrets;
use crate::state::AppState;

pub async fn add(state: &AppState, principal: &Principal, body: CreateDatacenter) -> ApiResult<Datacenter> {
    principal.require_operator()?;
    super::check_name("datacenter", &body.name)?;
    if body.address.trim().is_empty() || body.address.len() > 1000 {
        return Err(Failure::BadRequest("the shipping address must be 1 to 1000 characters".into()));
    }
    let key = offsite_api::import_key::parse_key_hex(&body.import_public_key).map_err(|reason| {
        Failure::BadRequest(format!(
            "the import public key is not usable: {reason}. `offsite admin datacenter add --import-key-out FILE` \
             makes a key pair"
        ))
    })?;
    let datacenter = Datacenter {
        id: secrets::new_id("dc"),
        name: body.name,
        address: body.address,
        import_public_key: hex::encode(key),
    };
    state.db.insert_datacenter(&datacenter).await?;
    Ok(datacenter)
}

pub async fn list(state: &AppState, principal: &Principal) -> ApiResult<Vec<Datacenter>> {
    if matches!(principal, Principal::Registration { .. }) {
        return Err(Failure::Forbidden("vault credentials can only register a machine".into()));
    }
    if principal.is_station() {
        return Err(station_refused());
    }
    Ok(state.db.datacenters().await?)
}

/// What a station credential hears outside its datacenter's ingest steps.
pub(crate) fn station_refused() -> Failure {
    Failure::Forbidden(
        "a station credential only receives and ingests its datacenter's import jobs (offsite datacenter …); \
         use the operator credentials for anything else"
            .into(),
    )
}

/// Ten years: the longest a station credential may be issued for.
const MAX_STATION_DAYS: u32 = 3650;

fn station_view(row: &CredentialRow, signing_key: Option<String>) -> StationCredential {
    StationCredential {
        id: row.id.clone(),
        datacenter_id: row.subject.clone(),
        created: time_of(row.created),
        expires: row.expires.map(time_of),
        revoked: row.revoked.map(time_of),
        signing_key,
    }
}

/// The public key a station credential signs custody events with, if it has one.
async fn signing_key_of(state: &AppState, credential_id: &str) -> ApiResult<Option<String>> {
    let actor = offsite_seeding::custody::station_actor(credential_id);
    Ok(state.db.custody_key(&actor).await?.map(|k| k.public_key))
}

/// An Ed25519 public key in 64 hex digits, kept lowercase.
fn check_signing_key(text: &str) -> ApiResult<String> {
    let ok = text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) && text.bytes().any(|b| b != b'0');
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(Failure::BadRequest(format!(
            "'{text}' is not an Ed25519 public key: give its 32 bytes in 64 hex digits (`offsite admin datacenter \
             station-credential issue` makes the key pair)"
        )))
    }
}

/// A datacenter the operator names, or "not found".
async fn operated(state: &AppState, principal: &Principal, datacenter_id: &str) -> ApiResult<Datacenter> {
    principal.require_operator()?;
    state
        .db
        .datacenter(datacenter_id)
        .await?
        .ok_or_else(|| Failure::not_found(format!("datacenter {datacenter_id} (GET /datacenters lists them)")))
}

/// Issues a credential for one of the datacenter's ingest stations (operators),
/// for a limited time if asked; returned once. It receives packages and ingests
/// drives of the import jobs shipped to this datacenter and does nothing else, so
/// the operator credential never has to sit on a station.
pub async fn issue_station_credential(
    state: &AppState,
    principal: &Principal,
    datacenter_id: &str,
    body: IssueStationCredential,
) -> ApiResult<StationCredentialIssued> {
    let datacenter = operated(state, principal, datacenter_id).await?;
    let expires = match body.valid_days {
        None => None,
        Some(days @ 1..=MAX_STATION_DAYS) => Some(state.now().unix_timestamp() + i64::from(days) * 86_400),
        Some(days) => {
            return Err(Failure::BadRequest(format!(
                "a station credential is valid for 1 to {MAX_STATION_DAYS} days, not {days}; leave valid_days out \
                 for one that works until revoked"
            )))
        }
    };
    let signing_key = body.signing_key.as_deref().map(check_signing_key).transpose()?;
    let (token, row) = state.db.issue_credential_row(CredentialKind::Station, &datacenter.id, expires).await?;
    // The key custody events of this credential must verify under, from its first day.
    if let Some(public_key) = &signing_key {
        let key = offsite_api::types::CustodyKey {
            actor: offsite_seeding::custody::station_actor(&row.id),
            algorithm: offsite_seeding::custody::ED25519.into(),
            public_key: public_key.clone(),
            description: format!("station credential {} of datacenter {}", row.id, datacenter.name),
            registered: time_of(row.created),
        };
        state.db.insert_custody_key(&key).await?;
    }
    tracing::info!(datacenter = %datacenter.id, credential = %row.id, "station credential issued");
    Ok(StationCredentialIssued { credential: station_view(&row, signing_key), station_credential: token })
}

/// The datacenter's station credentials, revoked ones too; never their secrets.
pub async fn list_station_credentials(
    state: &AppState,
    principal: &Principal,
    datacenter_id: &str,
) -> ApiResult<Vec<StationCredential>> {
    let datacenter = operated(state, principal, datacenter_id).await?;
    let rows = state.db.credentials_of(CredentialKind::Station, &datacenter.id).await?;
    let mut views = Vec::with_capacity(rows.len());
    for row in &rows {
        views.push(station_view(row, signing_key_of(state, &row.id).await?));
    }
    Ok(views)
}

/// Revokes one of the datacenter's station credentials (operators): every request
/// with it is refused from now on, naming the time. Revoking it again changes nothing.
pub async fn revoke_station_credential(
    state: &AppState,
    principal: &Principal,
    datacenter_id: &str,
    credential_id: &str,
) -> ApiResult<StationCredential> {
    let datacenter = operated(state, principal, datacenter_id).await?;
    let missing = || Failure::not_found(format!("station credential {credential_id} of datacenter {datacenter_id}"));
    if !state.db.revoke_credential(credential_id, CredentialKind::Station, &datacenter.id).await? {
        return Err(missing());
    }
    let row = state.db.credential(credential_id).await?.ok_or_else(missing)?;
    tracing::info!(datacenter = %datacenter.id, credential = %credential_id, "station credential revoked");
    Ok(station_view(&row, signing_key_of(state, &row.id).await?))
}
