//! Who am I: lets a client check its credential before doing anything else.

use offsite_api::types::WhoAmI;

use crate::error::{ApiResult, Failure};
use crate::principal::Principal;

/// The caller's role and tenant.
pub async fn whoami(principal: &Principal) -> ApiResult<WhoAmI> {
    Ok(match principal.clone() {
        Principal::Operator => WhoAmI::Operator,
        Principal::Subscription { subscription_id, .. } => WhoAmI::Subscription { subscription_id },
        Principal::Machine { machine_id, vault_id, subscription_id } => {
            WhoAmI::Machine { machine_id, vault_id, subscription_id }
        }
        Principal::Application { application_id, subscription_id, thumbprint } => {
            WhoAmI::Application { application_id, subscription_id, thumbprint }
        }
        Principal::Station { credential_id, datacenter_id } => WhoAmI::Station { credential_id, datacenter_id },
        Principal::Registration { .. } => {
            return Err(Failure::Forbidden("vault credentials can only register a machine".into()))
        }
    })
}
