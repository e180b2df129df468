//! The price table shipped with the control plane (docs/budgets.md lists
//! it). Figures are US dollars per million tokens as Anthropic lists them,
//! which is what Bedrock charges on the global cross-region profile; the
//! regional (geo) profiles of the models from Claude 4.5 on cost 10% more.
//!
//! Checked against the table Claude Code 2.1.332 prices its own usage with
//! (its `total_cost_usd`): every standard rate below is that table's. It
//! has no tier above 200k input tokens for the Claude 4 to 4.6 models with
//! a 1M-token beta; those long-context rates are Anthropic's published
//! ones. Models with a native 1M window are priced flat.

use chrono::Utc;

use crate::store::entities::model_prices;

/// Dollars per million tokens: input, output, 5-minute cache write,
/// 1-hour cache write, cache read.
pub type Usd = (f64, f64, f64, f64, f64);

pub struct Default {
    pub model: &'static str,
    pub rates: Usd,
    /// (threshold in input tokens, rates above it).
    pub long_context: Option<(u64, Usd)>,
    pub regional_premium_bp: u32,
}

/// A model without a price: the dearest figures of the table.
pub const UNPRICED: ccag_proto::config::v1::TokenRates = ccag_proto::config::v1::TokenRates {
    input: 15_000_000,
    output: 75_000_000,
    cache_write_5m: 18_750_000,
    cache_write_1h: 30_000_000,
    cache_read: 1_500_000,
};

/// Anthropic's ratios: a 5-minute cache write is 1.25x input, a 1-hour one
/// 2x; the read rate differs by model.
const fn tier(input: f64, output: f64, read: f64) -> Usd {
    (input, output, input * 1.25, input * 2.0, read)
}

/// The premium of a regional profile over the global one.
const REGIONAL: u32 = 1_000;
/// Above this many input tokens the 1M-beta models charge their long-context rates.
const LONG: u64 = 200_000;

const fn d(model: &'static str, rates: Usd, long_context: Option<(u64, Usd)>, regional_premium_bp: u32) -> Default {
    Default { model, rates, long_context, regional_premium_bp }
}

const OPUS_45: Usd = tier(5.0, 25.0, 0.5);
const OPUS_4: Usd = tier(15.0, 75.0, 1.5);
const SONNET_4: Usd = tier(3.0, 15.0, 0.3);
const SONNET_4_LONG: Option<(u64, Usd)> = Some((LONG, tier(6.0, 22.5, 0.6)));

pub const DEFAULTS: &[Default] = &[
    // Opus.
    d("claude-opus-5-5", tier(4.0, 20.0, 0.2), None, REGIONAL),
    d("claude-opus-5", OPUS_45, None, REGIONAL),
    d("claude-opus-4-8", OPUS_45, None, REGIONAL),
    d("claude-opus-4-7", OPUS_45, None, REGIONAL),
    d("claude-opus-4-6", OPUS_45, Some((LONG, tier(10.0, 37.5, 1.0))), REGIONAL),
    d("claude-opus-4-5", OPUS_45, None, REGIONAL),
    d("claude-opus-4-1", OPUS_4, None, 0),
    // Opus 4 (`claude-opus-4-20250514`), and any other 4.x without a row.
    d("claude-opus-4", OPUS_4, None, 0),
    // Sonnet.
    d("claude-sonnet-5-5", tier(2.0, 10.0, 0.1), None, REGIONAL),
    d("claude-sonnet-5", tier(2.0, 10.0, 0.2), None, REGIONAL),
    d("claude-sonnet-4-6", SONNET_4, SONNET_4_LONG, REGIONAL),
    d("claude-sonnet-4-5", SONNET_4, SONNET_4_LONG, REGIONAL),
    d("claude-sonnet-4", SONNET_4, SONNET_4_LONG, 0),
    d("claude-3-7-sonnet", SONNET_4, None, 0),
    d("claude-3-5-sonnet", SONNET_4, None, 0),
    // Haiku.
    d("claude-haiku-5-5", tier(0.1, 0.5, 0.01), Some((100_000, tier(0.5, 2.5, 0.05))), REGIONAL),
    d("claude-haiku-4-5", tier(1.0, 5.0, 0.1), None, REGIONAL),
    d("claude-3-5-haiku", tier(0.8, 4.0, 0.08), None, 0),
    // The research-preview families.
    d("claude-fable-5-2", tier(8.0, 40.0, 0.2), None, REGIONAL),
    d("claude-fable-5-1", tier(10.0, 50.0, 0.25), None, REGIONAL),
    d("claude-fable-5", tier(10.0, 50.0, 1.0), None, REGIONAL),
    d("claude-mythos-5-2", tier(8.0, 40.0, 0.2), None, REGIONAL),
    d("claude-mythos-5-1", tier(10.0, 50.0, 0.25), None, REGIONAL),
    d("claude-mythos-5", tier(10.0, 50.0, 1.0), None, REGIONAL),
    // The short aliases, as the model catalogue resolves them today.
    d("opus", tier(4.0, 20.0, 0.2), None, REGIONAL),
    d("sonnet", tier(2.0, 10.0, 0.1), None, REGIONAL),
    d("haiku", tier(0.1, 0.5, 0.01), Some((100_000, tier(0.5, 2.5, 0.05))), REGIONAL),
];

fn micro(usd: f64) -> i64 {
    (usd * 1e6).round() as i64
}

impl Default {
    pub fn row(&self) -> model_prices::Model {
        let (i, o, w5, w1, r) = self.rates;
        let (t, (li, lo, lw5, lw1, lr)) = self.long_context.unwrap_or((0, (0.0, 0.0, 0.0, 0.0, 0.0)));
        model_prices::Model {
            model: self.model.to_owned(),
            input_micro: micro(i),
            output_micro: micro(o),
            cache_write_micro: micro(w5),
            cache_read_micro: micro(r),
            updated_at: Utc::now(),
            cache_write_1h_micro: micro(w1),
            lc_input_micro: micro(li),
            lc_output_micro: micro(lo),
            lc_cache_write_micro: micro(lw5),
            lc_cache_write_1h_micro: micro(lw1),
            lc_cache_read_micro: micro(lr),
            lc_threshold: t as i64,
            regional_premium_bp: i64::from(self.regional_premium_bp),
            source: super::Source::Default.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccag_proto::pricing::Quantities;

    fn table() -> ccag_proto::config::v1::PriceTable {
        let rows: Vec<_> = DEFAULTS.iter().map(Default::row).collect();
        crate::pricing::table(&rows)
    }

    /// Claude Code 2.1.332 prices Opus 5.5 at $4 / $20, cache writes at
    /// $5 / $8 (5 minutes / 1 hour) and reads at $0.20 per million.
    #[test]
    fn opus_5_5_is_priced_as_claude_code_prices_it() {
        let q = Quantities {
            input: 1_000_000,
            output: 1_000_000,
            cache_write_5m: 1_000_000,
            cache_write_1h: 1_000_000,
            cache_read: 1_000_000,
            web_searches: 0,
        };
        let p = table().cost("global.anthropic.claude-opus-5-5", "claude-opus-5-5", &q);
        assert_eq!(p.micro_usd, 4_000_000 + 20_000_000 + 5_000_000 + 8_000_000 + 200_000);
        assert!(!p.unpriced);
    }

    #[test]
    fn every_catalogue_model_has_a_price() {
        let t = table();
        for m in [
            "claude-opus-4-20250514",
            "claude-sonnet-4-20250514",
            "claude-opus-4-1-20250805",
            "claude-3-7-sonnet-20250219",
            "claude-haiku-4-5-20251001",
            "claude-opus-4-6-v1",
            "claude-sonnet-5-5",
            "claude-haiku-5-5",
            "claude-fable-5",
        ] {
            assert!(t.find(m, "").is_some(), "{m} has no price");
        }
    }

    #[test]
    fn a_regional_profile_costs_ten_percent_more_for_newer_models_only() {
        let t = table();
        let q = Quantities { input: 100_000, ..Quantities::default() };
        assert_eq!(t.cost("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "", &q).micro_usd, 330_000);
        assert_eq!(t.cost("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "", &q).micro_usd, 300_000);
        assert_eq!(t.cost("us.anthropic.claude-sonnet-4-20250514-v1:0", "", &q).micro_usd, 300_000);
    }

    #[test]
    fn sonnet_4_5_above_200k_input_tokens_pays_the_long_context_rates() {
        let t = table();
        let q = Quantities { input: 150_000, cache_read: 60_000, output: 1_000, ..Quantities::default() };
        // 150k x $6 + 60k x $0.60 + 1k x $22.50, per million.
        assert_eq!(t.cost("global.anthropic.claude-sonnet-4-5", "", &q).micro_usd, 900_000 + 36_000 + 22_500);
    }

    #[test]
    fn an_unknown_model_pays_the_dearest_rates_of_the_table() {
        let p = table().cost(
            "anthropic.claude-unknown-9",
            "claude-unknown-9",
            &Quantities { output: 1_000_000, ..Quantities::default() },
        );
        assert!(p.unpriced);
        assert_eq!(p.micro_usd, 75_000_000);
    }
}
