//! Device authorization grants (RFC 8628), in the database so that the
//! terminal may poll one replica while the browser approves on another.
//! Only hashes of the device code and the user code are stored. The user
//! code is what binds the browser to the terminal: the person must see it
//! in the terminal and approve it in the browser, signed in.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::store::entities::device_grants;
use crate::store::ids;

/// 20 consonants: no vowels (no words), none that look alike.
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
pub const EXPIRES_IN_SECS: i64 = 600;
pub const INTERVAL_SECS: i32 = 5;

/// Who polls for the grant's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Claude Code (or the setup script): gets gateway access and refresh tokens.
    Gateway,
    /// `ccag login --sso`: gets an admin-API session.
    Cli,
}

impl Client {
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Gateway => "gateway",
            Client::Cli => "cli",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Approved,
    Denied,
    Consumed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Consumed => "consumed",
        }
    }

    /// Unknown text reads as consumed: never usable.
    pub fn parse(s: &str) -> State {
        match s {
            "pending" => State::Pending,
            "approved" => State::Approved,
            "denied" => State::Denied,
            _ => State::Consumed,
        }
    }
}

fn user_code() -> String {
    let mut out = String::with_capacity(9);
    let mut buf = [0u8; 32];
    while out.len() < 9 {
        getrandom::fill(&mut buf).expect("the OS random source");
        for b in buf {
            // 240 = 12 * 20: rejecting the rest keeps every letter equally likely.
            if b < 240 && out.len() < 9 {
                if out.len() == 4 {
                    out.push('-');
                }
                out.push(ALPHABET[(b % 20) as usize] as char);
            }
        }
    }
    out
}

/// The code as typed: case, spaces and dashes do not matter.
pub fn normalise(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphabetic()).map(|c| c.to_ascii_uppercase()).collect()
}

pub struct Started {
    pub device_code: String,
    pub user_code: String,
}

pub async fn start<C: ConnectionTrait>(c: &C, client: Client, ip: &str) -> Result<Started, DbErr> {
    let now = Utc::now();
    // A collision of user codes (1 in 20^8 per live pair) fails the unique
    // index; one retry makes it vanishingly rare.
    let mut last = None;
    for _ in 0..2 {
        let device_code = format!("ccag_dc_{}", ids::random_base62(40));
        let user_code = user_code();
        let row = device_grants::ActiveModel {
            id: Set(ids::new_id("dg")),
            device_hash: Set(ids::sha256_hex(&device_code)),
            user_code_hash: Set(ids::sha256_hex(&normalise(&user_code))),
            client: Set(client.as_str().into()),
            state: Set(State::Pending.as_str().into()),
            user_id: Set(None),
            interval_secs: Set(INTERVAL_SECS),
            last_poll_at: Set(None),
            ip: Set(ip.chars().take(64).collect()),
            created_at: Set(now),
            expires_at: Set(now + chrono::Duration::seconds(EXPIRES_IN_SECS)),
        };
        match row.insert(c).await {
            Ok(_) => return Ok(Started { device_code, user_code }),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("two attempts"))
}

/// The answer to one poll.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    Pending,
    /// Polled faster than the interval, which is now longer.
    SlowDown,
    Denied,
    /// Unknown, expired, already used, or another client's.
    Expired,
    /// Approved by `user_id`; the grant is now consumed.
    Approved {
        user_id: String,
    },
}

pub async fn poll<C: ConnectionTrait>(
    c: &C,
    client: Client,
    device_code: &str,
    now: DateTime<Utc>,
) -> Result<Poll, DbErr> {
    let hash = ids::sha256_hex(device_code.trim());
    let Some(g) = device_grants::Entity::find().filter(device_grants::Column::DeviceHash.eq(hash)).one(c).await? else {
        return Ok(Poll::Expired);
    };
    if g.client != client.as_str() || g.expires_at <= now {
        return Ok(Poll::Expired);
    }
    match State::parse(&g.state) {
        State::Consumed => return Ok(Poll::Expired),
        State::Denied => return Ok(Poll::Denied),
        State::Approved => {
            let took = device_grants::Entity::update_many()
                .col_expr(device_grants::Column::State, sea_orm::sea_query::Expr::value(State::Consumed.as_str()))
                .filter(device_grants::Column::Id.eq(g.id.clone()))
                .filter(device_grants::Column::State.eq(State::Approved.as_str()))
                .exec(c)
                .await?;
            return Ok(match (took.rows_affected, g.user_id) {
                (1, Some(user_id)) => Poll::Approved { user_id },
                _ => Poll::Expired,
            });
        }
        State::Pending => {}
    }
    let early = g.last_poll_at.is_some_and(|t| (now - t).num_milliseconds() < i64::from(g.interval_secs) * 1000 - 250);
    let mut am: device_grants::ActiveModel = g.clone().into();
    am.last_poll_at = Set(Some(now));
    if early {
        am.interval_secs = Set((g.interval_secs + 5).min(60));
    }
    am.update(c).await?;
    Ok(if early { Poll::SlowDown } else { Poll::Pending })
}

/// The pending grant a typed user code names.
pub async fn pending<C: ConnectionTrait>(
    c: &C,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Option<device_grants::Model>, DbErr> {
    let code = normalise(code);
    if code.len() != 8 {
        return Ok(None);
    }
    let g = device_grants::Entity::find()
        .filter(device_grants::Column::UserCodeHash.eq(ids::sha256_hex(&code)))
        .one(c)
        .await?;
    Ok(g.filter(|g| State::parse(&g.state) == State::Pending && g.expires_at > now))
}

/// Approves or denies a pending grant; false when it is no longer pending.
pub async fn decide<C: ConnectionTrait>(c: &C, grant_id: &str, user_id: &str, approve: bool) -> Result<bool, DbErr> {
    let state = if approve { State::Approved } else { State::Denied };
    let r = device_grants::Entity::update_many()
        .col_expr(device_grants::Column::State, sea_orm::sea_query::Expr::value(state.as_str()))
        .col_expr(device_grants::Column::UserId, sea_orm::sea_query::Expr::value(Some(user_id.to_owned())))
        .filter(device_grants::Column::Id.eq(grant_id))
        .filter(device_grants::Column::State.eq(State::Pending.as_str()))
        .exec(c)
        .await?;
    Ok(r.rows_affected == 1)
}

pub async fn prune<C: ConnectionTrait>(c: &C, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let r = device_grants::Entity::delete_many().filter(device_grants::Column::ExpiresAt.lt(now)).exec(c).await?;
    Ok(r.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_consonants_in_two_groups() {
        for _ in 0..100 {
            let c = user_code();
            assert_eq!(c.len(), 9);
            assert_eq!(&c[4..5], "-");
            assert!(normalise(&c).bytes().all(|b| ALPHABET.contains(&b)), "{c}");
        }
    }

    #[test]
    fn a_typed_code_matches_whatever_its_case_and_dashes() {
        assert_eq!(normalise(" wdjb-mjht "), "WDJBMJHT");
        assert_eq!(normalise("WDJB MJHT"), "WDJBMJHT");
    }
}
