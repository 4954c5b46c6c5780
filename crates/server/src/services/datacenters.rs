//! Datacenters, their shipping addresses and import public keys: operators add
//! them; every authenticated caller may read them (customers ship drives there,
//! encrypted to the datacenter's import key).

use offsite_api::types::{CreateDatacenter, Datacenter};

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
    Ok(state.db.datacenters().await?)
}
