//! Building the data planes' resources from the database: all of them (at
//! start, or after a gap in the change log), or only those a set of changes
//! touched. Both paths share the per-resource builders, so a delta and a
//! full state cannot disagree about a resource.

use std::collections::{HashMap, HashSet};

use ccag_proto::config::v1::{self as pb, resource::Kind, Resource, ResourceType};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::state::Name;
use crate::secrets::Keyring;
use crate::store::entities::{api_keys, endpoints, models, settings, team_members, teams, users};

use super::routing::{endpoint_resource, endpoints_of, team_routing};
use crate::store::{KeyStatus, UserStatus};

/// What a committed change touched, as logged in `config_changes`. The
/// publisher expands a user to their keys and limits and a team to its
/// members; a deletion that cascades must name what the database can no
/// longer find (a deleted user's keys), since it is gone by then.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Touched {
    Key(String),
    User(String),
    Team(String),
    /// By Anthropic model id.
    Model(String),
    Endpoint(String),
    /// A team's routing only (its strategy and endpoints), by team id; a
    /// touched team includes it.
    TeamRouting(String),
    Settings,
    /// The price table.
    Prices,
    /// The gateway-token signing keys.
    Identity,
    /// The web search mode and the organisation's provider.
    WebSearch,
    /// A user's own search provider, by user id.
    UserSearch(String),
    /// Budgets: derived resources (the verdicts follow the revision), so
    /// nothing is loaded for it here.
    Budgets,
}

impl Touched {
    pub fn kind(&self) -> &'static str {
        match self {
            Touched::Key(_) => "key",
            Touched::User(_) => "user",
            Touched::Team(_) => "team",
            Touched::Model(_) => "model",
            Touched::Endpoint(_) => "endpoint",
            Touched::TeamRouting(_) => "team_routing",
            Touched::Settings => "settings",
            Touched::Prices => "prices",
            Touched::Identity => "identity",
            Touched::WebSearch => "web_search",
            Touched::UserSearch(_) => "user_search",
            Touched::Budgets => "budgets",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Touched::Key(n)
            | Touched::User(n)
            | Touched::Team(n)
            | Touched::Model(n)
            | Touched::Endpoint(n)
            | Touched::TeamRouting(n)
            | Touched::UserSearch(n) => n,
            Touched::Settings | Touched::Prices | Touched::Identity | Touched::WebSearch | Touched::Budgets => "",
        }
    }

    pub fn parse(kind: &str, name: &str) -> Option<Touched> {
        let n = name.to_owned();
        Some(match kind {
            "key" => Touched::Key(n),
            "user" => Touched::User(n),
            "team" => Touched::Team(n),
            "model" => Touched::Model(n),
            "endpoint" => Touched::Endpoint(n),
            "team_routing" => Touched::TeamRouting(n),
            "settings" => Touched::Settings,
            "prices" => Touched::Prices,
            "identity" => Touched::Identity,
            "web_search" => Touched::WebSearch,
            "user_search" => Touched::UserSearch(n),
            "budgets" => Touched::Budgets,
            _ => return None,
        })
    }
}

fn res(kind: Kind) -> Resource {
    Resource { version: 0, kind: Some(kind) }
}

/// Revoked keys are left out: an unknown key and a revoked one get the same 401.
fn key_resource(k: api_keys::Model, owner_active: bool, owner_email: &str) -> Option<Resource> {
    let status = match KeyStatus::parse(&k.status) {
        KeyStatus::Revoked => return None,
        KeyStatus::Active if owner_active => pb::KeyStatus::Active,
        _ => pb::KeyStatus::Disabled,
    };
    Some(res(Kind::Key(pb::ApiKey {
        id: k.id,
        sha256: k.key_hash,
        name: k.name,
        user_id: k.user_id,
        team_id: k.team_id.unwrap_or_default(),
        status: status as i32,
        expires_at: k.expires_at.map(|t| t.timestamp()).unwrap_or(0),
        rpm: k.rpm.max(0) as u64,
        tpm: k.tpm.max(0) as u64,
        user_email: owner_email.to_owned(),
    })))
}

/// A user's own limit wins; otherwise the strictest member default of their
/// teams. `None` when the user has no limit at all.
pub fn user_limit<'t>(u: &users::Model, teams: impl Iterator<Item = &'t teams::Model>) -> Option<Resource> {
    let strictest = |a: i64, b: i64| match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    };
    let (mut rpm, mut tpm) = (0i64, 0i64);
    for t in teams {
        rpm = strictest(rpm, t.member_rpm.max(0));
        tpm = strictest(tpm, t.member_tpm.max(0));
    }
    if u.rpm > 0 {
        rpm = u.rpm;
    }
    if u.tpm > 0 {
        tpm = u.tpm;
    }
    (rpm > 0 || tpm > 0)
        .then(|| res(Kind::UserLimit(pb::SubjectLimit { id: u.id.clone(), rpm: rpm as u64, tpm: tpm as u64 })))
}

fn team_limit(t: &teams::Model) -> Option<Resource> {
    (t.rpm > 0 || t.tpm > 0).then(|| {
        res(Kind::TeamLimit(pb::SubjectLimit { id: t.id.clone(), rpm: t.rpm.max(0) as u64, tpm: t.tpm.max(0) as u64 }))
    })
}

fn model_resource(m: models::Model) -> Resource {
    res(Kind::Model(pb::ModelEntry {
        display_name: if m.display_name.is_empty() { m.anthropic_id.clone() } else { m.display_name },
        anthropic_id: m.anthropic_id,
        bedrock_id: m.bedrock_id,
        listed: m.listed,
        created_at: m.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        description: String::new(),
    }))
}

async fn settings_resource<C: ConnectionTrait>(c: &C) -> Result<Resource, DbErr> {
    let stored: HashMap<String, String> =
        settings::Entity::find().all(c).await?.into_iter().map(|s| (s.key, s.value)).collect();
    Ok(res(Kind::Settings(crate::gateway_settings::resource(&stored))))
}

fn insert(out: &mut HashMap<Name, Resource>, r: Option<Resource>) {
    if let Some(r) = r {
        if let Some(n) = super::state::name_of(&r) {
            out.insert(n, r);
        }
    }
}

/// Every resource, in one pass over each table.
pub async fn load_all<C: ConnectionTrait>(c: &C, keyring: &Keyring) -> Result<HashMap<Name, Resource>, DbErr> {
    let mut out = HashMap::new();
    let users = users::Entity::find().all(c).await?;
    let teams: HashMap<String, teams::Model> =
        teams::Entity::find().all(c).await?.into_iter().map(|t| (t.id.clone(), t)).collect();
    let mut teams_of: HashMap<String, Vec<String>> = HashMap::new();
    for m in team_members::Entity::find().all(c).await? {
        teams_of.entry(m.user_id).or_default().push(m.team_id);
    }
    let active: HashSet<&str> =
        users.iter().filter(|u| UserStatus::parse(&u.status) == UserStatus::Active).map(|u| u.id.as_str()).collect();
    let emails: HashMap<&str, &str> =
        users.iter().filter_map(|u| u.email.as_deref().map(|e| (u.id.as_str(), e))).collect();
    for k in api_keys::Entity::find().filter(api_keys::Column::Status.ne(KeyStatus::Revoked.as_str())).all(c).await? {
        let owner_active = active.contains(k.user_id.as_str());
        let email = emails.get(k.user_id.as_str()).copied().unwrap_or_default();
        insert(&mut out, key_resource(k, owner_active, email));
    }
    for u in &users {
        let of = teams_of.get(&u.id).map(Vec::as_slice).unwrap_or_default();
        insert(&mut out, user_limit(u, of.iter().filter_map(|t| teams.get(t))));
    }
    let mut routes = endpoints_of(c, None).await?;
    for t in teams.values() {
        insert(&mut out, team_limit(t));
        insert(&mut out, team_routing(t, routes.remove(&t.id).unwrap_or_default()));
    }
    for m in models::Entity::find().all(c).await? {
        insert(&mut out, Some(model_resource(m)));
    }
    for e in endpoints::Entity::find().all(c).await? {
        insert(&mut out, Some(endpoint_resource(e, keyring)));
    }
    insert(&mut out, Some(settings_resource(c).await?));
    insert(&mut out, Some(res(Kind::Prices(crate::pricing::load(c).await?))));
    insert(&mut out, Some(res(Kind::Identity(crate::identity::tokens::published(c).await?))));
    insert(&mut out, Some(res(Kind::WebSearch(crate::websearch::resource(c, keyring).await?))));
    for (_, p) in crate::websearch::user_resources(c, keyring, None).await? {
        insert(&mut out, p.map(|p| res(Kind::UserSearchProvider(p))));
    }
    Ok(out)
}

/// Bounded IN lists keep within every backend's bind-parameter limit.
const CHUNK: usize = 500;

/// The resources that `touched` affects: their names (a name with no
/// resource is to be removed) and the resources as they are now.
pub async fn load_touched<C: ConnectionTrait>(
    c: &C,
    keyring: &Keyring,
    touched: &[Touched],
) -> Result<(Vec<Name>, HashMap<Name, Resource>), DbErr> {
    let mut key_ids = HashSet::new();
    let mut user_ids = HashSet::new();
    let mut team_ids = HashSet::new();
    let mut model_ids = HashSet::new();
    let mut endpoint_ids = HashSet::new();
    let mut routing_ids = HashSet::new();
    let mut settings = false;
    let mut prices = false;
    let mut identity = false;
    let mut web_search = false;
    let mut user_search = HashSet::new();
    for t in touched {
        match t {
            Touched::Key(id) => key_ids.insert(id.clone()),
            Touched::User(id) => user_ids.insert(id.clone()),
            Touched::Team(id) => team_ids.insert(id.clone()),
            Touched::Model(id) => model_ids.insert(id.clone()),
            Touched::Endpoint(id) => endpoint_ids.insert(id.clone()),
            Touched::TeamRouting(id) => routing_ids.insert(id.clone()),
            Touched::Settings => {
                settings = true;
                true
            }
            Touched::Prices => {
                prices = true;
                true
            }
            Touched::Identity => {
                identity = true;
                true
            }
            Touched::WebSearch => {
                web_search = true;
                true
            }
            Touched::UserSearch(id) => user_search.insert(id.clone()),
            Touched::Budgets => true,
        };
    }
    routing_ids.extend(team_ids.iter().cloned());
    let team_list: Vec<String> = team_ids.iter().cloned().collect();
    for chunk in team_list.chunks(CHUNK) {
        for m in team_members::Entity::find().filter(team_members::Column::TeamId.is_in(chunk.to_vec())).all(c).await? {
            user_ids.insert(m.user_id);
        }
    }
    let user_list: Vec<String> = user_ids.iter().cloned().collect();

    let mut out = HashMap::new();
    let mut names: Vec<Name> = Vec::new();

    // Keys named, and the keys of touched users and teams.
    let mut key_rows = Vec::new();
    let key_list: Vec<String> = key_ids.iter().cloned().collect();
    for chunk in key_list.chunks(CHUNK) {
        key_rows.extend(api_keys::Entity::find().filter(api_keys::Column::Id.is_in(chunk.to_vec())).all(c).await?);
    }
    for chunk in user_list.chunks(CHUNK) {
        key_rows.extend(api_keys::Entity::find().filter(api_keys::Column::UserId.is_in(chunk.to_vec())).all(c).await?);
    }
    for chunk in team_list.chunks(CHUNK) {
        key_rows.extend(api_keys::Entity::find().filter(api_keys::Column::TeamId.is_in(chunk.to_vec())).all(c).await?);
    }
    let owners: Vec<String> = key_rows.iter().map(|k| k.user_id.clone()).collect::<HashSet<_>>().into_iter().collect();
    let mut active = HashSet::new();
    let mut emails: HashMap<String, String> = HashMap::new();
    for chunk in owners.chunks(CHUNK) {
        for u in users::Entity::find().filter(users::Column::Id.is_in(chunk.to_vec())).all(c).await? {
            if UserStatus::parse(&u.status) == UserStatus::Active {
                active.insert(u.id.clone());
            }
            if let Some(e) = u.email {
                emails.insert(u.id, e);
            }
        }
    }
    names.extend(key_ids.into_iter().map(|id| (ResourceType::Key, id)));
    for k in key_rows {
        names.push((ResourceType::Key, k.id.clone()));
        let owner_active = active.contains(&k.user_id);
        let email = emails.get(&k.user_id).cloned().unwrap_or_default();
        insert(&mut out, key_resource(k, owner_active, &email));
    }

    // User limits: the user, their memberships and those teams.
    let mut user_rows = Vec::new();
    let mut teams_of: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in user_list.chunks(CHUNK) {
        user_rows.extend(users::Entity::find().filter(users::Column::Id.is_in(chunk.to_vec())).all(c).await?);
        for m in team_members::Entity::find().filter(team_members::Column::UserId.is_in(chunk.to_vec())).all(c).await? {
            teams_of.entry(m.user_id).or_default().push(m.team_id);
        }
    }
    let needed: Vec<String> = teams_of
        .values()
        .flatten()
        .cloned()
        .chain(routing_ids.iter().cloned())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut teams: HashMap<String, teams::Model> = HashMap::new();
    for chunk in needed.chunks(CHUNK) {
        for t in teams::Entity::find().filter(teams::Column::Id.is_in(chunk.to_vec())).all(c).await? {
            teams.insert(t.id.clone(), t);
        }
    }
    names.extend(user_ids.into_iter().map(|id| (ResourceType::UserLimit, id)));
    for u in &user_rows {
        let of = teams_of.get(&u.id).map(Vec::as_slice).unwrap_or_default();
        insert(&mut out, user_limit(u, of.iter().filter_map(|t| teams.get(t))));
    }
    for id in team_ids {
        insert(&mut out, teams.get(&id).and_then(team_limit));
        names.push((ResourceType::TeamLimit, id));
    }
    let mut routes = HashMap::new();
    let routing_list: Vec<String> = routing_ids.iter().cloned().collect();
    for chunk in routing_list.chunks(CHUNK) {
        routes.extend(endpoints_of(c, Some(chunk.to_vec())).await?);
    }
    for id in routing_ids {
        let endpoints = routes.remove(&id).unwrap_or_default();
        insert(&mut out, teams.get(&id).and_then(|t| team_routing(t, endpoints)));
        names.push((ResourceType::TeamRouting, id));
    }

    if !model_ids.is_empty() {
        let list: Vec<String> = model_ids.iter().cloned().collect();
        let cond = Condition::all().add(models::Column::AnthropicId.is_in(list));
        for m in models::Entity::find().filter(cond).all(c).await? {
            insert(&mut out, Some(model_resource(m)));
        }
        names.extend(model_ids.into_iter().map(|id| (ResourceType::Model, id)));
    }
    if !endpoint_ids.is_empty() {
        let list: Vec<String> = endpoint_ids.iter().cloned().collect();
        for e in endpoints::Entity::find().filter(endpoints::Column::Id.is_in(list)).all(c).await? {
            insert(&mut out, Some(endpoint_resource(e, keyring)));
        }
        names.extend(endpoint_ids.into_iter().map(|id| (ResourceType::Endpoint, id)));
    }
    if settings {
        insert(&mut out, Some(settings_resource(c).await?));
        names.push((ResourceType::Settings, String::new()));
    }
    if prices {
        insert(&mut out, Some(res(Kind::Prices(crate::pricing::load(c).await?))));
        names.push((ResourceType::Prices, String::new()));
    }
    if identity {
        insert(&mut out, Some(res(Kind::Identity(crate::identity::tokens::published(c).await?))));
        names.push((ResourceType::Identity, String::new()));
    }
    if web_search {
        insert(&mut out, Some(res(Kind::WebSearch(crate::websearch::resource(c, keyring).await?))));
        names.push((ResourceType::WebSearch, String::new()));
    }
    if !user_search.is_empty() {
        for (id, p) in crate::websearch::user_resources(c, keyring, Some(user_search.into_iter().collect())).await? {
            insert(&mut out, p.map(|p| res(Kind::UserSearchProvider(p))));
            names.push((ResourceType::UserSearchProvider, id));
        }
    }
    Ok((names, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn user(id: &str, rpm: i64, tpm: i64) -> users::Model {
        users::Model {
            id: id.into(),
            email: None,
            subject: None,
            display_name: String::new(),
            role: "member".into(),
            status: "active".into(),
            password_hash: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            rpm,
            tpm,
        }
    }

    fn team(id: &str, member_rpm: i64, member_tpm: i64) -> teams::Model {
        teams::Model {
            id: id.into(),
            name: id.into(),
            description: String::new(),
            member_rpm,
            member_tpm,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            rpm: 0,
            tpm: 0,
            routing_strategy: String::new(),
        }
    }

    fn limits(r: Option<Resource>) -> Option<(u64, u64)> {
        match r?.kind? {
            Kind::UserLimit(l) => Some((l.rpm, l.tpm)),
            _ => None,
        }
    }

    #[test]
    fn a_users_own_limit_wins_over_team_defaults() {
        let ts = [team("t1", 5, 100)];
        assert_eq!(limits(user_limit(&user("u", 50, 0), ts.iter())), Some((50, 100)));
    }

    #[test]
    fn without_an_own_limit_the_strictest_team_default_applies_per_dimension() {
        let ts = [team("t1", 10, 0), team("t2", 20, 300), team("t3", 0, 200)];
        assert_eq!(limits(user_limit(&user("u", 0, 0), ts.iter())), Some((10, 200)));
    }

    #[test]
    fn a_user_with_no_limit_anywhere_is_no_resource() {
        assert_eq!(limits(user_limit(&user("u", 0, 0), [team("t", 0, 0)].iter())), None);
        assert_eq!(limits(user_limit(&user("u", 0, 0), std::iter::empty())), None);
    }

    #[test]
    fn touched_changes_round_trip_through_their_log_form() {
        for t in
            [Touched::Key("k".into()), Touched::Team("t".into()), Touched::TeamRouting("t".into()), Touched::Settings]
        {
            assert_eq!(Touched::parse(t.kind(), t.name()), Some(t));
        }
        assert_eq!(Touched::parse("budget", "x"), None);
    }
}
