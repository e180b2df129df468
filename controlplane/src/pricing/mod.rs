//! The price table: the rows admins see and edit (`ccag prices`), the
//! shipped defaults they start from, and the table in the form both the
//! control plane (pricing usage records as they arrive) and the data planes
//! (counting what they admitted) compute costs with.

pub mod defaults;

use ccag_proto::config::v1::{ModelPrice, PriceTable, TokenRates};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, Set};

use crate::store::entities::model_prices;

/// Where a row came from. A shipped default is corrected by a later
/// release; an admin's row is never overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    Admin,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Source {
        if s == "default" {
            Source::Default
        } else {
            Source::Admin
        }
    }
}

/// Micro-USD per web search: $10 per thousand, Anthropic's list price.
pub const WEB_SEARCH_MICRO_USD: i64 = 10_000;

pub fn model_price(p: &model_prices::Model) -> ModelPrice {
    let lc = p.lc_threshold > 0;
    ModelPrice {
        model: p.model.clone(),
        rates: Some(TokenRates {
            input: p.input_micro,
            output: p.output_micro,
            cache_write_5m: p.cache_write_micro,
            cache_write_1h: p.cache_write_1h_micro,
            cache_read: p.cache_read_micro,
        }),
        long_context: lc.then_some(TokenRates {
            input: p.lc_input_micro,
            output: p.lc_output_micro,
            cache_write_5m: p.lc_cache_write_micro,
            cache_write_1h: p.lc_cache_write_1h_micro,
            cache_read: p.lc_cache_read_micro,
        }),
        long_context_threshold: p.lc_threshold.max(0) as u64,
        regional_premium_bp: p.regional_premium_bp.clamp(0, 100_000) as u32,
    }
}

/// The table for computing costs. A model without a row is charged the
/// highest rate of each kind in the table (never nothing), and flagged.
pub fn table(rows: &[model_prices::Model]) -> PriceTable {
    let models: Vec<ModelPrice> = rows.iter().map(model_price).collect();
    let mut worst = TokenRates::default();
    let mut worst_bp = 0;
    for m in &models {
        for r in m.rates.iter().chain(m.long_context.iter()) {
            worst.input = worst.input.max(r.input);
            worst.output = worst.output.max(r.output);
            worst.cache_write_5m = worst.cache_write_5m.max(r.cache_write_5m);
            worst.cache_write_1h = worst.cache_write_1h.max(r.cache_write_1h);
            worst.cache_read = worst.cache_read.max(r.cache_read);
        }
        worst_bp = worst_bp.max(m.regional_premium_bp);
    }
    if models.is_empty() {
        worst = defaults::UNPRICED;
    }
    PriceTable {
        models,
        unpriced: Some(ModelPrice {
            model: String::new(),
            rates: Some(worst),
            long_context: None,
            long_context_threshold: 0,
            regional_premium_bp: worst_bp,
        }),
        web_search_micro_usd: WEB_SEARCH_MICRO_USD,
    }
}

pub async fn load<C: ConnectionTrait>(c: &C) -> Result<PriceTable, DbErr> {
    Ok(table(&model_prices::Entity::find().all(c).await?))
}

/// Brings the shipped defaults into the table: missing rows are added and
/// rows still marked `default` take this release's figures; an admin's row
/// is left alone. Returns whether anything changed.
pub async fn seed<C: ConnectionTrait>(c: &C) -> Result<bool, DbErr> {
    let mut changed = false;
    for d in defaults::DEFAULTS {
        let want = d.row();
        match model_prices::Entity::find_by_id(d.model.to_owned()).one(c).await? {
            Some(row) if Source::parse(&row.source) == Source::Admin => {}
            Some(row) if same_figures(&row, &want) => {}
            found => {
                let am = model_prices::ActiveModel {
                    model: Set(want.model.clone()),
                    input_micro: Set(want.input_micro),
                    output_micro: Set(want.output_micro),
                    cache_write_micro: Set(want.cache_write_micro),
                    cache_read_micro: Set(want.cache_read_micro),
                    updated_at: Set(Utc::now()),
                    cache_write_1h_micro: Set(want.cache_write_1h_micro),
                    lc_input_micro: Set(want.lc_input_micro),
                    lc_output_micro: Set(want.lc_output_micro),
                    lc_cache_write_micro: Set(want.lc_cache_write_micro),
                    lc_cache_write_1h_micro: Set(want.lc_cache_write_1h_micro),
                    lc_cache_read_micro: Set(want.lc_cache_read_micro),
                    lc_threshold: Set(want.lc_threshold),
                    regional_premium_bp: Set(want.regional_premium_bp),
                    source: Set(Source::Default.as_str().to_owned()),
                };
                if found.is_some() {
                    am.update(c).await?;
                } else {
                    am.insert(c).await?;
                }
                changed = true;
            }
        }
    }
    Ok(changed)
}

fn same_figures(a: &model_prices::Model, b: &model_prices::Model) -> bool {
    let figures = |m: &model_prices::Model| {
        [
            m.input_micro,
            m.output_micro,
            m.cache_write_micro,
            m.cache_write_1h_micro,
            m.cache_read_micro,
            m.lc_input_micro,
            m.lc_output_micro,
            m.lc_cache_write_micro,
            m.lc_cache_write_1h_micro,
            m.lc_cache_read_micro,
            m.lc_threshold,
            m.regional_premium_bp,
        ]
    };
    figures(a) == figures(b)
}
