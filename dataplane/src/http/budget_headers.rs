//! The `x-ccag-budget-*` headers of a budgeted response: its most
//! restrictive budget's status, percent spent, dollars left and the next
//! period start.

use http::{HeaderMap, HeaderValue};

use crate::budget::Standing;

pub fn add(h: &mut HeaderMap, s: &Standing) {
    h.insert("x-ccag-budget-status", HeaderValue::from_static(s.status.as_str()));
    let pct = format!("{}.{}", s.permille / 10, s.permille % 10);
    if let Ok(v) = HeaderValue::from_str(&pct) {
        h.insert("x-ccag-budget-percent", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ccag_proto::budget::dollars(s.remaining_micro_usd)) {
        h.insert("x-ccag-budget-remaining-usd", v);
    }
    if let Ok(v) = HeaderValue::from_str(&super::ratelimit_headers::rfc3339_unix(s.resets)) {
        h.insert("x-ccag-budget-resets", v);
    }
}
