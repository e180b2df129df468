//! `GET /v1/models` and `GET /v1/models/{id}`: the snapshot's catalogue, or
//! the built-in one when the snapshot lists none.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::{json, Caller};
use crate::http::body::ResBody;
use crate::http::error::ApiError;
use crate::models::catalogue::{self, MODELS};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;

fn entries(cfg: &crate::config::RuntimeConfig) -> Vec<Value> {
    if cfg.catalogue.is_empty() {
        MODELS
            .iter()
            .map(|m| json!({"type":"model","id":m.id,"display_name":m.display_name,"created_at":m.created_at}))
            .collect()
    } else {
        cfg.catalogue
            .iter()
            .map(|m| {
                let mut v = json!({"type":"model","id":m.id,"display_name":m.display_name,"created_at":m.created_at});
                if !m.description.is_empty() {
                    v["description"] = Value::String(m.description.clone());
                }
                v
            })
            .collect()
    }
}

pub fn list(caller: &Caller, req: &Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let cfg = &caller.cfg;
    let mut limit = DEFAULT_LIMIT;
    let (mut after, mut before) = (None, None);
    for (k, v) in req.uri().query().unwrap_or("").split('&').filter_map(|p| p.split_once('=')) {
        match k {
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| ApiError::InvalidRequest(format!("limit: must be between 1 and {MAX_LIMIT}")))?;
            }
            "after_id" => after = Some(v.to_owned()),
            "before_id" => before = Some(v.to_owned()),
            _ => {}
        }
    }
    let all = entries(cfg);
    let pos = |id: &str| all.iter().position(|m| m["id"] == id);
    let (start, end) = match (&after, &before) {
        (Some(a), _) => (pos(a).map_or(all.len(), |i| i + 1), all.len()),
        (None, Some(b)) => {
            let end = pos(b).unwrap_or(0);
            (end.saturating_sub(limit), end)
        }
        (None, None) => (0, all.len()),
    };
    let page: Vec<&Value> = all[start..end].iter().take(limit).collect();
    let body = json!({
        "data": page,
        "has_more": start + page.len() < end || (before.is_some() && start > 0),
        "first_id": page.first().map(|m| m["id"].clone()),
        "last_id": page.last().map(|m| m["id"].clone()),
    });
    Ok(json(StatusCode::OK, body.to_string()))
}

pub fn get(caller: &Caller, id: &str) -> Result<Response<ResBody>, ApiError> {
    let cfg = &caller.cfg;
    let all = entries(cfg);
    // Aliases find their catalogue entry too (`claude-sonnet-4-5` → its dated id).
    let canonical = catalogue::find(id).map_or(id, |m| m.id);
    all.into_iter()
        .find(|m| m["id"] == id || m["id"] == canonical)
        .map(|m| json(StatusCode::OK, m.to_string()))
        .ok_or_else(|| ApiError::NotFound(format!("model: {id}")))
}
