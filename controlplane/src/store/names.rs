//! The names people read beside ids: users' emails and teams' names, looked
//! up for a whole page at once.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::entities::{teams, users};

/// IN lists this long stay within every backend's bind-parameter limit.
const CHUNK: usize = 500;

fn distinct(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The emails of `user_ids` (users without one are left out).
pub async fn user_emails<C: ConnectionTrait>(
    c: &C,
    user_ids: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, String>, DbErr> {
    let mut out = HashMap::new();
    for chunk in distinct(user_ids).chunks(CHUNK) {
        let rows = users::Entity::find().filter(users::Column::Id.is_in(chunk.iter().cloned())).all(c).await?;
        out.extend(rows.into_iter().filter_map(|u| Some((u.id, u.email?))));
    }
    Ok(out)
}

/// The names of `team_ids`.
pub async fn team_names<C: ConnectionTrait>(
    c: &C,
    team_ids: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, String>, DbErr> {
    let mut out = HashMap::new();
    for chunk in distinct(team_ids).chunks(CHUNK) {
        let rows = teams::Entity::find().filter(teams::Column::Id.is_in(chunk.iter().cloned())).all(c).await?;
        out.extend(rows.into_iter().map(|t| (t.id, t.name)));
    }
    Ok(out)
}
