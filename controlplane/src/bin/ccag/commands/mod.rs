//! The subcommands.

pub mod audit;
pub mod auth;
pub mod budgets;
pub mod endpoints;
pub mod idps;
pub mod keys;
pub mod managed;
pub mod models;
pub mod notifications;
pub mod scim;
pub mod search;
pub mod settings;
pub mod status;
pub mod teams;
pub mod usage;
pub mod users;

use std::collections::HashSet;
use std::future::Future;

use ccag_proto::admin::v1::Page;
use serde_json::Value;

use crate::args::PageArgs;
use crate::output::{self, Record, Resource};

/// What a successful command prints.
#[derive(Debug, Default, PartialEq)]
pub struct Out {
    pub stdout: String,
    /// A note for stderr, e.g. that more pages exist.
    pub note: Option<String>,
}

impl From<String> for Out {
    fn from(stdout: String) -> Self {
        Self { stdout, note: None }
    }
}

/// The fetched page(s) of a list.
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Empty after the last page.
    pub next_page_token: String,
}

/// Fetches one page, or with `--all` every page from `--page-token` on.
pub async fn fetch_pages<T, F, Fut>(args: &PageArgs, mut fetch: F) -> Result<Paged<T>, tonic::Status>
where
    F: FnMut(Page) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut token = args.page_token.clone().unwrap_or_default();
    let mut seen = HashSet::new();
    let mut items = Vec::new();
    loop {
        let page = Page { page_size: args.page_size.unwrap_or(0), page_token: token.clone() };
        let (mut got, next) = fetch(page).await?;
        items.append(&mut got);
        if !args.all || next.is_empty() {
            return Ok(Paged { items, next_page_token: next });
        }
        if !seen.insert(next.clone()) {
            return Err(tonic::Status::internal(format!("the server returned page token {next:?} twice")));
        }
        token = next;
    }
}

/// A list's output: a table or a JSON array, and a note when pages remain.
pub fn list_out<T: Resource>(paged: &Paged<T>, json: bool) -> Out {
    let note = (!paged.next_page_token.is_empty()).then(|| {
        format!("note: more results exist; run again with --page-token {} or use --all", paged.next_page_token)
    });
    Out { stdout: output::render_list(&paged.items, json), note }
}

pub fn one_out<T: Resource>(item: &T, json: bool) -> Out {
    output::render_one(item, json).into()
}

/// The output of a delete.
pub fn deleted_out(kind: &str, id_field: &'static str, id: &str, json: bool) -> Out {
    if json {
        output::to_json(&Record::new().field(id_field, id.to_string()).field("deleted", Value::Bool(true))).into()
    } else {
        format!("Deleted {kind} {id}.\n").into()
    }
}

/// Errors with exit 2 when an update would change nothing.
pub fn require_change(changed: bool) -> Result<(), crate::error::CliError> {
    if changed {
        Ok(())
    } else {
        Err(crate::error::CliError::usage("nothing to update: give at least one option to change (see --help)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn pages() -> Vec<(Vec<u32>, String)> {
        vec![(vec![1, 2], "p2".into()), (vec![3, 4], "p3".into()), (vec![5], String::new())]
    }

    async fn run(args: PageArgs) -> (Result<Paged<u32>, tonic::Status>, Vec<Page>) {
        let asked = RefCell::new(Vec::new());
        let data = pages();
        let res = fetch_pages(&args, |p: Page| {
            asked.borrow_mut().push(p.clone());
            let i = match p.page_token.as_str() {
                "" => 0,
                "p2" => 1,
                "p3" => 2,
                _ => 0,
            };
            let r = data[i].clone();
            async move { Ok(r) }
        })
        .await;
        (res, asked.into_inner())
    }

    #[tokio::test]
    async fn one_page_without_all() {
        let (res, asked) = run(PageArgs::default()).await;
        let p = res.unwrap();
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next_page_token, "p2");
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].page_size, 0);
    }

    #[tokio::test]
    async fn all_pages_with_all() {
        let args = PageArgs { page_size: Some(2), page_token: None, all: true };
        let (res, asked) = run(args).await;
        let p = res.unwrap();
        assert_eq!(p.items, vec![1, 2, 3, 4, 5]);
        assert!(p.next_page_token.is_empty());
        assert_eq!(asked.len(), 3);
        assert!(asked.iter().all(|a| a.page_size == 2));
    }

    #[tokio::test]
    async fn starts_at_page_token() {
        let args = PageArgs { page_size: None, page_token: Some("p3".into()), all: false };
        let (res, _) = run(args).await;
        assert_eq!(res.unwrap().items, vec![5]);
    }

    #[tokio::test]
    async fn repeated_token_stops() {
        let args = PageArgs { all: true, ..Default::default() };
        let res = fetch_pages(&args, |_p: Page| async { Ok((vec![1u32], "same".to_string())) }).await;
        assert!(res.is_err());
    }

    #[test]
    fn list_note_only_when_pages_remain() {
        let paged = Paged::<ccag_proto::admin::v1::Setting> { items: vec![], next_page_token: "abc".into() };
        let out = list_out(&paged, true);
        assert_eq!(out.stdout.trim(), "[]");
        assert!(out.note.unwrap().contains("--page-token abc"));
        let paged = Paged::<ccag_proto::admin::v1::Setting> { items: vec![], next_page_token: String::new() };
        assert!(list_out(&paged, false).note.is_none());
    }

    #[test]
    fn deleted_output() {
        let v: Value = serde_json::from_str(&deleted_out("user", "id", "u1", true).stdout).unwrap();
        assert_eq!(v, serde_json::json!({"id": "u1", "deleted": true}));
        assert_eq!(deleted_out("user", "id", "u1", false).stdout, "Deleted user u1.\n");
    }
}
