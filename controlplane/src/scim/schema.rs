//! The discovery documents (RFC 7644 §4, RFC 7643 §5–7): what this server
//! supports, its two resource types and their schemas.

use serde_json::{json, Value};

use super::{ScimError, LIST_RESPONSE, MAX_COUNT, PREFIX};
use crate::api::Ctx;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const CONFIG_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The document at `segments`, if it is a discovery endpoint.
pub fn discovery(ctx: &Ctx, segments: &[String]) -> Option<Result<Value, ScimError>> {
    let base = format!("{}{PREFIX}", ctx.identity.public_url.trim_end_matches('/'));
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    Some(match s.as_slice() {
        ["ServiceProviderConfig"] => Ok(config(&base)),
        ["ResourceTypes"] => Ok(list(vec![user_type(&base), group_type(&base)])),
        ["ResourceTypes", "User"] => Ok(user_type(&base)),
        ["ResourceTypes", "Group"] => Ok(group_type(&base)),
        ["Schemas"] => Ok(list(vec![user_schema(&base), group_schema(&base)])),
        ["Schemas", id] if *id == USER_SCHEMA => Ok(user_schema(&base)),
        ["Schemas", id] if *id == GROUP_SCHEMA => Ok(group_schema(&base)),
        ["Schemas", id] => Err(ScimError::NotFound(format!("no schema {id:?}"))),
        _ => return None,
    })
}

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

fn config(base: &str) -> Value {
    json!({
        "schemas": [CONFIG_SCHEMA],
        "documentationUri": "https://github.com/ccag/ccag/blob/main/docs/scim.md",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A token made with `ccag scim tokens create --idp NAME`, bound to that identity provider",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

fn user_type(base: &str) -> Value {
    json!({
        "schemas": [TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A gateway user",
        "schema": USER_SCHEMA,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
    })
}

fn group_type(base: &str) -> Value {
    json!({
        "schemas": [TYPE_SCHEMA],
        "id": "Group",
        "name": "Group",
        "endpoint": "/Groups",
        "description": "A group of the identity provider: a role or team through its mappings",
        "schema": GROUP_SCHEMA,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
    })
}

fn attr(name: &str, kind: &str, multi: bool, required: bool, mutability: &str, uniqueness: &str) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": multi, "required": required,
        "caseExact": false, "mutability": mutability, "returned": "default", "uniqueness": uniqueness,
    })
}

fn complex(name: &str, multi: bool, mutability: &str, subs: Vec<Value>) -> Value {
    let mut a = attr(name, "complex", multi, false, mutability, "none");
    a["subAttributes"] = Value::Array(subs);
    a
}

fn user_schema(base: &str) -> Value {
    let s = |n: &str| attr(n, "string", false, false, "readWrite", "none");
    // The gateway knows users by email: required unless userName is one.
    let mut emails = complex(
        "emails",
        true,
        "readWrite",
        vec![s("value"), s("type"), attr("primary", "boolean", false, false, "readWrite", "none")],
    );
    emails["required"] = json!(true);
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "A gateway user; its email is userName when that is an address, else the primary email",
        "attributes": [
            attr("userName", "string", false, true, "readWrite", "server"),
            s("externalId"),
            complex("name", false, "readWrite", vec![s("givenName"), s("familyName"), s("formatted")]),
            s("displayName"),
            emails,
            attr("active", "boolean", false, false, "readWrite", "none"),
            complex("groups", true, "readOnly", vec![attr("value", "string", false, false, "readOnly", "none"), attr("display", "string", false, false, "readOnly", "none")]),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")},
    })
}

fn group_schema(base: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": GROUP_SCHEMA,
        "name": "Group",
        "description": "A group; its displayName is matched against the provider's admin groups and team mappings",
        "attributes": [
            attr("displayName", "string", false, true, "readWrite", "none"),
            attr("externalId", "string", false, false, "readWrite", "none"),
            complex("members", true, "readWrite", vec![attr("value", "string", false, false, "immutable", "none"), attr("display", "string", false, false, "readOnly", "none")]),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{GROUP_SCHEMA}")},
    })
}
