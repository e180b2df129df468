//! The cost of one request from a price table, in integer micro-USD. The
//! control plane prices every usage record with it when the record arrives
//! (and freezes the figure); a data plane uses the same function to count
//! what it admitted before the control plane has counted it.

use crate::config::v1::{ModelPrice, PriceTable, TokenRates};

/// One request's billable quantities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quantities {
    /// Uncached input tokens.
    pub input: u64,
    pub output: u64,
    /// Cache writes with the 5-minute TTL.
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    pub web_searches: u64,
}

impl Quantities {
    /// From the counts as Bedrock reports them: `cache_write` is every cache
    /// write, `cache_write_1h` the part of it written with the 1-hour TTL.
    pub fn from_usage(input: u64, output: u64, cache_write: u64, cache_write_1h: u64, cache_read: u64) -> Self {
        let cache_write_1h = cache_write_1h.min(cache_write);
        Quantities {
            input,
            output,
            cache_write_5m: cache_write - cache_write_1h,
            cache_write_1h,
            cache_read,
            web_searches: 0,
        }
    }

    /// What the long-context threshold is judged on: every input token,
    /// cached or not.
    pub fn context(&self) -> u64 {
        self.input
            .saturating_add(self.cache_write_5m)
            .saturating_add(self.cache_write_1h)
            .saturating_add(self.cache_read)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priced {
    pub micro_usd: i64,
    /// No row matched: charged at the table's `unpriced` rates.
    pub unpriced: bool,
}

/// The name a price is looked up by: the `claude-…` part of a Bedrock id
/// (`us.anthropic.claude-opus-5-5` → `claude-opus-5-5`), without a `[1m]`
/// context suffix.
pub fn price_name(model: &str) -> &str {
    let m = model.find("claude-").map_or(model, |i| &model[i..]);
    m.split('[').next().unwrap_or(m)
}

/// A geo inference profile (`us.`, `eu.`, `apac.` …) rather than the
/// global one or an in-region foundation model.
pub fn is_regional_profile(bedrock_model: &str) -> bool {
    match bedrock_model.split_once('.') {
        Some((prefix, rest)) => {
            prefix != "global"
                && rest.contains('.')
                && prefix.len() <= 4
                && prefix.bytes().all(|b| b.is_ascii_lowercase())
        }
        None => false,
    }
}

impl PriceTable {
    /// The longest matching prefix, tried on the Bedrock model (what AWS
    /// bills) first, then on the name the client sent.
    pub fn find(&self, bedrock_model: &str, model: &str) -> Option<&ModelPrice> {
        let lookup = |name: &str| {
            let name = price_name(name);
            if name.is_empty() {
                return None;
            }
            self.models.iter().filter(|p| name.starts_with(p.model.as_str())).max_by_key(|p| p.model.len())
        };
        lookup(bedrock_model).or_else(|| lookup(model))
    }

    pub fn cost(&self, bedrock_model: &str, model: &str, q: &Quantities) -> Priced {
        let (price, unpriced) = match self.find(bedrock_model, model) {
            Some(p) => (Some(p), false),
            None => (self.unpriced.as_ref(), true),
        };
        let tokens = price.map_or(0, |p| p.token_cost(q, is_regional_profile(bedrock_model)));
        let searches = i128::from(self.web_search_micro_usd.max(0)) * i128::from(q.web_searches);
        Priced { micro_usd: clamp(i128::from(tokens) + searches), unpriced }
    }
}

impl ModelPrice {
    /// Micro-USD for the tokens, rounded half up once, on the sum.
    pub fn token_cost(&self, q: &Quantities, regional: bool) -> i64 {
        let long = self.long_context_threshold > 0 && q.context() > self.long_context_threshold;
        let rates = match (&self.long_context, &self.rates) {
            (Some(lc), _) if long => *lc,
            (_, Some(r)) => *r,
            _ => TokenRates::default(),
        };
        let part = |n: u64, rate: i64| i128::from(n) * i128::from(rate.max(0));
        // In micro-USD per million: divided by a million at the end.
        let mut scaled = part(q.input, rates.input)
            + part(q.output, rates.output)
            + part(q.cache_write_5m, rates.cache_write_5m)
            + part(q.cache_write_1h, rates.cache_write_1h)
            + part(q.cache_read, rates.cache_read);
        let mut divisor: i128 = 1_000_000;
        if regional && self.regional_premium_bp > 0 {
            scaled *= 10_000 + i128::from(self.regional_premium_bp);
            divisor *= 10_000;
        }
        clamp((scaled + divisor / 2) / divisor)
    }
}

fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(input: i64, output: i64, w5: i64, w1: i64, read: i64) -> TokenRates {
        TokenRates { input, output, cache_write_5m: w5, cache_write_1h: w1, cache_read: read }
    }

    fn table() -> PriceTable {
        PriceTable {
            models: vec![
                ModelPrice {
                    model: "claude-sonnet-4".into(),
                    rates: Some(rates(3_000_000, 15_000_000, 3_750_000, 6_000_000, 300_000)),
                    long_context: Some(rates(6_000_000, 22_500_000, 7_500_000, 12_000_000, 600_000)),
                    long_context_threshold: 200_000,
                    regional_premium_bp: 1_000,
                },
                ModelPrice {
                    model: "claude-sonnet-4-5".into(),
                    rates: Some(rates(3_000_000, 15_000_000, 3_750_000, 6_000_000, 300_000)),
                    ..Default::default()
                },
            ],
            unpriced: Some(ModelPrice {
                model: String::new(),
                rates: Some(rates(10_000_000, 50_000_000, 12_500_000, 20_000_000, 1_000_000)),
                ..Default::default()
            }),
            web_search_micro_usd: 10_000,
        }
    }

    #[test]
    fn every_token_kind_has_its_own_rate() {
        let t = table();
        let q = Quantities {
            input: 1_000_000,
            output: 100_000,
            cache_write_5m: 1_000_000,
            cache_write_1h: 1_000_000,
            cache_read: 1_000_000,
            web_searches: 0,
        };
        let want = 3_000_000 + 1_500_000 + 3_750_000 + 6_000_000 + 300_000;
        assert_eq!(t.cost("", "claude-sonnet-4-5-20250929", &q), Priced { micro_usd: want, unpriced: false });
    }

    #[test]
    fn the_one_hour_part_of_cache_writes_is_split_off() {
        let q = Quantities::from_usage(0, 0, 100, 40, 0);
        assert_eq!((q.cache_write_5m, q.cache_write_1h), (60, 40));
        // A report claiming more 1-hour writes than writes is capped.
        assert_eq!(Quantities::from_usage(0, 0, 10, 50, 0).cache_write_1h, 10);
    }

    #[test]
    fn long_context_rates_apply_to_the_whole_request_above_the_threshold() {
        let t = table();
        let at = Quantities { input: 150_000, cache_read: 50_000, ..Default::default() };
        let above = Quantities { input: 150_001, cache_read: 50_000, ..Default::default() };
        assert_eq!(t.cost("", "claude-sonnet-4-20250514", &at).micro_usd, 450_000 + 15_000);
        assert_eq!(t.cost("", "claude-sonnet-4-20250514", &above).micro_usd, 900_006 + 30_000);
    }

    #[test]
    fn regional_profiles_pay_the_premium_and_global_ones_do_not() {
        let t = table();
        let q = Quantities { input: 100_000, ..Default::default() };
        assert_eq!(t.cost("us.anthropic.claude-sonnet-4-20250514-v1:0", "", &q).micro_usd, 330_000);
        assert_eq!(t.cost("global.anthropic.claude-sonnet-4-20250514-v1:0", "", &q).micro_usd, 300_000);
        assert_eq!(t.cost("anthropic.claude-sonnet-4-20250514-v1:0", "", &q).micro_usd, 300_000);
        assert!(is_regional_profile("apac.anthropic.claude-x"));
        assert!(!is_regional_profile("arn:aws:bedrock:us-east-1:1:application-inference-profile/x"));
    }

    #[test]
    fn the_bedrock_model_is_priced_before_the_client_name_and_1m_suffixes_are_ignored() {
        let t = table();
        assert_eq!(t.find("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "opus").unwrap().model, "claude-sonnet-4-5");
        assert_eq!(t.find("arn:aws:bedrock:x", "claude-sonnet-4-5[1m]").unwrap().model, "claude-sonnet-4-5");
    }

    #[test]
    fn an_unknown_model_is_never_free() {
        let t = table();
        let p =
            t.cost("anthropic.claude-fable-9", "claude-fable-9", &Quantities { input: 1_000, ..Default::default() });
        assert_eq!(p, Priced { micro_usd: 10_000, unpriced: true });
    }

    #[test]
    fn web_searches_are_priced_per_search() {
        let t = table();
        let q = Quantities { web_searches: 3, ..Default::default() };
        assert_eq!(t.cost("", "claude-sonnet-4-5", &q).micro_usd, 30_000);
    }

    #[test]
    fn rounding_is_half_up_once_and_extremes_do_not_overflow() {
        let p = ModelPrice { rates: Some(rates(0, 0, 0, 0, 80_000)), ..Default::default() };
        let q = |n| Quantities { cache_read: n, ..Default::default() };
        assert_eq!(p.token_cost(&q(7), false), 1);
        assert_eq!(p.token_cost(&q(6), false), 0);
        let huge = ModelPrice { rates: Some(rates(i64::MAX, 0, 0, 0, 0)), ..Default::default() };
        assert_eq!(huge.token_cost(&Quantities { input: u64::MAX, ..Default::default() }, true), i64::MAX);
    }
}
