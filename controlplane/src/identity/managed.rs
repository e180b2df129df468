//! Managed settings for Claude Code sessions signed in through the
//! gateway: one set for the organisation (scope "") and one per team. A
//! user gets the organisation's with their teams' laid over it, teams in
//! name order. Objects merge key by key (so `env` entries add up);
//! `permissions.deny` and `permissions.ask` lists add up too, since a team
//! may forbid more but not less; any other value is replaced.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Map, Value};

use crate::store::entities::{managed_settings, team_members, teams};

/// Largest settings document accepted.
pub const MAX_BYTES: usize = 64 * 1024;

pub fn merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) if k == "permissions" => {
                for (pk, pv) in o {
                    match (b.get_mut(pk), pv) {
                        (Some(Value::Array(ba)), Value::Array(oa)) if pk == "deny" || pk == "ask" => {
                            for item in oa {
                                if !ba.contains(item) {
                                    ba.push(item.clone());
                                }
                            }
                        }
                        _ => {
                            b.insert(pk.clone(), pv.clone());
                        }
                    }
                }
            }
            (Some(Value::Object(b)), Value::Object(o)) => {
                for (ok, ov) in o {
                    b.insert(ok.clone(), ov.clone());
                }
            }
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

pub async fn for_user<C: ConnectionTrait>(c: &C, user_id: &str) -> Result<Option<Value>, DbErr> {
    let team_ids: Vec<String> = team_members::Entity::find()
        .filter(team_members::Column::UserId.eq(user_id))
        .all(c)
        .await?
        .into_iter()
        .map(|m| m.team_id)
        .collect();
    let mut scopes = vec![String::new()];
    if !team_ids.is_empty() {
        let named = teams::Entity::find()
            .filter(teams::Column::Id.is_in(team_ids))
            .order_by_asc(teams::Column::Name)
            .all(c)
            .await?;
        scopes.extend(named.into_iter().map(|t| t.id));
    }
    let rows =
        managed_settings::Entity::find().filter(managed_settings::Column::Scope.is_in(scopes.clone())).all(c).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut out = Map::new();
    for scope in &scopes {
        if let Some(r) = rows.iter().find(|r| &r.scope == scope) {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&r.settings) {
                merge(&mut out, &m);
            }
        }
    }
    Ok(Some(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn teams_add_env_entries_and_deny_rules_and_replace_the_rest() {
        let mut base = obj(json!({"env": {"A": "1"}, "permissions": {"deny": ["WebSearch"], "allow": ["Bash(ls)"]},
                                   "model": "sonnet"}));
        merge(
            &mut base,
            &obj(json!({"env": {"B": "2"}, "permissions": {"deny": ["Bash(rm:*)", "WebSearch"],
                                      "allow": ["Read"]}, "model": "opus"})),
        );
        assert_eq!(
            Value::Object(base),
            json!({"env": {"A": "1", "B": "2"}, "permissions": {"deny": ["WebSearch", "Bash(rm:*)"], "allow": ["Read"]},
                   "model": "opus"})
        );
    }
}
