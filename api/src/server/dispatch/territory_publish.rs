//! Publishing one territory of a day (`POST /v1/plans/{date}/publish?territory=`).
//!
//! Versions and publishing are per day, so a territory is published as two versions:
//!
//! 1. the **published** one: the day's last published routes with this territory's
//!    technicians' routes taken from the latest draft ([`Scope::merge`]). Only this
//!    territory's phones change; a job the draft moved in from another territory's
//!    route stays where that territory's phones have it until that territory publishes.
//! 2. when the draft holds other changes too, a **draft** again: the latest draft's routes,
//!    so the work on the other territories is not lost and shows as changes since
//!    publishing.
//!
//! Only the territory's violations block it (409 `plan_infeasible`); 409
//! `already_published` when its routes in the draft are those already published.

use crate::server::catalog::territories::Scope;
use crate::server::dispatch::plan_eval::{evaluate_day, Violation};
use crate::server::dispatch::plan_publish;
use crate::server::dispatch::plan_store::{self, StoredPlan};
use crate::server::dispatch::plans::day_problem_and_territories;
use crate::server::http::auth::Auth;
use crate::server::http::error::ApiError;
use crate::server::http::state::AppState;
use crate::server::store::db::now;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

/// What publishing a territory did: the published version, and the draft kept after it.
pub struct TerritoryPublished {
    pub plan_id: String,
    pub version: i32,
    pub draft_version: Option<i32>,
    pub at: DateTime<Utc>,
}

pub async fn publish_territory(
    state: &AppState,
    auth: &Auth,
    date: NaiveDate,
    territory: &str,
) -> Result<TerritoryPublished, ApiError> {
    let mut tx = state.db.begin_read().await?;
    let latest = plan_store::latest(&mut tx, date, false).await?;
    let published = plan_store::latest(&mut tx, date, true).await?;
    tx.rollback().await?;
    let latest =
        latest.ok_or_else(|| ApiError::not_found("plan for the date", date.to_string()))?;
    let (input, territories) = day_problem_and_territories(state, date).await?;
    let scope = Scope::new(&territories, territory, &input, &latest.routes)?;
    if latest.state != "draft" {
        return Err(already_published(territory, latest.version, date));
    }
    let base = published
        .as_ref()
        .map(|p| p.routes.clone())
        .unwrap_or_default();
    let routes = scope.merge(&base, &latest.routes);
    if published.is_some() && routes == base {
        return Err(already_published(territory, latest.version, date));
    }
    scope.require_technicians(date)?;
    let keep_draft = routes != latest.routes;
    let (evaluated, draft) = {
        let (input, routes, draft_routes) = (input.clone(), routes.clone(), latest.routes.clone());
        tokio::task::spawn_blocking(move || {
            let evaluated = evaluate_day(input.clone(), &routes)?;
            let draft = match keep_draft {
                true => Some(evaluate_day(input, &draft_routes)?),
                false => None,
            };
            Ok::<_, ApiError>((evaluated, draft))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("the evaluation failed: {e}")))??
    };
    let blocking: Vec<Violation> = evaluated
        .violations
        .iter()
        .filter(|v| {
            v.technician
                .as_deref()
                .is_some_and(|t| scope.has_technician(t))
                || v.job.as_deref().is_some_and(|j| scope.has_job(j))
        })
        .cloned()
        .collect();
    if !blocking.is_empty() {
        return Err(plan_store::infeasible(
            &format!(
                "territory `{territory}` of version {} of {date}",
                latest.version
            ),
            &blocking,
        ));
    }
    let at = now();
    let (expected, auth, territory) = (latest.version, auth.clone(), territory.to_owned());
    let draft_routes = latest.routes;
    state
        .db
        .write(move |tx| {
            let (evaluated, routes, draft, draft_routes, auth, territory) = (
                evaluated.clone(),
                routes.clone(),
                draft.clone(),
                draft_routes.clone(),
                auth.clone(),
                territory.clone(),
            );
            Box::pin(async move {
                let previous = plan_store::latest(tx, date, true).await?;
                let stored = plan_store::insert_version(
                    tx,
                    date,
                    "change",
                    &evaluated,
                    &routes,
                    &auth,
                    Some(expected),
                    at,
                )
                .await?;
                plan_store::mark_published(tx, date, &stored.id, at).await?;
                let published = StoredPlan {
                    state: "published".into(),
                    published_at: Some(at),
                    ..stored
                };
                plan_publish::hand_to_phones(tx, &published, previous.as_ref(), at).await?;
                plan_store::audit(
                    tx,
                    date,
                    Some((&published.id, published.version)),
                    &auth,
                    "publish",
                    &json!({"territory": territory, "from_version": expected}),
                    at,
                )
                .await?;
                let mut draft_version = None;
                if let Some(draft) = &draft {
                    let kept = plan_store::insert_version(
                        tx,
                        date,
                        "change",
                        draft,
                        &draft_routes,
                        &auth,
                        Some(published.version),
                        at,
                    )
                    .await?;
                    plan_store::audit(
                        tx,
                        date,
                        Some((&kept.id, kept.version)),
                        &auth,
                        "change",
                        &json!({
                            "draft_kept": expected,
                            "reason": format!(
                                "territory `{territory}` was published; the other changes of \
                                 version {expected} stay a draft"
                            ),
                        }),
                        at,
                    )
                    .await?;
                    draft_version = Some(kept.version);
                }
                Ok(TerritoryPublished {
                    plan_id: published.id,
                    version: published.version,
                    draft_version,
                    at,
                })
            })
        })
        .await
}

fn already_published(territory: &str, version: i32, date: NaiveDate) -> ApiError {
    ApiError::conflict(
        "already_published",
        format!(
            "territory `{territory}`'s routes in version {version} of {date} are those published; change them first"
        ),
    )
}
