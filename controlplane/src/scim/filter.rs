//! SCIM 2.0 filter expressions (RFC 7644 §3.4.2.2): parsing the `filter`
//! query parameter and the bracketed part of PATCH paths, and evaluating a
//! filter against a resource held as SCIM JSON. Identity providers differ in
//! letter case and in how they spell booleans, so matching is lenient there
//! while the grammar itself is strict.

use std::cmp::Ordering;

use chrono::DateTime;
use serde_json::Value;

/// Longest filter accepted, in characters. Real provisioning filters are a
/// few dozen characters; the cap bounds the work a hostile one can cause.
pub const MAX_FILTER_LEN: usize = 4096;

/// Deepest nesting of `( )`, `not ( )` and `[ ]`, so that neither parsing nor
/// matching can exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// Attributes qualified with a core schema live at the top level of the
/// resource, so this prefix is dropped; any other URN names an extension
/// object that holds the attribute.
const CORE_SCHEMA_PREFIX: &str = "urn:ietf:params:scim:schemas:core:2.0:";

/// Longest piece of the input repeated in an error, so that error details
/// stay readable and cannot be used to echo large payloads.
const SHOWN: usize = 64;

/// Why a filter was refused. The text is meant for the `detail` of a SCIM
/// `invalidFilter` error, so it names the offending piece of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("the filter is empty")]
    Empty,
    #[error("the filter is longer than {max} characters")]
    TooLong { max: usize },
    #[error("the filter nests parentheses or brackets deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("the string starting at position {at} is not terminated")]
    UnterminatedString { at: usize },
    #[error("the string starting at position {at} has an invalid escape or a control character")]
    BadString { at: usize },
    #[error("the filter ends where {expected} was expected")]
    UnexpectedEnd { expected: &'static str },
    #[error("found {found} at position {at} where {expected} was expected")]
    Unexpected { found: String, at: usize, expected: &'static str },
    #[error("{path:?} is not a valid attribute path")]
    BadAttribute { path: String },
    #[error("{op:?} is not a filter operator (use eq, ne, co, sw, ew, pr, gt, ge, lt or le)")]
    UnknownOperator { op: String },
    #[error("{value:?} is not a comparison value (use a quoted string, a number, true, false or null)")]
    BadValue { value: String },
    #[error("a value filter in brackets cannot contain another one")]
    NestedValuePath,
    #[error("a sub-attribute after brackets (as in emails[type eq \"work\"].value) is only valid in a PATCH path")]
    SubAttributeAfterValuePath,
}

/// `[schema URN:]attribute[.subAttribute]`, spelled as the client wrote it;
/// comparisons against resource keys ignore ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    schema: Option<String>,
    attr: String,
    sub: Option<String>,
    lowered: String,
}

impl AttrPath {
    /// The extension schema URN holding the attribute; `None` for core
    /// attributes, whether or not the client qualified them.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    pub fn attr(&self) -> &str {
        &self.attr
    }

    pub fn sub(&self) -> Option<&str> {
        self.sub.as_deref()
    }

    /// The whole path in lower case, without a core schema prefix, e.g.
    /// `name.givenname`: a stable key for pushing lookups down to storage.
    pub fn lowered(&self) -> &str {
        &self.lowered
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }
}

/// A comparison value as written in the filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Literal,
    },
    Present(AttrPath),
    /// `attr[filter]`: some element of `attr` satisfies `filter`, whose paths
    /// are relative to the element.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
    Not(Box<Filter>),
    /// Chains are kept flat so that a long `a and b and c ...` does not turn
    /// into a deep tree.
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

/// Parses a whole filter, as given in `?filter=` or a search request.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    parse_with(input, false)
}

/// Parses the inside of `attr[...]`, where another bracket may not appear.
/// PATCH paths use this for their value selection filter.
pub fn parse_value_filter(input: &str) -> Result<Filter, FilterError> {
    parse_with(input, true)
}

/// Parses `[schema URN:]attribute[.subAttribute]`.
pub fn parse_attr_path(input: &str) -> Result<AttrPath, FilterError> {
    let bad = || FilterError::BadAttribute { path: clip(input) };
    // Attribute names cannot contain ':', so the last one ends a URN prefix.
    let (schema, rest) = match input.rsplit_once(':') {
        Some((urn, rest)) if starts_with_ci(urn, CORE_SCHEMA_PREFIX) => (None, rest),
        Some((urn, rest)) if starts_with_ci(urn, "urn:") => (Some(urn), rest),
        _ => (None, input),
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((attr, sub)) => (attr, Some(sub)),
        None => (rest, None),
    };
    if !is_attr_name(attr) || !sub.is_none_or(is_attr_name) {
        return Err(bad());
    }
    let dotted = match sub {
        Some(sub) => format!("{attr}.{sub}"),
        None => attr.to_owned(),
    };
    let lowered = match schema {
        Some(urn) => format!("{urn}:{dotted}"),
        None => dotted,
    }
    .to_ascii_lowercase();
    Ok(AttrPath { schema: schema.map(str::to_owned), attr: attr.to_owned(), sub: sub.map(str::to_owned), lowered })
}

impl Filter {
    /// Whether `resource` (or, inside brackets, one element of a
    /// multi-valued attribute) satisfies the filter.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::And(terms) => terms.iter().all(|t| t.matches(resource)),
            Filter::Or(terms) => terms.iter().any(|t| t.matches(resource)),
            Filter::Not(inner) => !inner.matches(resource),
            Filter::Present(path) => values_at(resource, path).into_iter().any(is_present),
            Filter::Compare { path, op, value } => compare_at(resource, path, *op, value),
            Filter::ValuePath { path, filter } => values_at(resource, path).into_iter().any(|e| filter.matches(e)),
        }
    }

    /// `Some((path, value))` when the whole filter is one `attr eq "string"`,
    /// the shape IdPs use to look a user or group up before creating it, so
    /// the caller can ask the database instead of scanning.
    pub fn simple_eq(&self) -> Option<(&str, &str)> {
        match self {
            Filter::Compare { path, op: CompareOp::Eq, value: Literal::String(s) } => {
                Some((path.lowered(), s.as_str()))
            }
            _ => None,
        }
    }
}

fn parse_with(input: &str, in_brackets: bool) -> Result<Filter, FilterError> {
    // `nth` stops after MAX_FILTER_LEN characters, so an enormous input costs
    // no more than a legal one.
    if input.len() > MAX_FILTER_LEN && input.chars().nth(MAX_FILTER_LEN).is_some() {
        return Err(FilterError::TooLong { max: MAX_FILTER_LEN });
    }
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Err(FilterError::Empty);
    }
    let mut parser = Parser { tokens, pos: 0, depth: 0 };
    let filter = parser.or_expr(in_brackets)?;
    if parser.peek().is_some() {
        return Err(parser.unexpected("\"and\", \"or\" or the end of the filter"));
    }
    Ok(filter)
}

enum Tok<'a> {
    /// One of `( ) [ ]`.
    Punct(char),
    Str(String),
    /// Anything else up to whitespace or punctuation: attribute paths,
    /// operators, keywords, numbers, `true`/`false`/`null`. What it is
    /// depends on where it stands, so the parser decides.
    Word(&'a str),
}

struct Token<'a> {
    tok: Tok<'a>,
    at: usize,
}

impl Token<'_> {
    fn unexpected(&self, expected: &'static str) -> FilterError {
        let found = match &self.tok {
            Tok::Punct(c) => format!("{c:?}"),
            Tok::Str(s) => format!("the string {:?}", clip(s)),
            Tok::Word(w) => format!("{:?}", clip(w)),
        };
        FilterError::Unexpected { found, at: self.at, expected }
    }
}

fn lex(input: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' | b')' | b'[' | b']' => {
                tokens.push(Token { tok: Tok::Punct(char::from(b)), at: i });
                i += 1;
            }
            b'"' => {
                let end = string_end(bytes, i).ok_or(FilterError::UnterminatedString { at: i })?;
                // Filter strings are JSON strings (RFC 7644 §3.4.2.2), so the
                // JSON decoder handles every escape, surrogate pairs included.
                let raw = input.get(i..=end).ok_or(FilterError::BadString { at: i })?;
                let text: String = serde_json::from_str(raw).map_err(|_| FilterError::BadString { at: i })?;
                tokens.push(Token { tok: Tok::Str(text), at: i });
                i = end + 1;
            }
            _ => {
                let start = i;
                while bytes.get(i).is_some_and(|&c| !is_delimiter(c)) {
                    i += 1;
                }
                // Words end only at ASCII bytes, which never fall inside a
                // UTF-8 sequence, so this slice is always on char boundaries.
                let word = input.get(start..i).ok_or(FilterError::BadAttribute { path: String::new() })?;
                tokens.push(Token { tok: Tok::Word(word), at: start });
            }
        }
    }
    Ok(tokens)
}

fn is_delimiter(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b'[' | b']' | b'"')
}

/// Index of the quote closing the string that opens at `open`.
fn string_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
}

const EXPECT_TERM: &str = "an attribute, \"not (\" or \"(\"";

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.pos)
    }

    fn peek_word(&self) -> Option<&'a str> {
        match self.peek() {
            Some(Token { tok: Tok::Word(w), .. }) => Some(*w),
            _ => None,
        }
    }

    fn peek_punct(&self, c: char) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Punct(p), .. }) if *p == c)
    }

    fn unexpected(&self, expected: &'static str) -> FilterError {
        match self.peek() {
            None => FilterError::UnexpectedEnd { expected },
            Some(t) => t.unexpected(expected),
        }
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let hit = self.peek_word().is_some_and(|w| w.eq_ignore_ascii_case(keyword));
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect_punct(&mut self, c: char, expected: &'static str) -> Result<(), FilterError> {
        if !self.peek_punct(c) {
            return Err(self.unexpected(expected));
        }
        self.pos += 1;
        Ok(())
    }

    /// Parses `open inner close`, counting the nesting against MAX_DEPTH.
    fn nested(&mut self, open: char, close: char, in_brackets: bool) -> Result<Filter, FilterError> {
        self.expect_punct(open, "an opening parenthesis or bracket")?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::TooDeep { max: MAX_DEPTH });
        }
        let inner = self.or_expr(in_brackets)?;
        self.expect_punct(close, if close == ')' { "\")\"" } else { "\"]\"" })?;
        self.depth -= 1;
        Ok(inner)
    }

    // Precedence, loosest first: or, and, not (RFC 7644 §3.4.2.2, table 4).
    fn or_expr(&mut self, in_brackets: bool) -> Result<Filter, FilterError> {
        let mut terms = vec![self.and_expr(in_brackets)?];
        while self.eat_keyword("or") {
            terms.push(self.and_expr(in_brackets)?);
        }
        Ok(collapse(terms, Filter::Or))
    }

    fn and_expr(&mut self, in_brackets: bool) -> Result<Filter, FilterError> {
        let mut terms = vec![self.term(in_brackets)?];
        while self.eat_keyword("and") {
            terms.push(self.term(in_brackets)?);
        }
        Ok(collapse(terms, Filter::And))
    }

    fn term(&mut self, in_brackets: bool) -> Result<Filter, FilterError> {
        if self.peek_punct('(') {
            return self.nested('(', ')', in_brackets);
        }
        let Some(word) = self.peek_word() else {
            return Err(self.unexpected(EXPECT_TERM));
        };
        self.pos += 1;
        // `not` is a keyword only before a parenthesis, so an attribute that
        // happens to be called "not" still works.
        if word.eq_ignore_ascii_case("not") && self.peek_punct('(') {
            return Ok(Filter::Not(Box::new(self.nested('(', ')', in_brackets)?)));
        }
        self.attr_expr(word, in_brackets)
    }

    fn attr_expr(&mut self, word: &'a str, in_brackets: bool) -> Result<Filter, FilterError> {
        let path = parse_attr_path(word)?;
        if self.peek_punct('[') {
            if in_brackets {
                return Err(FilterError::NestedValuePath);
            }
            if path.sub().is_some() {
                return Err(FilterError::BadAttribute { path: clip(word) });
            }
            let filter = self.nested('[', ']', true)?;
            if self.peek_word().is_some_and(|w| w.starts_with('.')) {
                return Err(FilterError::SubAttributeAfterValuePath);
            }
            return Ok(Filter::ValuePath { path, filter: Box::new(filter) });
        }
        let op_word = self.peek_word().ok_or_else(|| self.unexpected("an operator"))?;
        self.pos += 1;
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::from_word(op_word).ok_or_else(|| FilterError::UnknownOperator { op: clip(op_word) })?;
        let value = match self.peek() {
            Some(Token { tok: Tok::Str(s), .. }) => Literal::String(s.clone()),
            Some(Token { tok: Tok::Word(w), .. }) => literal(w)?,
            _ => return Err(self.unexpected("a comparison value")),
        };
        self.pos += 1;
        Ok(Filter::Compare { path, op, value })
    }
}

fn collapse(mut terms: Vec<Filter>, join: fn(Vec<Filter>) -> Filter) -> Filter {
    if terms.len() == 1 {
        if let Some(only) = terms.pop() {
            return only;
        }
    }
    join(terms)
}

fn literal(word: &str) -> Result<Literal, FilterError> {
    let bad = || FilterError::BadValue { value: clip(word) };
    if let Some(b) = bool_word(word) {
        return Ok(Literal::Bool(b));
    }
    if word.eq_ignore_ascii_case("null") {
        return Ok(Literal::Null);
    }
    match serde_json::from_str::<Value>(word) {
        Ok(Value::Number(n)) => n.as_f64().map(Literal::Number).ok_or_else(bad),
        _ => Err(bad()),
    }
}

pub(crate) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// RFC 7643 §2.1 ATTRNAME, plus a leading `$` for `$ref`.
fn is_attr_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '$' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }
        _ => false,
    }
}

fn clip(s: &str) -> String {
    s.chars().take(SHOWN).collect()
}

/// Key lookup ignoring ASCII case, because SCIM attribute names are
/// case-insensitive (RFC 7643 §2.1) and clients do not agree on spelling.
pub(crate) fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let map = v.as_object()?;
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// The values a path reaches, with multi-valued attributes spread out so
/// that "any element matches" falls out of a plain `any`.
fn values_at<'a>(ctx: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let base = match path.schema() {
        Some(urn) => get_ci(ctx, urn),
        None => Some(ctx),
    };
    let Some(top) = base.and_then(|b| get_ci(b, path.attr())) else {
        return Vec::new();
    };
    match path.sub() {
        None => spread(top),
        Some(sub) => spread(top).into_iter().filter_map(|e| get_ci(e, sub)).flat_map(spread).collect(),
    }
}

fn spread(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare_at(ctx: &Value, path: &AttrPath, op: CompareOp, lit: &Literal) -> bool {
    match (op, lit) {
        // `ne` is the negation of `eq`, so an absent attribute is "not equal"
        // and `x ne v` always agrees with `not (x eq v)`.
        (CompareOp::Ne, _) => !compare_at(ctx, path, CompareOp::Eq, lit),
        // Null and absent are the same state (RFC 7643 §2.5).
        (CompareOp::Eq, Literal::Null) => values_at(ctx, path).iter().all(|v| v.is_null()),
        (_, Literal::Null) => false,
        _ => values_at(ctx, path).into_iter().any(|v| compare_one(v, op, lit)),
    }
}

fn compare_one(found: &Value, op: CompareOp, lit: &Literal) -> bool {
    // A complex value compares by its `value` sub-attribute, so that
    // `emails co "@example.test"` works without naming `.value`.
    let found = match found {
        Value::Object(_) => match get_ci(found, "value") {
            Some(v) if !v.is_object() => v,
            _ => return false,
        },
        other => other,
    };
    match (found, lit) {
        (Value::String(s), Literal::String(l)) => compare_strings(s, op, l),
        (Value::Bool(b), Literal::Bool(l)) => op == CompareOp::Eq && b == l,
        // Entra ID sends `active eq "False"`.
        (Value::Bool(b), Literal::String(l)) => op == CompareOp::Eq && bool_word(l) == Some(*b),
        (Value::Number(n), Literal::Number(l)) => {
            n.as_f64().and_then(|n| n.partial_cmp(l)).is_some_and(|o| ordered(op, o))
        }
        _ => false,
    }
}

/// The attributes filtered on here are all caseExact=false, so every string
/// comparison ignores case.
fn compare_strings(found: &str, op: CompareOp, lit: &str) -> bool {
    match op {
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => ordered(op, order_strings(found, lit)),
        _ => {
            let (found, lit) = (found.to_lowercase(), lit.to_lowercase());
            match op {
                CompareOp::Eq => found == lit,
                CompareOp::Ne => found != lit,
                CompareOp::Co => found.contains(&lit),
                CompareOp::Sw => found.starts_with(&lit),
                _ => found.ends_with(&lit),
            }
        }
    }
}

/// Timestamps compare as instants when both sides are RFC 3339, so offsets
/// and fractional seconds order correctly; anything else compares as text.
fn order_strings(a: &str, b: &str) -> Ordering {
    match (DateTime::parse_from_rfc3339(a), DateTime::parse_from_rfc3339(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.to_lowercase().cmp(&b.to_lowercase()),
    }
}

fn ordered(op: CompareOp, o: Ordering) -> bool {
    match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn bool_word(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "usr_x", "externalId": "e1", "userName": "Ann@Example.test",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "displayName": "Ann Lee",
            "emails": [{"value": "ann@example.test", "type": "work", "primary": true},
                       {"value": "ann@home.test", "type": "home"}],
            "active": true,
            "title": "",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "42"},
            "meta": {"resourceType": "User", "created": "2026-12-03T07:00:00Z",
                     "lastModified": "2026-12-03T07:00:00Z", "version": "W/\"1\""}
        })
    }

    fn hit(filter: &str) -> bool {
        parse(filter).unwrap().matches(&user())
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let r = json!({"a": "1", "b": "x", "c": "x"});
        assert!(parse(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap().matches(&r));
    }

    #[test]
    fn parentheses_override_precedence() {
        let r = json!({"a": "1", "b": "x", "c": "x"});
        assert!(!parse(r#"(a eq "1" or b eq "2") and c eq "3""#).unwrap().matches(&r));
    }

    #[test]
    fn not_negates_its_parenthesised_filter() {
        assert!(hit(r#"not (userName eq "bob@example.test")"#));
        assert!(!hit(r#"not (userName eq "ann@example.test")"#));
    }

    #[test]
    fn a_value_path_matches_when_one_element_satisfies_all_of_its_filter() {
        assert!(hit(r#"emails[type eq "work" and value co "@example"]"#));
        assert!(!hit(r#"emails[type eq "home" and value co "@example"]"#));
    }

    #[test]
    fn a_sub_attribute_after_a_value_path_is_refused_in_a_filter() {
        assert_eq!(parse(r#"emails[type eq "work"].value eq "x""#), Err(FilterError::SubAttributeAfterValuePath));
    }

    #[test]
    fn present_means_neither_absent_null_nor_empty() {
        assert!(hit("externalId pr"));
        assert!(hit("emails pr"));
        assert!(!hit("title pr"));
        assert!(!hit("nickName pr"));
        assert!(!parse("emails pr").unwrap().matches(&json!({"emails": []})));
        assert!(!parse("nickName pr").unwrap().matches(&json!({"nickName": null})));
    }

    #[test]
    fn starts_with_contains_and_ends_with_ignore_case() {
        assert!(hit(r#"userName sw "ANN@""#));
        assert!(hit(r#"userName co "EXAMPLE""#));
        assert!(hit(r#"userName ew ".Test""#));
        assert!(!hit(r#"userName sw "bob""#));
    }

    #[test]
    fn equality_ignores_case_of_values_attribute_names_and_operators() {
        assert!(hit(r#"USERNAME Eq "ann@example.TEST""#));
        assert!(hit(r#"name.GIVENNAME EQ "ann""#));
    }

    #[test]
    fn a_sub_attribute_of_a_multi_valued_attribute_matches_any_element() {
        assert!(hit(r#"emails.value eq "ann@home.test""#));
        assert!(hit(r#"emails co "home.test""#));
    }

    #[test]
    fn greater_than_orders_last_modified_timestamps() {
        assert!(hit(r#"meta.lastModified gt "2026-12-01T00:00:00Z""#));
        assert!(!hit(r#"meta.lastModified gt "2026-12-03T07:00:00Z""#));
        assert!(hit(r#"meta.lastModified ge "2026-12-03T07:00:00Z""#));
        assert!(hit(r#"meta.lastModified lt "2026-12-03T07:00:00.5Z""#));
    }

    #[test]
    fn numbers_compare_numerically() {
        let r = json!({"level": 10});
        assert!(parse("level gt 9").unwrap().matches(&r));
        assert!(parse("level eq 10.0").unwrap().matches(&r));
        assert!(!parse("level lt 1e1").unwrap().matches(&r));
    }

    #[test]
    fn a_core_schema_prefix_is_dropped() {
        assert!(hit(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ann@example.test""#));
        let f = parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "Ann""#).unwrap();
        assert_eq!(f.simple_eq(), Some(("name.givenname", "Ann")));
    }

    #[test]
    fn an_extension_schema_prefix_looks_inside_the_extension_object() {
        assert!(hit(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "42""#));
    }

    #[test]
    fn entra_string_booleans_compare_with_json_booleans() {
        assert!(hit(r#"active eq "True""#));
        assert!(!hit(r#"active eq "False""#));
        assert!(hit("active eq true"));
        assert!(hit("active ne false"));
    }

    #[test]
    fn ne_matches_an_absent_attribute() {
        assert!(hit(r#"nickName ne "x""#));
    }

    #[test]
    fn eq_null_matches_an_absent_attribute() {
        assert!(hit("nickName eq null"));
        assert!(!hit("userName eq null"));
    }

    #[test]
    fn string_escapes_are_decoded() {
        let r = json!({"displayName": "A \"B\" é"});
        assert!(parse(r#"displayName eq "A \"B\" \u00e9""#).unwrap().matches(&r));
    }

    #[test]
    fn a_comparison_without_a_value_is_refused() {
        assert_eq!(parse("userName eq"), Err(FilterError::UnexpectedEnd { expected: "a comparison value" }));
    }

    #[test]
    fn an_unclosed_parenthesis_is_refused() {
        assert!(matches!(parse(r#"(userName eq "a""#), Err(FilterError::UnexpectedEnd { .. })));
    }

    #[test]
    fn an_unterminated_string_is_refused() {
        assert_eq!(parse(r#"userName eq "ann"#), Err(FilterError::UnterminatedString { at: 12 }));
        assert!(parse(r#"userName eq "ann\"#).is_err());
    }

    #[test]
    fn an_unknown_operator_is_refused() {
        assert!(matches!(parse(r#"userName like "a""#), Err(FilterError::UnknownOperator { .. })));
    }

    #[test]
    fn trailing_tokens_are_refused() {
        assert!(matches!(parse(r#"userName eq "a" "b""#), Err(FilterError::Unexpected { .. })));
        assert!(matches!(parse(r#"userName eq "a")"#), Err(FilterError::Unexpected { .. })));
        assert!(matches!(parse("title pr pr"), Err(FilterError::Unexpected { .. })));
    }

    #[test]
    fn an_unquoted_word_is_not_a_value() {
        assert!(matches!(parse("userName eq ann"), Err(FilterError::BadValue { .. })));
    }

    #[test]
    fn an_invalid_attribute_name_is_refused() {
        assert!(matches!(parse(r#"1name eq "a""#), Err(FilterError::BadAttribute { .. })));
        assert!(matches!(parse(r#"name.given.more eq "a""#), Err(FilterError::BadAttribute { .. })));
    }

    #[test]
    fn an_empty_filter_is_refused() {
        assert_eq!(parse("  "), Err(FilterError::Empty));
    }

    #[test]
    fn a_filter_over_the_length_limit_is_refused() {
        let long = format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_LEN));
        assert_eq!(parse(&long), Err(FilterError::TooLong { max: MAX_FILTER_LEN }));
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let deep = format!("{}userName pr{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(&deep), Err(FilterError::TooDeep { max: MAX_DEPTH }));
        let ok = format!("{}userName pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn a_value_path_inside_a_value_path_is_refused() {
        assert_eq!(parse(r#"emails[type[x eq "y"]]"#), Err(FilterError::NestedValuePath));
    }

    #[test]
    fn simple_eq_reports_a_lone_string_equality() {
        let f = parse(r#"userName Eq "Ann@Example.test""#).unwrap();
        assert_eq!(f.simple_eq(), Some(("username", "Ann@Example.test")));
    }

    #[test]
    fn simple_eq_is_none_for_anything_else() {
        for f in [r#"userName ne "a""#, r#"userName eq "a" and active eq true"#, "active eq true", "userName pr"] {
            assert_eq!(parse(f).unwrap().simple_eq(), None, "{f}");
        }
    }

    #[test]
    fn an_attribute_named_not_is_still_an_attribute() {
        let r = json!({"not": "x"});
        assert!(parse(r#"not eq "x""#).unwrap().matches(&r));
    }
}
