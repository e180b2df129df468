//! Prompt caching as Bedrock reports it. A `cache_control` breakpoint
//! marks the end of a prefix (tools, then system, then messages, in that
//! order). The first request with a prefix writes it to the cache
//! (`cache_creation_input_tokens`, split by TTL in `cache_creation`); a
//! later request with the same prefix, before the TTL runs out, reads it
//! (`cache_read_input_tokens`), and the hit renews the TTL. Prefixes below
//! the minimum cacheable length are neither written nor read.
//!
//! Prefixes are compared without their `cache_control` markers, since a
//! client moves its last marker forward from one turn to the next. Tokens
//! are counted as `estimate_input_tokens` counts them, so the three parts
//! add up to the request's input tokens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::behaviour::tokens_for_chars;

/// Below this a prefix is not cached (Anthropic's minimum for most models).
pub const MIN_TOKENS: u64 = 1024;
const TTL_5M: Duration = Duration::from_secs(300);
const TTL_1H: Duration = Duration::from_secs(3600);
/// Entries kept at most; the oldest expiry goes first.
const CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUse {
    pub read: u64,
    pub write_5m: u64,
    pub write_1h: u64,
}

impl CacheUse {
    pub fn writes(&self) -> u64 {
        self.write_5m + self.write_1h
    }
}

/// One block boundary: the digest of the prefix ending there, its size in
/// characters, and, at a breakpoint, its TTL. Prefixes are written only at
/// breakpoints but read at any boundary before the last one, as Anthropic
/// looks back for the longest cached prefix.
struct Breakpoint {
    digest: [u8; 32],
    chars: usize,
    ttl: Option<Duration>,
}

#[derive(Default)]
pub struct PromptCache {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

fn without_markers(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter().filter(|(k, _)| *k != "cache_control").map(|(k, v)| (k.clone(), without_markers(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_markers).collect()),
        other => other.clone(),
    }
}

fn ttl_of(v: &Value) -> Option<Duration> {
    let cc = v.get("cache_control")?;
    Some(if cc.get("ttl").and_then(Value::as_str) == Some("1h") { TTL_1H } else { TTL_5M })
}

/// Text characters of an element, as the input estimate counts them.
fn chars_of(v: &Value) -> usize {
    let mut s = String::new();
    crate::behaviour::push_block_text(v, &mut s);
    s.chars().count()
}

fn breakpoints(model: &str, body: &Value) -> Vec<Breakpoint> {
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    let mut chars = 0usize;
    let mut out = Vec::new();
    let mut visit = |h: &mut Sha256, chars: &mut usize, element: &Value, counted: usize| {
        h.update(without_markers(element).to_string().as_bytes());
        *chars += counted;
        out.push(Breakpoint { digest: h.clone().finalize().into(), chars: *chars, ttl: ttl_of(element) });
    };
    for tool in body.get("tools").and_then(Value::as_array).into_iter().flatten() {
        visit(&mut h, &mut chars, tool, 0);
    }
    // A string has no breakpoint of its own; blocks may.
    let mut content = |h: &mut Sha256, chars: &mut usize, c: Option<&Value>| match c {
        Some(Value::String(s)) => {
            h.update(s.as_bytes());
            *chars += s.chars().count();
        }
        Some(Value::Array(blocks)) => blocks.iter().for_each(|b| visit(h, chars, b, chars_of(b))),
        _ => {}
    };
    content(&mut h, &mut chars, body.get("system"));
    for m in body.get("messages").and_then(Value::as_array).into_iter().flatten() {
        h.update(m.get("role").and_then(Value::as_str).unwrap_or("").as_bytes());
        content(&mut h, &mut chars, m.get("content"));
    }
    out
}

impl PromptCache {
    /// Reads and writes the request's prefixes at `now`.
    pub fn apply(&self, model: &str, body: &Value, now: Instant) -> CacheUse {
        let mut bps = breakpoints(model, body);
        let Some(last) = bps.iter().rposition(|b| b.ttl.is_some()) else { return CacheUse::default() };
        bps.truncate(last + 1);
        let tokens = |chars: usize| if chars == 0 { 0 } else { tokens_for_chars(chars) };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = CacheUse::default();
        // The longest prefix still cached is read, and renewed.
        let mut from = 0usize;
        let mut read_chars = 0usize;
        for (i, bp) in bps.iter().enumerate().rev() {
            if tokens(bp.chars) < MIN_TOKENS {
                continue;
            }
            if let Some(exp) = entries.get_mut(&bp.digest).filter(|exp| **exp > now) {
                // A hit renews the entry for as long as it was written for.
                *exp = now + bp.ttl.unwrap_or(TTL_5M).max(exp.saturating_duration_since(now));
                out.read = tokens(bp.chars);
                read_chars = bp.chars;
                from = i + 1;
                break;
            }
        }
        // Everything after it up to the last breakpoint is written, each
        // stretch with the TTL of the breakpoint that ends it.
        let mut done_chars = read_chars;
        let mut done_tokens = out.read;
        for bp in &bps[from..] {
            let Some(ttl) = bp.ttl else { continue };
            if tokens(bp.chars) < MIN_TOKENS || bp.chars <= done_chars {
                continue;
            }
            let t = tokens(bp.chars);
            let part = t - done_tokens;
            if ttl == TTL_1H {
                out.write_1h += part;
            } else {
                out.write_5m += part;
            }
            done_chars = bp.chars;
            done_tokens = t;
            entries.insert(bp.digest, now + ttl);
        }
        if entries.len() > CAPACITY {
            entries.retain(|_, exp| *exp > now);
            while entries.len() > CAPACITY {
                let Some(oldest) = entries.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) else { break };
                entries.remove(&oldest);
            }
        }
        out
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(system: &str, user: &str, ttl: Option<&str>) -> Value {
        let mut cc = json!({"type": "ephemeral"});
        if let Some(t) = ttl {
            cc["ttl"] = json!(t);
        }
        json!({
            "system": [{"type": "text", "text": system, "cache_control": cc}],
            "messages": [{"role": "user", "content": user}],
        })
    }

    #[test]
    fn the_first_use_of_a_prefix_writes_it_and_the_next_reads_it() {
        let c = PromptCache::default();
        let sys = "s".repeat(8_000); // 2,000 tokens
        let now = Instant::now();
        let first = c.apply("m", &body(&sys, "hi", None), now);
        assert_eq!(first, CacheUse { read: 0, write_5m: 2_000, write_1h: 0 });
        let second = c.apply("m", &body(&sys, "another question", None), now + Duration::from_secs(10));
        assert_eq!(second, CacheUse { read: 2_000, write_5m: 0, write_1h: 0 });
    }

    #[test]
    fn a_prefix_expires_after_its_ttl_unless_read() {
        let c = PromptCache::default();
        let sys = "s".repeat(8_000);
        let now = Instant::now();
        c.apply("m", &body(&sys, "a", None), now);
        let later = c.apply("m", &body(&sys, "b", None), now + Duration::from_secs(301));
        assert_eq!(later.read, 0);
        assert_eq!(later.write_5m, 2_000);
        let c = PromptCache::default();
        c.apply("m", &body(&sys, "a", Some("1h")), now);
        let later = c.apply("m", &body(&sys, "b", Some("1h")), now + Duration::from_secs(1_000));
        assert_eq!(later.read, 2_000);
    }

    #[test]
    fn one_hour_writes_are_reported_apart() {
        let c = PromptCache::default();
        let u = c.apply("m", &body(&"s".repeat(8_000), "a", Some("1h")), Instant::now());
        assert_eq!(u, CacheUse { read: 0, write_5m: 0, write_1h: 2_000 });
    }

    #[test]
    fn short_prefixes_and_other_models_are_not_shared() {
        let c = PromptCache::default();
        let now = Instant::now();
        assert_eq!(c.apply("m", &body("short", "a", None), now), CacheUse::default());
        let sys = "s".repeat(8_000);
        c.apply("m", &body(&sys, "a", None), now);
        assert_eq!(c.apply("other", &body(&sys, "a", None), now).read, 0);
    }

    #[test]
    fn a_marker_moving_forward_reads_the_old_prefix_and_writes_the_new_part() {
        let c = PromptCache::default();
        let now = Instant::now();
        let sys = "s".repeat(8_000);
        let turn = |n: usize| {
            let mut msgs = Vec::new();
            for i in 0..n {
                let mut block = json!({"type": "text", "text": "q".repeat(400 * (i + 1))});
                if i + 1 == n {
                    block["cache_control"] = json!({"type": "ephemeral"});
                }
                msgs.push(json!({"role": "user", "content": [block]}));
            }
            json!({"system": [{"type": "text", "text": sys, "cache_control": {"type": "ephemeral"}}], "messages": msgs})
        };
        let first = c.apply("m", &turn(1), now);
        assert_eq!((first.read, first.write_5m), (0, 2_100));
        let second = c.apply("m", &turn(2), now);
        assert_eq!((second.read, second.write_5m), (2_100, 200));
    }
}
