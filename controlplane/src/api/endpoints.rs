//! EndpointService: the Bedrock regions (and accounts, through a role) that
//! requests may run in.

use ccag_proto::admin::v1::endpoint_service_server::EndpointService;
use ccag_proto::admin::v1::*;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{ok, require, ts, ApiError, ApiResult, Change, Paging, Shared};
use crate::fleet::Touched;
use crate::store::entities::endpoints;
use crate::store::ids;
use crate::store::AuditAction;

pub struct EndpointsApi(pub Shared);

fn to_proto(e: endpoints::Model) -> Endpoint {
    Endpoint {
        id: e.id,
        name: e.name,
        region: e.region,
        role_arn: e.role_arn,
        enabled: e.enabled,
        priority: e.priority,
        created_at: ts(e.created_at),
        updated_at: ts(e.updated_at),
    }
}

/// `us-east-1`, `us-gov-west-1`, `ap-southeast-4` …
fn region(v: &str) -> Result<String, ApiError> {
    let r = require("region", v, 32)?;
    let parts: Vec<&str> = r.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return Err(ApiError::InvalidArgument(format!("region: {r:?} is not an AWS region name")));
    }
    Ok(r)
}

fn role_arn(v: &str) -> Result<String, ApiError> {
    let a = v.trim();
    if a.is_empty() {
        return Ok(String::new());
    }
    crate::notify::aws::check_role_arn(a).map_err(|e| ApiError::InvalidArgument(format!("role_arn: {e}")))?;
    Ok(a.to_owned())
}

async fn find<C: ConnectionTrait>(c: &C, id: &str) -> Result<endpoints::Model, ApiError> {
    let id = super::lookup("id", "the endpoint's id or name", id)?;
    endpoints::Entity::find()
        .filter(Condition::any().add(endpoints::Column::Id.eq(id)).add(endpoints::Column::Name.eq(id)))
        .one(c)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("endpoint {id:?} not found")))
}

#[tonic::async_trait]
impl EndpointService for EndpointsApi {
    async fn create_endpoint(&self, req: tonic::Request<CreateEndpointRequest>) -> ApiResult<Endpoint> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let now = Utc::now();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let row = endpoints::ActiveModel {
            id: Set(ids::new_id("ep")),
            name: Set(require("name", &r.name, 100)?),
            region: Set(region(&r.region)?),
            role_arn: Set(role_arn(&r.role_arn)?),
            enabled: Set(r.enabled),
            priority: Set(r.priority),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(txn.db())
        .await
        .map_err(ApiError::from)?;
        txn.audit(AuditAction::EndpointCreate, "endpoint", &row.id, None, Some(&row)).await?;
        txn.touch(Touched::Endpoint(row.id.clone()));
        txn.commit().await?;
        ok(to_proto(row))
    }

    async fn get_endpoint(&self, req: tonic::Request<GetEndpointRequest>) -> ApiResult<Endpoint> {
        self.0.caller(&req).await?.require_admin()?;
        ok(to_proto(find(&self.0.db, &req.get_ref().id).await?))
    }

    async fn list_endpoints(&self, req: tonic::Request<ListEndpointsRequest>) -> ApiResult<ListEndpointsResponse> {
        self.0.caller(&req).await?.require_admin()?;
        let paging = Paging::from(req.get_ref().page.as_ref())?;
        let (rows, next_page_token) = paging
            .page(
                endpoints::Entity::find()
                    .order_by_asc(endpoints::Column::Priority)
                    .order_by_asc(endpoints::Column::Name),
                &self.0.db,
            )
            .await?;
        ok(ListEndpointsResponse { endpoints: rows.into_iter().map(to_proto).collect(), next_page_token })
    }

    async fn update_endpoint(&self, req: tonic::Request<UpdateEndpointRequest>) -> ApiResult<Endpoint> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &r.id).await?;
        let mut am: endpoints::ActiveModel = before.clone().into();
        if let Some(n) = &r.name {
            am.name = Set(require("name", n, 100)?);
        }
        if let Some(v) = &r.region {
            am.region = Set(region(v)?);
        }
        if let Some(v) = &r.role_arn {
            am.role_arn = Set(role_arn(v)?);
        }
        if let Some(v) = r.enabled {
            am.enabled = Set(v);
        }
        if let Some(v) = r.priority {
            am.priority = Set(v);
        }
        am.updated_at = Set(Utc::now());
        let after = am.update(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::EndpointUpdate, "endpoint", &after.id, Some(&before), Some(&after)).await?;
        txn.touch(Touched::Endpoint(after.id.clone()));
        txn.commit().await?;
        ok(to_proto(after))
    }

    async fn delete_endpoint(&self, req: tonic::Request<DeleteEndpointRequest>) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = find(txn.db(), &req.get_ref().id).await?;
        endpoints::Entity::delete_by_id(before.id.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::EndpointDelete, "endpoint", &before.id, Some(&before), None).await?;
        txn.touch(Touched::Endpoint(before.id.clone()));
        txn.commit().await?;
        ok(DeleteResponse {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_region_names_are_accepted() {
        for r in ["us-east-1", "us-gov-west-1", "ap-southeast-4", "eu-central-2"] {
            assert!(region(r).is_ok(), "{r}");
        }
    }

    #[test]
    fn other_strings_are_not_regions() {
        for r in ["", "useast1", "US-EAST-1", "us-east-", "us east 1"] {
            assert!(region(r).is_err(), "{r}");
        }
    }

    #[test]
    fn role_arns_must_name_an_iam_role() {
        assert!(role_arn("arn:aws:iam::123456789012:role/ccag").is_ok());
        assert!(role_arn("").is_ok());
        assert!(role_arn("arn:aws:s3:::bucket").is_err());
        for bad in [
            "arn:awsX:iam::123456789012:role/ccag",
            "arn:aws:iam::12345:role/ccag",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam:us-east-1:123456789012:role/ccag",
            "arn:aws:iam::123456789012:role/cc ag",
        ] {
            assert!(role_arn(bad).is_err(), "{bad}");
        }
    }
}
