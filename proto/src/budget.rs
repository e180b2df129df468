//! Budget semantics shared by the control plane (which counts spend and
//! writes threshold events) and the data planes (which enforce): calendar
//! periods in UTC and the evaluation of a policy's rules.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::config::v1::{BudgetAction, BudgetLine, BudgetPeriod, BudgetRule};

/// The start (Unix seconds) of the period holding `at`: 00:00 UTC of the
/// day, of the Monday, of the 1st. Nothing is stored or reset: a new period
/// is a new counter.
pub fn period_start(period: BudgetPeriod, at: i64) -> i64 {
    let Some(t) = DateTime::<Utc>::from_timestamp(at, 0) else { return 0 };
    let day = t.date_naive();
    let start = match period {
        BudgetPeriod::Weekly => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
        BudgetPeriod::Monthly => day.with_day(1).unwrap_or(day),
        BudgetPeriod::Daily | BudgetPeriod::Unspecified => day,
    };
    midnight(start)
}

/// The start of the period after the one beginning at `start`.
pub fn next_start(period: BudgetPeriod, start: i64) -> i64 {
    let Some(t) = DateTime::<Utc>::from_timestamp(start, 0) else { return 0 };
    let day = t.date_naive();
    let next = match period {
        BudgetPeriod::Weekly => day + Duration::days(7),
        BudgetPeriod::Monthly => {
            let (y, m) = if day.month() == 12 { (day.year() + 1, 1) } else { (day.year(), day.month() + 1) };
            NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(day)
        }
        BudgetPeriod::Daily | BudgetPeriod::Unspecified => day + Duration::days(1),
    };
    midnight(next)
}

fn midnight(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t).timestamp()).unwrap_or(0)
}

/// Micro-USD as dollars and cents, rounded half up: `8.80` (never negative).
pub fn dollars(micro: i64) -> String {
    let cents = (micro.max(0) + 5_000) / 10_000;
    format!("{}.{:02}", cents / 100, cents % 100)
}

pub fn period_name(p: BudgetPeriod) -> &'static str {
    match p {
        BudgetPeriod::Daily => "daily",
        BudgetPeriod::Weekly => "weekly",
        BudgetPeriod::Monthly => "monthly",
        BudgetPeriod::Unspecified => "unspecified",
    }
}

pub fn parse_period(s: &str) -> Option<BudgetPeriod> {
    match s {
        "daily" => Some(BudgetPeriod::Daily),
        "weekly" => Some(BudgetPeriod::Weekly),
        "monthly" => Some(BudgetPeriod::Monthly),
        _ => None,
    }
}

/// `spend` has reached `at_percent` of `limit` (exactly 100% is over).
pub fn reached(spend: i64, limit: i64, at_percent: u32) -> bool {
    limit > 0 && i128::from(spend) * 100 >= i128::from(at_percent) * i128::from(limit)
}

/// The rule in force: the last (highest) one whose threshold is reached.
pub fn in_force(rules: &[BudgetRule], spend: i64, limit: i64) -> Option<&BudgetRule> {
    rules.iter().filter(|r| reached(spend, limit, r.at_percent)).max_by_key(|r| r.at_percent)
}

/// How restrictive an action is; `None` (no rule reached) is the least.
pub fn severity(action: Option<BudgetAction>) -> u8 {
    match action {
        None | Some(BudgetAction::Unspecified) => 0,
        Some(BudgetAction::Notify) => 1,
        Some(BudgetAction::Shape) => 2,
        Some(BudgetAction::Block) => 3,
    }
}

/// The spend of `line` in the period holding `now`: what the line says if
/// it is for that period, else nothing yet.
pub fn spend_now(line: &BudgetLine, period_start_now: i64) -> i64 {
    if line.period_start == period_start_now {
        line.spend_micro_usd
    } else {
        0
    }
}

/// The named presets, and a rule list written `80:notify,100:shape:5,150:block`.
pub fn parse_policy(s: &str) -> Result<Vec<BudgetRule>, String> {
    let rule = |p: u32, a: BudgetAction, rpm: u32| BudgetRule { at_percent: p, action: a as i32, shaped_rpm: rpm };
    let rules = match s.trim() {
        "" | "standard" => vec![rule(80, BudgetAction::Notify, 0), rule(100, BudgetAction::Block, 0)],
        "soft" => vec![
            rule(80, BudgetAction::Notify, 0),
            rule(100, BudgetAction::Notify, 0),
            rule(150, BudgetAction::Block, 0),
        ],
        "shaped" => vec![
            rule(80, BudgetAction::Notify, 0),
            rule(100, BudgetAction::Shape, 5),
            rule(150, BudgetAction::Block, 0),
        ],
        list => {
            let mut out = Vec::new();
            for part in list.split(',') {
                let fields: Vec<&str> = part.trim().split(':').map(str::trim).collect();
                let pct = fields
                    .first()
                    .and_then(|p| p.trim_end_matches('%').parse::<u32>().ok())
                    .ok_or_else(|| format!("rule {part:?}: expected PERCENT:ACTION (e.g. 80:notify)"))?;
                let (action, rpm) = match fields.get(1..) {
                    Some(["notify"]) => (BudgetAction::Notify, 0),
                    Some(["block"]) => (BudgetAction::Block, 0),
                    Some(["shape", rpm]) => (
                        BudgetAction::Shape,
                        rpm.parse::<u32>()
                            .map_err(|_| format!("rule {part:?}: shape needs a requests-per-minute number"))?,
                    ),
                    Some(["shape"]) => return Err(format!("rule {part:?}: shape needs a rate, e.g. 100:shape:5")),
                    _ => return Err(format!("rule {part:?}: the action is notify, shape:RPM or block")),
                };
                out.push(rule(pct, action, rpm));
            }
            out
        }
    };
    validate(&rules)?;
    Ok(rules)
}

/// 1 to 5 rules, thresholds above 0 and ascending, a shape with a rate
/// above 0, at most one block and it comes last.
pub fn validate(rules: &[BudgetRule]) -> Result<(), String> {
    if rules.is_empty() || rules.len() > 5 {
        return Err("a policy has 1 to 5 rules".into());
    }
    for (i, r) in rules.iter().enumerate() {
        if r.at_percent == 0 || r.at_percent > 10_000 {
            return Err(format!("rule {}: the threshold is a percentage from 1 to 10000", i + 1));
        }
        if i > 0 && r.at_percent <= rules[i - 1].at_percent {
            return Err("thresholds must ascend".into());
        }
        match BudgetAction::try_from(r.action) {
            Ok(BudgetAction::Shape) if r.shaped_rpm == 0 => {
                return Err(format!("rule {}: shape needs a requests-per-minute rate above 0", i + 1))
            }
            // The rate limits' own bound.
            Ok(BudgetAction::Shape) if r.shaped_rpm > 100_000_000 => {
                return Err(format!("rule {}: shape takes at most 100000000 requests per minute", i + 1))
            }
            Ok(BudgetAction::Block) if i + 1 != rules.len() => return Err("block must be the last rule".into()),
            Ok(BudgetAction::Notify | BudgetAction::Shape | BudgetAction::Block) => {}
            _ => return Err(format!("rule {}: unknown action", i + 1)),
        }
    }
    Ok(())
}

/// The policy written back in the form `parse_policy` reads.
pub fn format_policy(rules: &[BudgetRule]) -> String {
    let preset = ["standard", "soft", "shaped"].into_iter().find(|p| parse_policy(p).ok().as_deref() == Some(rules));
    if let Some(p) = preset {
        return p.to_owned();
    }
    rules
        .iter()
        .map(|r| match BudgetAction::try_from(r.action) {
            Ok(BudgetAction::Shape) => format!("{}:shape:{}", r.at_percent, r.shaped_rpm),
            Ok(BudgetAction::Block) => format!("{}:block", r.at_percent),
            _ => format!("{}:notify", r.at_percent),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    #[test]
    fn dollars_are_rounded_to_the_cent() {
        assert_eq!(dollars(5_000_000), "5.00");
        assert_eq!(dollars(4_995_000), "5.00");
        assert_eq!(dollars(1_234), "0.00");
        assert_eq!(dollars(12_345_678), "12.35");
        assert_eq!(dollars(-5), "0.00");
    }

    #[test]
    fn a_day_starts_at_midnight_utc() {
        assert_eq!(period_start(BudgetPeriod::Daily, ts("2026-12-02T23:59:59Z")), ts("2026-12-02T00:00:00Z"));
        assert_eq!(period_start(BudgetPeriod::Daily, ts("2026-12-03T00:00:00Z")), ts("2026-12-03T00:00:00Z"));
        assert_eq!(next_start(BudgetPeriod::Daily, ts("2026-12-31T00:00:00Z")), ts("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn a_week_starts_on_monday() {
        // 2026-12-06 is a Sunday; 2026-12-07 a Monday.
        assert_eq!(period_start(BudgetPeriod::Weekly, ts("2026-12-06T23:00:00Z")), ts("2026-11-30T00:00:00Z"));
        assert_eq!(period_start(BudgetPeriod::Weekly, ts("2026-12-07T00:00:00Z")), ts("2026-12-07T00:00:00Z"));
        assert_eq!(next_start(BudgetPeriod::Weekly, ts("2026-12-28T00:00:00Z")), ts("2027-01-04T00:00:00Z"));
    }

    #[test]
    fn a_month_runs_to_its_last_day_including_a_leap_day() {
        assert_eq!(period_start(BudgetPeriod::Monthly, ts("2028-02-29T12:00:00Z")), ts("2028-02-01T00:00:00Z"));
        assert_eq!(next_start(BudgetPeriod::Monthly, ts("2028-02-01T00:00:00Z")), ts("2028-03-01T00:00:00Z"));
        assert_eq!(period_start(BudgetPeriod::Daily, ts("2028-02-29T12:00:00Z")), ts("2028-02-29T00:00:00Z"));
        assert_eq!(next_start(BudgetPeriod::Daily, ts("2028-02-29T00:00:00Z")), ts("2028-03-01T00:00:00Z"));
        assert_eq!(next_start(BudgetPeriod::Monthly, ts("2026-12-01T00:00:00Z")), ts("2027-01-01T00:00:00Z"));
        assert_eq!(period_start(BudgetPeriod::Monthly, ts("2026-01-31T23:59:59Z")), ts("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn exactly_the_threshold_is_reached_and_one_micro_dollar_below_is_not() {
        assert!(reached(10_000_000, 10_000_000, 100));
        assert!(!reached(9_999_999, 10_000_000, 100));
        assert!(reached(8_000_000, 10_000_000, 80));
        assert!(!reached(7_999_999, 10_000_000, 80));
        assert!(!reached(1, 0, 1), "no limit is never reached");
    }

    #[test]
    fn the_highest_reached_rule_is_in_force() {
        let shaped = parse_policy("shaped").unwrap();
        let limit = 1_000_000;
        assert_eq!(in_force(&shaped, 799_999, limit), None);
        assert_eq!(in_force(&shaped, 800_000, limit).unwrap().action(), BudgetAction::Notify);
        assert_eq!(in_force(&shaped, 1_000_000, limit).unwrap().action(), BudgetAction::Shape);
        assert_eq!(in_force(&shaped, 1_000_000, limit).unwrap().shaped_rpm, 5);
        assert_eq!(in_force(&shaped, 1_499_999, limit).unwrap().action(), BudgetAction::Shape);
        assert_eq!(in_force(&shaped, 1_500_000, limit).unwrap().action(), BudgetAction::Block);
    }

    #[test]
    fn presets_are_as_documented() {
        let std = parse_policy("standard").unwrap();
        assert_eq!(
            std.iter().map(|r| (r.at_percent, r.action())).collect::<Vec<_>>(),
            [(80, BudgetAction::Notify), (100, BudgetAction::Block)]
        );
        let soft = parse_policy("soft").unwrap();
        assert_eq!(
            soft.iter().map(|r| (r.at_percent, r.action())).collect::<Vec<_>>(),
            [(80, BudgetAction::Notify), (100, BudgetAction::Notify), (150, BudgetAction::Block)]
        );
        assert_eq!(in_force(&soft, 1_000_000, 1_000_000).unwrap().action(), BudgetAction::Notify);
    }

    #[test]
    fn rule_lists_parse_and_round_trip() {
        let r = parse_policy("50:notify, 90:shape:3, 120:block").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(format_policy(&r), "50:notify,90:shape:3,120:block");
        assert_eq!(format_policy(&parse_policy("80:notify,100:block").unwrap()), "standard");
    }

    #[test]
    fn bad_policies_are_refused_with_a_reason() {
        for bad in [
            "",
            "x",
            "100:block,120:notify",
            "90:notify,80:block",
            "0:block",
            "100:shape",
            "100:shape:0",
            "1:a,2:b,3:c,4:d,5:e,6:f",
        ] {
            if bad.is_empty() {
                continue; // the empty policy is the standard one
            }
            assert!(parse_policy(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_policy("1:notify,2:notify,3:notify,4:notify,5:notify,6:block").is_err());
    }
}
