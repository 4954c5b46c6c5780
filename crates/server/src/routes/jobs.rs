//! The jobs API: handlers take the request apart and call
//! [`crate::services::jobs`], where the rules are.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{ErrorBody, Job, JobReport};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::jobs;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_jobs, create_job)).routes(routes!(get_job, update_job))
}

#[utoipa::path(get, path = "/machines/{machine_id}/jobs", tag = "jobs", security(("bearer" = [])),
    params(("machine_id" = String, Path)),
    responses((status = 200, body = Vec<Job>), (status = 404, body = ErrorBody)))]
async fn list_jobs(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
) -> ApiResult<Json<Vec<Job>>> {
    Ok(Json(jobs::list(&state, &principal, &machine_id).await?))
}

#[utoipa::path(post, path = "/machines/{machine_id}/jobs", tag = "jobs", security(("bearer" = [])),
    params(("machine_id" = String, Path)), request_body = JobReport,
    responses((status = 200, body = Job), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
    ApiJson(report): ApiJson<JobReport>,
) -> ApiResult<Json<Job>> {
    Ok(Json(jobs::create(&state, &principal, &machine_id, report).await?))
}

#[utoipa::path(get, path = "/machines/{machine_id}/jobs/{job_id}", tag = "jobs", security(("bearer" = [])),
    params(("machine_id" = String, Path), ("job_id" = String, Path)),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
async fn get_job(
    State(state): State<AppState>,
    principal: Principal,
    Path((machine_id, job_id)): Path<(String, String)>,
) -> ApiResult<Json<Job>> {
    Ok(Json(jobs::get(&state, &principal, &machine_id, &job_id).await?))
}

/// Updates a running job; a finished job is final.
#[utoipa::path(put, path = "/machines/{machine_id}/jobs/{job_id}", tag = "jobs", security(("bearer" = [])),
    params(("machine_id" = String, Path), ("job_id" = String, Path)), request_body = JobReport,
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_job(
    State(state): State<AppState>,
    principal: Principal,
    Path((machine_id, job_id)): Path<(String, String)>,
    ApiJson(report): ApiJson<JobReport>,
) -> ApiResult<Json<Job>> {
    Ok(Json(jobs::update(&state, &principal, &machine_id, &job_id, report).await?))
}
