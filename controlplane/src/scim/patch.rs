//! SCIM 2.0 PATCH (RFC 7644 §3.5.2): parses a PatchOp request body and
//! applies its operations to a resource held as SCIM JSON, all or nothing.
//! It takes what Entra ID and Okta actually send (capitalised ops, dotted keys
//! in path-less values, member removal by value list), so callers need no
//! per-provider branches; they validate and map the result afterwards.

use serde_json::{Map, Value};

use super::filter::{self, AttrPath, CompareOp, Filter, Literal};

pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Most operations one request may carry; IdPs batch far fewer, and the cap
/// bounds the work of a single request.
pub const MAX_OPERATIONS: usize = 1000;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Core multi-valued attributes (RFC 7643 §4), so that adding one object to
/// an attribute not present yet still yields an array.
const MULTI_VALUED: &[&str] = &[
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509Certificates",
    "members",
];

/// Server-assigned attributes (RFC 7643 §3.1) that a client never writes.
const IMMUTABLE: &[&str] = &["id", "meta", "schemas"];

const NEEDS_VALUE: &str = "add and replace need a value";

/// Longest piece of a path repeated in an error detail.
const SHOWN: usize = 200;

/// Why a PATCH was refused. `scim_type` gives the RFC 7644 §3.12 `scimType`;
/// the text suits the error's `detail`. Operations are numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("the PATCH body must be a JSON object")]
    NotAnObject,
    #[error("the PATCH body's schemas must include urn:ietf:params:scim:api:messages:2.0:PatchOp")]
    NotPatchOp,
    #[error("the PATCH body needs an Operations array with at least one operation")]
    NoOperations,
    #[error("a PATCH request may carry at most {max} operations")]
    TooManyOperations { max: usize },
    #[error("operation {index}: {reason}")]
    BadOperation { index: usize, reason: &'static str },
    #[error("operation {index}: {op:?} is not a PATCH operation (use add, replace or remove)")]
    UnknownOp { index: usize, op: String },
    #[error("operation {index}: the path {path:?} is not valid: {reason}")]
    InvalidPath { index: usize, path: String, reason: String },
    #[error("operation {index}: remove needs a path")]
    RemoveWithoutPath { index: usize },
    #[error("operation {index}: nothing matches the path {path:?}")]
    NoTarget { index: usize, path: String },
    #[error("operation {index}: {reason}")]
    InvalidValue { index: usize, reason: &'static str },
    #[error("operation {index}: {attribute} is read-only")]
    Mutability { index: usize, attribute: String },
    #[error("the resource to patch is not a JSON object")]
    NotAResource,
}

impl PatchError {
    pub fn scim_type(&self) -> &'static str {
        match self {
            Self::NotAnObject
            | Self::NotPatchOp
            | Self::NoOperations
            | Self::TooManyOperations { .. }
            | Self::BadOperation { .. }
            | Self::UnknownOp { .. } => "invalidSyntax",
            Self::InvalidPath { .. } => "invalidPath",
            Self::RemoveWithoutPath { .. } | Self::NoTarget { .. } | Self::NotAResource => "noTarget",
            Self::InvalidValue { .. } => "invalidValue",
            Self::Mutability { .. } => "mutability",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub path: Option<String>,
    pub value: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    pub operations: Vec<Operation>,
}

impl PatchRequest {
    /// Reads a PatchOp body. Key names and op names are matched without
    /// regard to case because Entra ID capitalises them; paths are checked
    /// later, by `apply`, against the resource.
    pub fn from_body(body: &Value) -> Result<Self, PatchError> {
        let obj = body.as_object().ok_or(PatchError::NotAnObject)?;
        let schemas = field_ci(obj, "schemas").and_then(Value::as_array).ok_or(PatchError::NotPatchOp)?;
        if !schemas.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))) {
            return Err(PatchError::NotPatchOp);
        }
        let ops = field_ci(obj, "Operations").and_then(Value::as_array).ok_or(PatchError::NoOperations)?;
        if ops.is_empty() {
            return Err(PatchError::NoOperations);
        }
        if ops.len() > MAX_OPERATIONS {
            return Err(PatchError::TooManyOperations { max: MAX_OPERATIONS });
        }
        let operations = ops.iter().enumerate().map(|(i, op)| parse_operation(i + 1, op)).collect::<Result<_, _>>()?;
        Ok(Self { operations })
    }
}

pub fn parse_request(body: &Value) -> Result<Vec<Operation>, PatchError> {
    PatchRequest::from_body(body).map(|r| r.operations)
}

fn parse_operation(index: usize, raw: &Value) -> Result<Operation, PatchError> {
    let bad = |reason| PatchError::BadOperation { index, reason };
    let obj = raw.as_object().ok_or_else(|| bad("each operation must be a JSON object"))?;
    let name = field_ci(obj, "op").and_then(Value::as_str).ok_or_else(|| bad("the operation has no \"op\""))?;
    let op = match name.to_ascii_lowercase().as_str() {
        "add" => OpKind::Add,
        "replace" => OpKind::Replace,
        "remove" => OpKind::Remove,
        _ => return Err(PatchError::UnknownOp { index, op: clip(name, 64) }),
    };
    let path = match field_ci(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(bad("\"path\" must be a string")),
    };
    Ok(Operation { op, path, value: field_ci(obj, "value").cloned() })
}

/// Applies `ops` in order to a copy of `resource`. Any failing operation
/// fails the whole request, as RFC 7644 §3.5.2 requires, and `resource` is
/// never touched.
pub fn apply(resource: &Value, ops: &[Operation]) -> Result<Value, PatchError> {
    let mut out = resource.clone();
    if !out.is_object() {
        return Err(PatchError::NotAResource);
    }
    // A user's group memberships are written through the groups (RFC 7643
    // §4.1.2), never on the user.
    let groups_read_only = has_schema(&out, USER_SCHEMA);
    for (i, op) in ops.iter().enumerate() {
        let cx = Ctx { index: i + 1, groups_read_only, path: op.path.as_deref().unwrap_or_default() };
        match op.path.as_deref() {
            None if op.op == OpKind::Remove => return Err(PatchError::RemoveWithoutPath { index: cx.index }),
            // Path-less: every key of the value is a path of its own, which
            // covers Entra's `{"name.givenName": "Ann"}` as well as plain keys.
            None => {
                for (key, value) in value_fields(&cx, op.value.as_ref())? {
                    apply_path(&mut out, &Ctx { path: key, ..cx }, op.op, Some(value))?;
                }
            }
            Some(_) => apply_path(&mut out, &cx, op.op, op.value.as_ref())?,
        }
    }
    Ok(out)
}

type Object = Map<String, Value>;

/// Where the change being applied comes from, for error details.
#[derive(Clone, Copy)]
struct Ctx<'p> {
    index: usize,
    groups_read_only: bool,
    path: &'p str,
}

impl Ctx<'_> {
    fn invalid_path(&self, reason: impl Into<String>) -> PatchError {
        PatchError::InvalidPath { index: self.index, path: clip(self.path, SHOWN), reason: reason.into() }
    }

    fn no_target(&self) -> PatchError {
        PatchError::NoTarget { index: self.index, path: clip(self.path, SHOWN) }
    }

    fn invalid_value(&self, reason: &'static str) -> PatchError {
        PatchError::InvalidValue { index: self.index, reason }
    }
}

/// What one operation does to one attribute, with null values already
/// resolved: null and unassigned are the same state (RFC 7643 §2.5), so
/// replacing with null removes and adding null does nothing.
#[derive(Clone, Copy)]
enum Change<'v> {
    Add(&'v Value),
    Replace(&'v Value),
    /// With the optional value list of Azure/Okta style member removal.
    Remove(Option<&'v Value>),
}

impl Change<'_> {
    fn removes(self) -> bool {
        matches!(self, Change::Remove(_))
    }
}

fn value_fields<'v>(cx: &Ctx, value: Option<&'v Value>) -> Result<&'v Object, PatchError> {
    value
        .ok_or_else(|| cx.invalid_value(NEEDS_VALUE))?
        .as_object()
        .ok_or_else(|| cx.invalid_value("when the path names no attribute, the value must be an object of attributes"))
}

enum SchemaTarget {
    Core,
    /// The resource's key for the extension, or the request's spelling.
    Extension(String),
}

/// Whether a path names a whole schema rather than an attribute: its value is
/// then an object of that schema's attributes.
fn schema_target(root: &Value, raw: &str) -> Option<SchemaTarget> {
    let raw = raw.trim();
    if !filter::starts_with_ci(raw, "urn:") {
        return None;
    }
    if raw.eq_ignore_ascii_case(USER_SCHEMA) || raw.eq_ignore_ascii_case(GROUP_SCHEMA) {
        return Some(SchemaTarget::Core);
    }
    if let Some(key) = root.as_object().and_then(|m| key_ci(m, raw)) {
        return Some(SchemaTarget::Extension(key));
    }
    // Extensions are named after the resource type they extend
    // (`…:enterprise:2.0:User`), which no attribute is.
    let last = raw.rsplit(':').next().unwrap_or_default();
    if has_schema(root, raw) || last.eq_ignore_ascii_case("User") || last.eq_ignore_ascii_case("Group") {
        return Some(SchemaTarget::Extension(raw.to_owned()));
    }
    None
}

fn apply_path(root: &mut Value, cx: &Ctx, kind: OpKind, value: Option<&Value>) -> Result<(), PatchError> {
    let prefix = match schema_target(root, cx.path) {
        None => return apply_one(root, cx, kind, value),
        Some(SchemaTarget::Core) if kind == OpKind::Remove => {
            return Err(cx.invalid_path("a core schema cannot be removed"));
        }
        Some(SchemaTarget::Core) => String::new(),
        Some(SchemaTarget::Extension(key)) => match (kind, value) {
            (OpKind::Remove, _) | (OpKind::Replace, Some(Value::Null)) => {
                if let Some(map) = root.as_object_mut() {
                    map.remove(&key);
                }
                return Ok(());
            }
            (OpKind::Add, Some(Value::Null)) => return Ok(()),
            _ => format!("{key}:"),
        },
    };
    for (key, v) in value_fields(cx, value)? {
        let path = format!("{prefix}{key}");
        apply_one(root, &Ctx { path: &path, ..*cx }, kind, Some(v))?;
    }
    Ok(())
}

/// `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`, each with an
/// optional schema URN in front.
struct PatchPath {
    attr: AttrPath,
    filter: Option<Filter>,
    sub: Option<String>,
}

impl PatchPath {
    fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > filter::MAX_FILTER_LEN {
            return Err(format!("a path may be at most {} bytes long", filter::MAX_FILTER_LEN));
        }
        let raw = raw.trim();
        let Some(open) = raw.find('[') else {
            let attr = filter::parse_attr_path(raw).map_err(|e| e.to_string())?;
            let sub = attr.sub().map(str::to_owned);
            return Ok(Self { attr, filter: None, sub });
        };
        let attr = filter::parse_attr_path(raw.get(..open).unwrap_or_default().trim()).map_err(|e| e.to_string())?;
        if attr.sub().is_some() {
            return Err("a filter must follow a multi-valued attribute, not a sub-attribute".into());
        }
        let close = closing_bracket(raw, open).ok_or("the filter's \"[\" is not closed")?;
        let inner = raw.get(open + 1..close).unwrap_or_default();
        let filter = filter::parse_value_filter(inner).map_err(|e| e.to_string())?;
        let rest = raw.get(close + 1..).unwrap_or_default().trim();
        if rest.is_empty() {
            return Ok(Self { attr, filter: Some(filter), sub: None });
        }
        let name = rest.strip_prefix('.').ok_or("only \".subAttribute\" may follow the filter")?;
        let sub = filter::parse_attr_path(name).map_err(|e| e.to_string())?;
        if sub.schema().is_some() || sub.sub().is_some() {
            return Err(format!("{:?} is not a sub-attribute name", clip(name, 64)));
        }
        Ok(Self { attr, filter: Some(filter), sub: Some(sub.attr().to_owned()) })
    }
}

/// The `]` closing the `[` at `open`, skipping any inside quoted strings.
fn closing_bracket(raw: &str, open: usize) -> Option<usize> {
    let bytes = raw.as_bytes();
    let mut in_string = false;
    let mut i = open + 1;
    while let Some(&b) = bytes.get(i) {
        match (in_string, b) {
            (true, b'\\') => i += 1,
            (_, b'"') => in_string = !in_string,
            (false, b']') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn apply_one(root: &mut Value, cx: &Ctx, kind: OpKind, value: Option<&Value>) -> Result<(), PatchError> {
    let path = PatchPath::parse(cx.path).map_err(|reason| cx.invalid_path(reason))?;
    if is_read_only(cx, &path.attr) {
        // Okta renames a group with `{"op": "replace", "value": {"id": …,
        // "displayName": …}}`; restating the current value changes nothing,
        // which RFC 7644 §3.5.1 accepts for immutable attributes.
        let unchanged = path.filter.is_none()
            && path.sub.is_none()
            && kind != OpKind::Remove
            && value.is_some()
            && filter::get_ci(&*root, path.attr.attr()) == value;
        if unchanged {
            return Ok(());
        }
        return Err(PatchError::Mutability { index: cx.index, attribute: path.attr.attr().to_owned() });
    }
    let change = match (kind, value) {
        (OpKind::Remove, v) => Change::Remove(v.filter(|v| !v.is_null())),
        (_, None) => return Err(cx.invalid_value(NEEDS_VALUE)),
        (OpKind::Add, Some(Value::Null)) => return Ok(()),
        (OpKind::Replace, Some(Value::Null)) => Change::Remove(None),
        (OpKind::Add, Some(v)) => Change::Add(v),
        (OpKind::Replace, Some(v)) => Change::Replace(v),
    };
    let Some(map) = container(root, cx, &path.attr, change.removes())? else {
        return Ok(());
    };
    let name = path.attr.attr();
    match (&path.filter, path.sub.as_deref()) {
        (None, None) => {
            change_attr(map, name, change);
            Ok(())
        }
        (None, Some(sub)) => change_sub(map, cx, name, sub, change),
        (Some(filter), sub) => change_selected(map, cx, name, filter, sub, change),
    }
}

fn is_read_only(cx: &Ctx, attr: &AttrPath) -> bool {
    let name = attr.attr();
    attr.schema().is_none()
        && (IMMUTABLE.iter().any(|n| n.eq_ignore_ascii_case(name))
            || (cx.groups_read_only && name.eq_ignore_ascii_case("groups")))
}

/// The object holding the attribute: the resource itself, or its extension
/// object, created for add and replace. `None` when removing from an
/// extension that is not there.
fn container<'r>(
    root: &'r mut Value,
    cx: &Ctx,
    attr: &AttrPath,
    removing: bool,
) -> Result<Option<&'r mut Object>, PatchError> {
    let map = root.as_object_mut().ok_or(PatchError::NotAResource)?;
    let Some(urn) = attr.schema() else {
        return Ok(Some(map));
    };
    let key = match key_ci(map, urn) {
        Some(key) => key,
        None if removing => return Ok(None),
        None => urn.to_owned(),
    };
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() && !removing {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(inner) => Ok(Some(inner)),
        _ if removing => Ok(None),
        _ => Err(cx.no_target()),
    }
}

/// `attr` with no filter: set, merge, append or remove as RFC 7644 §3.5.2.1-3
/// describe for single-valued, complex and multi-valued attributes.
fn change_attr(map: &mut Object, name: &str, change: Change<'_>) {
    let Some(key) = key_ci(map, name) else {
        if let Change::Add(v) | Change::Replace(v) = change {
            map.insert(name.to_owned(), fresh(name, v));
        }
        return;
    };
    if change.removes() && !map.get(&key).is_some_and(Value::is_array) {
        map.remove(&key);
        return;
    }
    let Some(slot) = map.get_mut(&key) else {
        return;
    };
    let replacement = match (change, &mut *slot) {
        // Emptying a multi-valued attribute keeps it as `[]`, which RFC 7643
        // §2.5 treats as unassigned, so members stay an array for the caller.
        (Change::Remove(None), Value::Array(items)) => {
            items.clear();
            None
        }
        (Change::Remove(Some(gone)), Value::Array(items)) => {
            let gone = spread(gone);
            items.retain(|e| !gone.iter().any(|g| same_element(e, g)));
            None
        }
        (Change::Remove(_), _) => None,
        (Change::Add(v), Value::Array(items)) => {
            append_unique(items, v);
            None
        }
        // Add and replace on a complex attribute both set only the
        // sub-attributes given and keep the others (RFC 7644 §3.5.2.1, .3).
        (Change::Add(v) | Change::Replace(v), Value::Object(existing)) if v.is_object() => {
            merge(existing, v);
            None
        }
        (Change::Replace(v), Value::Array(_)) => Some(listed(v)),
        (Change::Add(v) | Change::Replace(v), _) => Some(fresh(name, v)),
    };
    if let Some(new) = replacement {
        *slot = new;
    }
}

/// `attr.sub` on a single-valued complex attribute.
fn change_sub(map: &mut Object, cx: &Ctx, name: &str, sub: &str, change: Change<'_>) -> Result<(), PatchError> {
    let key = key_ci(map, name).unwrap_or_else(|| name.to_owned());
    match map.get_mut(&key) {
        Some(Value::Object(inner)) => change_attr(inner, sub, change),
        Some(Value::Array(_)) => {
            let hint = format!("{name} is multi-valued; select elements, as in {name}[type eq \"work\"].{sub}");
            return Err(cx.invalid_path(hint));
        }
        Some(Value::Null) | None if !change.removes() => {
            let mut inner = Map::new();
            change_attr(&mut inner, sub, change);
            map.insert(key, Value::Object(inner));
        }
        Some(Value::Null) | None => {}
        Some(_) if change.removes() => {}
        Some(_) => return Err(cx.no_target()),
    }
    Ok(())
}

/// `attr[filter]` and `attr[filter].sub` on a multi-valued attribute.
fn change_selected(
    map: &mut Object,
    cx: &Ctx,
    name: &str,
    filter: &Filter,
    sub: Option<&str>,
    change: Change<'_>,
) -> Result<(), PatchError> {
    let key = key_ci(map, name).unwrap_or_else(|| name.to_owned());
    match map.get_mut(&key) {
        Some(Value::Array(items)) if items.iter().any(|e| filter.matches(e)) => {
            return change_matching(items, cx, filter, sub, change);
        }
        Some(Value::Array(_)) | Some(Value::Null) | None => {}
        Some(_) => return Err(cx.invalid_path(format!("{name} is not multi-valued, so it takes no filter"))),
    }
    // Nothing selected. Removing nothing succeeds, so that an IdP retrying a
    // removal is not refused; add and replace may create the element.
    let value = match change {
        Change::Remove(_) => return Ok(()),
        Change::Add(v) | Change::Replace(v) => v,
    };
    let (Some(sub), Some(mut element)) = (sub, seed(filter)) else {
        return Err(cx.no_target());
    };
    let sub_key = key_ci(&element, sub).unwrap_or_else(|| sub.to_owned());
    element.insert(sub_key, value.clone());
    match map.get_mut(&key) {
        Some(Value::Array(items)) => items.push(Value::Object(element)),
        _ => {
            map.insert(key, Value::Array(vec![Value::Object(element)]));
        }
    }
    Ok(())
}

fn change_matching(
    items: &mut Vec<Value>,
    cx: &Ctx,
    filter: &Filter,
    sub: Option<&str>,
    change: Change<'_>,
) -> Result<(), PatchError> {
    if change.removes() && sub.is_none() {
        items.retain(|e| !filter.matches(e));
        return Ok(());
    }
    for e in items.iter_mut().filter(|e| filter.matches(e)) {
        match (change, sub, e) {
            (Change::Remove(_), None, _) => {}
            (Change::Replace(v), None, e) => *e = v.clone(),
            (Change::Add(v), None, Value::Object(existing)) if v.is_object() => merge(existing, v),
            (Change::Add(_), None, _) => {
                return Err(cx.invalid_value("adding to selected elements needs an object of sub-attributes"));
            }
            (change, Some(sub), Value::Object(element)) => change_attr(element, sub, change),
            (Change::Remove(_), Some(_), _) => {}
            (_, Some(_), _) => return Err(cx.no_target()),
        }
    }
    Ok(())
}

/// The element that `attr[filter].sub` creates when nothing matches, built
/// from the filter's `eq` terms: Entra ID adds a work address with
/// `emails[type eq "work"].value` and expects `{"type": "work", "value": …}`.
/// Any other filter does not say what to create.
fn seed(filter: &Filter) -> Option<Object> {
    let mut element = Map::new();
    seed_into(filter, &mut element).then_some(element)
}

fn seed_into(filter: &Filter, element: &mut Object) -> bool {
    match filter {
        Filter::Compare { path, op: CompareOp::Eq, value } if path.schema().is_none() && path.sub().is_none() => {
            let v = match value {
                Literal::String(s) => Value::String(s.clone()),
                Literal::Bool(b) => Value::Bool(*b),
                _ => return false,
            };
            element.insert(path.attr().to_owned(), v);
            true
        }
        Filter::And(terms) => terms.iter().all(|t| seed_into(t, element)),
        _ => false,
    }
}

/// A value for an attribute that was absent or scalar: multi-valued ones
/// become arrays even when the client sent a single element.
fn fresh(name: &str, v: &Value) -> Value {
    if v.is_array() || MULTI_VALUED.iter().any(|m| m.eq_ignore_ascii_case(name)) {
        listed(v)
    } else {
        v.clone()
    }
}

fn listed(v: &Value) -> Value {
    let mut items = Vec::new();
    append_unique(&mut items, v);
    Value::Array(items)
}

fn append_unique(items: &mut Vec<Value>, v: &Value) {
    for new in spread(v) {
        if !new.is_null() && !items.iter().any(|e| same_element(e, new)) {
            items.push(new.clone());
        }
    }
}

/// Elements with a `value` (members, emails) are the same when their values
/// are; anything else must be equal as a whole.
fn same_element(a: &Value, b: &Value) -> bool {
    fn value_of(v: &Value) -> Option<&Value> {
        v.as_object().and_then(|o| field_ci(o, "value"))
    }
    match (value_of(a), value_of(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn merge(existing: &mut Object, incoming: &Value) {
    let Some(incoming) = incoming.as_object() else {
        return;
    };
    for (k, v) in incoming {
        let key = key_ci(existing, k).unwrap_or_else(|| k.clone());
        if v.is_null() {
            existing.remove(&key);
        } else {
            existing.insert(key, v.clone());
        }
    }
}

fn spread(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// The resource's own spelling of `name`, so that a case-insensitive match
/// updates the existing key instead of adding a second one.
fn key_ci(map: &Object, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_owned());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn field_ci<'a>(map: &'a Object, name: &str) -> Option<&'a Value> {
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn has_schema(root: &Value, urn: &str) -> bool {
    root.as_object()
        .and_then(|m| field_ci(m, "schemas"))
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn))))
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA], "id": "usr_x", "externalId": "e1", "userName": "ann@example.test",
            "name": {"givenName": "Ann", "familyName": "Lee"}, "displayName": "Ann Lee",
            "emails": [{"value": "ann@example.test", "type": "work", "primary": true}],
            "active": true, "groups": [{"value": "grp_1", "display": "eng"}],
            "meta": {"resourceType": "User", "lastModified": "2026-12-03T07:00:00Z", "version": "W/\"1\""}
        })
    }

    fn group() -> Value {
        json!({"schemas": [GROUP_SCHEMA], "id": "grp_1", "displayName": "eng",
               "members": [{"value": "usr_x", "display": "ann@example.test"}]})
    }

    fn patch(resource: &Value, ops: Value) -> Result<Value, PatchError> {
        apply(resource, &parse_request(&json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops}))?)
    }

    fn refusal(resource: &Value, op: Value) -> &'static str {
        patch(resource, json!([op])).unwrap_err().scim_type()
    }

    fn member_ids(g: &Value) -> Vec<&str> {
        g["members"].as_array().map(|m| m.iter().filter_map(|e| e["value"].as_str()).collect()).unwrap_or_default()
    }

    #[test]
    fn entra_capitalised_op_names_are_accepted() {
        let body = json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [
            {"op": "Add", "path": "title", "value": "x"}, {"op": "Replace", "path": "title", "value": "y"},
            {"op": "Remove", "path": "title"}]});
        let kinds: Vec<OpKind> = parse_request(&body).unwrap().iter().map(|o| o.op).collect();
        assert_eq!(kinds, [OpKind::Add, OpKind::Replace, OpKind::Remove]);
    }

    #[test]
    fn an_unknown_op_is_invalid_syntax() {
        assert_eq!(refusal(&user(), json!({"op": "move", "path": "title"})), "invalidSyntax");
    }

    #[test]
    fn a_body_without_the_patch_op_schema_is_invalid_syntax() {
        let e = parse_request(&json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]})).unwrap_err();
        assert_eq!((e.clone(), e.scim_type()), (PatchError::NotPatchOp, "invalidSyntax"));
    }

    #[test]
    fn schema_and_operations_key_are_matched_without_case() {
        let body = json!({"schemas": [PATCH_OP_SCHEMA.to_uppercase()], "operations": [{"op": "remove", "path": "x"}]});
        assert_eq!(parse_request(&body).unwrap().len(), 1);
    }

    #[test]
    fn more_operations_than_the_limit_are_refused() {
        let ops: Vec<Value> = (0..=MAX_OPERATIONS).map(|_| json!({"op": "remove", "path": "title"})).collect();
        let e = parse_request(&json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})).unwrap_err();
        assert_eq!(e, PatchError::TooManyOperations { max: MAX_OPERATIONS });
    }

    #[test]
    fn pathless_replace_applies_dotted_keys() {
        let out =
            patch(&user(), json!([{"op": "Replace", "value": {"name.givenName": "Bo", "active": false}}])).unwrap();
        assert_eq!(out["name"], json!({"givenName": "Bo", "familyName": "Lee"}));
        assert_eq!(out["active"], json!(false));
    }

    #[test]
    fn okta_pathless_replace_deactivates() {
        let out = patch(&user(), json!([{"op": "replace", "value": {"active": false}}])).unwrap();
        assert_eq!(out["active"], json!(false));
    }

    #[test]
    fn string_values_are_kept_for_the_caller_to_coerce() {
        let out = patch(&user(), json!([{"op": "Replace", "path": "active", "value": "False"}])).unwrap();
        assert_eq!(out["active"], json!("False"));
    }

    #[test]
    fn replace_with_a_filter_updates_the_selected_sub_attribute() {
        let op = json!({"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "a@x.test"});
        let out = patch(&user(), json!([op])).unwrap();
        assert_eq!(out["emails"], json!([{"value": "a@x.test", "type": "work", "primary": true}]));
    }

    #[test]
    fn replace_with_a_type_filter_creates_the_missing_element() {
        let op = json!({"op": "replace", "path": "emails[type eq \"home\"].value", "value": "h@x.test"});
        let out = patch(&user(), json!([op])).unwrap();
        assert_eq!(out["emails"][1], json!({"type": "home", "value": "h@x.test"}));
    }

    #[test]
    fn add_with_a_type_filter_creates_the_missing_element() {
        let mut u = user();
        u.as_object_mut().unwrap().remove("emails");
        let op = json!({"op": "Add", "path": "emails[type eq \"work\"].value", "value": "w@x.test"});
        let out = patch(&u, json!([op])).unwrap();
        assert_eq!(out["emails"], json!([{"type": "work", "value": "w@x.test"}]));
    }

    #[test]
    fn replace_with_a_filter_that_selects_nothing_and_cannot_seed_is_no_target() {
        let e = patch(&group(), json!([{"op": "replace", "path": "members[value eq \"nobody\"]", "value": {}}]));
        assert_eq!(e.unwrap_err().scim_type(), "noTarget");
    }

    #[test]
    fn add_members_appends_without_duplicates() {
        let ops = json!([{"op": "Add", "path": "members",
                          "value": [{"value": "usr_x"}, {"value": "usr_y"}, {"value": "usr_y"}]}]);
        assert_eq!(member_ids(&patch(&group(), ops).unwrap()), ["usr_x", "usr_y"]);
    }

    #[test]
    fn remove_by_member_filter_drops_that_member() {
        let g = patch(&group(), json!([{"op": "add", "path": "members", "value": [{"value": "usr_y"}]}])).unwrap();
        let out = patch(&g, json!([{"op": "Remove", "path": "members[value eq \"usr_x\"]"}])).unwrap();
        assert_eq!(member_ids(&out), ["usr_y"]);
    }

    #[test]
    fn remove_with_a_value_list_drops_the_listed_members() {
        let g = patch(&group(), json!([{"op": "add", "path": "members", "value": [{"value": "usr_y"}]}])).unwrap();
        let out = patch(&g, json!([{"op": "remove", "path": "members", "value": [{"value": "usr_y"}]}])).unwrap();
        assert_eq!(member_ids(&out), ["usr_x"]);
    }

    #[test]
    fn removing_every_member_leaves_an_empty_array() {
        let out = patch(&group(), json!([{"op": "remove", "path": "members[value eq \"usr_x\"]"}])).unwrap();
        assert_eq!(out["members"], json!([]));
    }

    #[test]
    fn removing_a_member_who_is_not_there_succeeds() {
        let out = patch(&group(), json!([{"op": "remove", "path": "members[value eq \"usr_z\"]"}])).unwrap();
        assert_eq!(out, group());
    }

    #[test]
    fn replacing_members_replaces_the_whole_array() {
        let ops = json!([{"op": "replace", "path": "members", "value": [{"value": "usr_z"}]}]);
        let out = patch(&group(), ops).unwrap();
        assert_eq!(member_ids(&out), ["usr_z"]);
    }

    #[test]
    fn remove_without_a_path_is_no_target() {
        let e = patch(&group(), json!([{"op": "remove", "value": [{"value": "usr_x"}]}])).unwrap_err();
        assert_eq!((e.clone(), e.scim_type()), (PatchError::RemoveWithoutPath { index: 1 }, "noTarget"));
    }

    #[test]
    fn replacing_id_is_a_mutability_error() {
        assert_eq!(refusal(&user(), json!({"op": "replace", "path": "id", "value": "usr_y"})), "mutability");
    }

    #[test]
    fn meta_sub_attributes_and_prefixed_ids_are_read_only() {
        for path in ["meta.lastModified", "urn:ietf:params:scim:schemas:core:2.0:User:ID", "schemas"] {
            let e = patch(&user(), json!([{"op": "replace", "path": path, "value": "x"}])).unwrap_err();
            assert_eq!(e.scim_type(), "mutability", "{path}");
        }
    }

    #[test]
    fn okta_group_rename_restating_the_id_succeeds() {
        let op = json!({"op": "replace", "value": {"id": "grp_1", "displayName": "platform"}});
        let out = patch(&group(), json!([op])).unwrap();
        assert_eq!((&out["id"], &out["displayName"]), (&json!("grp_1"), &json!("platform")));
    }

    #[test]
    fn groups_on_a_user_are_read_only() {
        let op = json!({"op": "add", "path": "groups", "value": [{"value": "grp_2"}]});
        assert_eq!(refusal(&user(), op), "mutability");
    }

    #[test]
    fn an_invalid_filter_in_a_path_is_invalid_path() {
        let op = json!({"op": "replace", "path": "emails[type eq].value", "value": "x"});
        assert_eq!(refusal(&user(), op), "invalidPath");
    }

    #[test]
    fn a_sub_attribute_of_a_multi_valued_attribute_needs_a_filter() {
        assert_eq!(refusal(&user(), json!({"op": "replace", "path": "emails.value", "value": "x"})), "invalidPath");
    }

    #[test]
    fn a_failing_later_operation_fails_the_whole_request() {
        let before = user();
        let ops = json!([{"op": "replace", "path": "displayName", "value": "Changed"},
                         {"op": "replace", "path": "id", "value": "usr_y"}]);
        assert!(matches!(patch(&before, ops), Err(PatchError::Mutability { index: 2, .. })));
        assert_eq!(before, user());
    }

    #[test]
    fn add_and_replace_without_a_value_are_invalid_value() {
        assert_eq!(refusal(&user(), json!({"op": "add", "path": "title"})), "invalidValue");
    }

    #[test]
    fn attribute_names_match_without_case_keeping_the_resource_spelling() {
        let out = patch(&user(), json!([{"op": "replace", "path": "USERNAME", "value": "bo@example.test"}])).unwrap();
        assert_eq!(out["userName"], json!("bo@example.test"));
        assert!(out.get("USERNAME").is_none());
    }

    #[test]
    fn new_attributes_take_the_request_spelling() {
        let out = patch(&user(), json!([{"op": "add", "path": "nickName", "value": "Annie"}])).unwrap();
        assert_eq!(out["nickName"], json!("Annie"));
    }

    #[test]
    fn a_core_schema_prefix_in_a_path_is_ignored() {
        let path = "urn:ietf:params:scim:schemas:core:2.0:User:displayName";
        let out = patch(&user(), json!([{"op": "replace", "path": path, "value": "A. Lee"}])).unwrap();
        assert_eq!(out["displayName"], json!("A. Lee"));
    }

    #[test]
    fn an_extension_attribute_goes_into_its_schema_object() {
        let key = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";
        let out = patch(&user(), json!([{"op": "Add", "value": {key: "R&D"}}])).unwrap();
        assert_eq!(out["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"], json!({"department": "R&D"}));
    }

    #[test]
    fn a_whole_extension_object_sets_its_attributes() {
        let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let out = patch(&user(), json!([{"op": "replace", "value": {ext: {"employeeNumber": "7"}}}])).unwrap();
        assert_eq!(out[ext], json!({"employeeNumber": "7"}));
    }

    #[test]
    fn replacing_a_complex_attribute_keeps_unnamed_sub_attributes() {
        let out = patch(&user(), json!([{"op": "replace", "path": "name", "value": {"givenName": "Bo"}}])).unwrap();
        assert_eq!(out["name"], json!({"givenName": "Bo", "familyName": "Lee"}));
    }

    #[test]
    fn adding_one_object_to_an_absent_multi_valued_attribute_makes_an_array() {
        let out = patch(&user(), json!([{"op": "add", "path": "phoneNumbers", "value": {"value": "+1"}}])).unwrap();
        assert_eq!(out["phoneNumbers"], json!([{"value": "+1"}]));
    }

    #[test]
    fn replacing_with_null_unassigns_the_attribute() {
        let out = patch(&user(), json!([{"op": "replace", "path": "displayName", "value": null}])).unwrap();
        assert!(out.get("displayName").is_none());
    }
}
