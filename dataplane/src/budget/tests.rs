use ccag_proto::budget::parse_policy;
use ccag_proto::config::v1::{BudgetSource, ModelPrice, TokenRates};

use super::*;

/// 2026-12-02T12:00:00Z, a Wednesday.
const NOW: i64 = 1_796_212_800;

fn line(id: &str, period: BudgetPeriod, limit_usd: i64, spend_micro: i64, policy: &str) -> BudgetLine {
    BudgetLine {
        budget_id: id.into(),
        period: period as i32,
        limit_micro_usd: limit_usd * 1_000_000,
        rules: parse_policy(policy).unwrap(),
        source: BudgetSource::User as i32,
        label: format!("user {id}"),
        period_start: period_start(period, NOW),
        spend_micro_usd: spend_micro,
    }
}

fn prices() -> PriceTable {
    PriceTable {
        models: vec![ModelPrice {
            model: "claude-x".into(),
            rates: Some(TokenRates {
                input: 1_000_000,
                output: 0,
                cache_write_5m: 0,
                cache_write_1h: 0,
                cache_read: 0,
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn budgets(users: Vec<(&str, Vec<BudgetLine>)>, teams: Vec<(&str, Vec<BudgetLine>)>, dataplanes: u32) -> Budgets {
    let b = Budgets::default();
    let v = |(id, lines): (&str, Vec<BudgetLine>)| (id.to_owned(), BudgetVerdict { id: id.into(), lines });
    b.install(Book {
        users: users.into_iter().map(v).collect(),
        teams: teams.into_iter().map(v).collect(),
        prices: prices(),
        dataplanes,
    });
    b
}

/// A request of `micro` micro-USD (one input token costs one micro-USD here).
fn spend(b: &Budgets, user: &str, team: &str, micro: u64) -> i64 {
    b.charge(user, team, "", "claude-x", &Quantities { input: micro, ..Default::default() })
}

fn status(v: &Verdict) -> Status {
    v.standing().unwrap().status
}

#[test]
fn a_key_without_budgets_is_unbudgeted() {
    let b = budgets(vec![], vec![], 1);
    assert_eq!(b.judge("u1", "t1", NOW), Verdict::Unbudgeted);
    assert_eq!(spend(&b, "u1", "t1", 100), 0, "nothing is priced for an unbudgeted request");
}

#[test]
fn below_the_first_threshold_is_ok_and_from_it_a_warning() {
    let b = budgets(vec![("u1", vec![line("u1", BudgetPeriod::Daily, 10, 7_999_999, "standard")])], vec![], 1);
    let v = b.judge("u1", "", NOW);
    assert_eq!(status(&v), Status::Ok);
    assert_eq!(v.standing().unwrap().permille, 799);
    assert_eq!(v.standing().unwrap().remaining_micro_usd, 2_000_001);
    spend(&b, "u1", "", 1);
    assert!(matches!(b.judge("u1", "", NOW), Verdict::Admit(Standing { status: Status::Warning, permille: 800, .. })));
}

#[test]
fn exactly_the_limit_blocks_with_the_period_and_its_reset() {
    let b = budgets(vec![("u1", vec![line("u1", BudgetPeriod::Daily, 5, 5_000_000, "standard")])], vec![], 1);
    match b.judge("u1", "", NOW) {
        Verdict::Block { message, retry_after_secs, standing } => {
            assert_eq!(standing.status, Status::Blocked);
            assert_eq!(standing.resets, NOW + 12 * 3600);
            assert_eq!(retry_after_secs, 12 * 3600);
            assert!(message.contains("daily budget of user u1"), "{message}");
            assert!(message.contains("$5.00 of $5.00"), "{message}");
            assert!(message.contains("2026-12-03T00:00:00Z"), "{message}");
        }
        v => panic!("not blocked: {v:?}"),
    }
}

#[test]
fn a_zero_limit_blocks_everything() {
    let b = budgets(vec![("u1", vec![line("u1", BudgetPeriod::Monthly, 0, 0, "standard")])], vec![], 1);
    assert!(matches!(b.judge("u1", "", NOW), Verdict::Block { .. }));
}

#[test]
fn the_data_planes_own_unacknowledged_spend_counts_at_once() {
    let b = budgets(vec![("u1", vec![line("u1", BudgetPeriod::Daily, 1, 0, "standard")])], vec![], 1);
    assert_eq!(spend(&b, "u1", "", 999_999), 999_999);
    assert_eq!(status(&b.judge("u1", "", NOW)), Status::Warning);
    spend(&b, "u1", "", 1);
    assert!(matches!(b.judge("u1", "", NOW), Verdict::Block { .. }));
}

#[test]
fn acknowledged_spend_moves_from_pending_to_the_counters_and_counts_once() {
    let b = budgets(vec![("u1", vec![line("u1", BudgetPeriod::Daily, 1, 0, "standard")])], vec![], 1);
    let cost = spend(&b, "u1", "", 600_000);
    let counter = |v| SpendCounter {
        scope: LimitScope::User as i32,
        id: "u1".into(),
        period: BudgetPeriod::Daily as i32,
        period_start: period_start(BudgetPeriod::Daily, NOW),
        spend_micro_usd: v,
    };
    b.observe(&[counter(600_000)]);
    b.settle("u1", "", cost);
    assert_eq!(b.judge("u1", "", NOW).standing().unwrap().permille, 600);
    // An older counter (a reordered report) does not lower what was seen.
    b.observe(&[counter(100_000)]);
    assert_eq!(b.judge("u1", "", NOW).standing().unwrap().permille, 600);
    // Settling more than is pending (records spooled before a restart) stops at zero.
    b.settle("u1", "", 5_000_000);
    assert_eq!(b.judge("u1", "", NOW).standing().unwrap().permille, 600);
}

#[test]
fn a_verdict_for_an_earlier_period_counts_as_nothing_spent() {
    let mut l = line("u1", BudgetPeriod::Daily, 1, 2_000_000, "standard");
    l.period_start -= 86_400;
    let b = budgets(vec![("u1", vec![l])], vec![], 1);
    assert_eq!(status(&b.judge("u1", "", NOW)), Status::Ok);
}

#[test]
fn a_team_pool_blocks_every_member() {
    let b = budgets(vec![], vec![("t1", vec![line("t1", BudgetPeriod::Weekly, 50, 50_000_000, "standard")])], 1);
    assert!(matches!(b.judge("u1", "t1", NOW), Verdict::Block { .. }));
    assert!(matches!(b.judge("u2", "t1", NOW), Verdict::Block { .. }));
    assert_eq!(b.judge("u2", "t2", NOW), Verdict::Unbudgeted);
}

#[test]
fn the_most_restrictive_budget_wins() {
    let b = budgets(
        vec![("u1", vec![line("u1", BudgetPeriod::Daily, 10, 9_000_000, "standard")])],
        vec![("t1", vec![line("t1", BudgetPeriod::Monthly, 100, 10_000_000, "standard")])],
        1,
    );
    // The user's 90% warning beats the team's 10%.
    assert_eq!(b.judge("u1", "t1", NOW).standing().unwrap().permille, 900);
}

#[test]
fn of_several_spent_budgets_the_one_that_lifts_last_is_named() {
    let b = budgets(
        vec![(
            "u1",
            vec![
                line("d", BudgetPeriod::Daily, 1, 1_000_000, "standard"),
                line("m", BudgetPeriod::Monthly, 1, 1_000_000, "standard"),
            ],
        )],
        vec![],
        1,
    );
    match b.judge("u1", "", NOW) {
        Verdict::Block { message, .. } => assert!(message.contains("monthly"), "{message}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn past_a_shape_threshold_the_rate_is_reduced_and_split_between_data_planes() {
    let b = budgets(vec![("u1", vec![line("u1", BudgetPeriod::Daily, 1, 1_000_000, "shaped")])], vec![], 2);
    match b.judge("u1", "", NOW) {
        Verdict::Shape { rpm, scope, standing } => {
            assert_eq!((rpm, scope, standing.status), (3, LimitScope::User, Status::Shaped));
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn with_several_data_planes_each_spends_only_its_part_of_the_headroom() {
    // $1 cap, $0.40 counted: $0.60 of headroom, $0.30 for each of two.
    let b = budgets(vec![("u1", vec![line("u1", BudgetPeriod::Daily, 1, 400_000, "standard")])], vec![], 2);
    spend(&b, "u1", "", 299_999);
    assert!(matches!(b.judge("u1", "", NOW), Verdict::Admit(_)));
    spend(&b, "u1", "", 1);
    assert!(matches!(b.judge("u1", "", NOW), Verdict::Hold { .. }));
    // The next verdict counts it (and whatever the others spent): the hold lifts.
    let mut l = line("u1", BudgetPeriod::Daily, 1, 700_000, "standard");
    l.spend_micro_usd = 700_000;
    b.install(Book {
        users: [("u1".to_owned(), BudgetVerdict { id: "u1".into(), lines: vec![l] })].into_iter().collect(),
        prices: prices(),
        dataplanes: 2,
        ..Default::default()
    });
    b.settle("u1", "", 300_000);
    assert!(matches!(b.judge("u1", "", NOW), Verdict::Admit(_)));
}

#[test]
fn a_single_data_plane_never_holds() {
    let b = budgets(vec![("u1", vec![line("u1", BudgetPeriod::Daily, 1, 0, "standard")])], vec![], 1);
    spend(&b, "u1", "", 990_000);
    assert!(matches!(b.judge("u1", "", NOW), Verdict::Admit(_)));
}

#[test]
fn own_spend_of_a_subject_no_longer_budgeted_is_forgotten() {
    let b = budgets(vec![("u1", vec![line("u1", BudgetPeriod::Daily, 1, 0, "standard")])], vec![], 1);
    spend(&b, "u1", "", 500_000);
    b.install(Book { prices: prices(), dataplanes: 1, ..Default::default() });
    assert!(b.users.is_empty());
}
