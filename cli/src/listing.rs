//! Listings longer than one page: a table shows the first `--limit` rows and says how many
//! more there are; `--all` and `--json` (unless `--limit` is given) walk every page, and
//! JSON is written as the pages arrive.

use std::future::Future;

use serde_json::Value;
use syncguard_proto::v1;

use crate::failure::Failure;
use crate::output::emit;

/// Rows the table shows when neither `--limit` nor `--all` is given.
pub const DEFAULT_LIMIT: u32 = 50;
/// Beyond this many further rows, a table says "more than" instead of counting them all.
const COUNT_CAP: u64 = 10_000;
/// Rows asked for per page when walking a listing.
const WALK_PAGE: u32 = 1000;

/// How much of a listing to read.
#[derive(Debug, Clone, Copy)]
pub struct Extent {
    /// `--limit`, if given.
    pub limit: Option<u32>,
    /// `--all`.
    pub all: bool,
    /// `--json`.
    pub json: bool,
}

impl Extent {
    /// Whether every page is read: `--all`, or JSON without `--limit`.
    fn walks_everything(self) -> bool {
        self.all || (self.json && self.limit.is_none())
    }

    fn shown(self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, WALK_PAGE)
    }
}

/// One page as the services answer it: rows and the token of the next page.
pub type Page<T> = (Vec<T>, String);

fn request(size: u32, token: &str) -> Option<v1::PageRequest> {
    Some(v1::PageRequest {
        page_size: size,
        page_token: token.to_owned(),
    })
}

/// Reads a listing as `extent` says, printing JSON rows (through `to_json`) as they come,
/// or returning the rows for a table together with a note about the rows not shown.
pub async fn list<T, F, Fut>(
    extent: Extent,
    mut fetch: F,
    to_json: impl Fn(&T) -> Value,
) -> Result<Option<(Vec<T>, Option<String>)>, Failure>
where
    F: FnMut(Option<v1::PageRequest>) -> Fut,
    Fut: Future<Output = Result<Page<T>, Failure>>,
{
    if extent.json {
        // A JSON array written page by page: scripts get every row without holding them all.
        let size = if extent.walks_everything() {
            WALK_PAGE
        } else {
            extent.shown()
        };
        let mut token = String::new();
        let mut first = true;
        emit("[")?;
        loop {
            let (rows, next) = fetch(request(size, &token)).await?;
            for row in &rows {
                let text = serde_json::to_string(&to_json(row)).unwrap_or_else(|_| "null".into());
                emit(&format!("{}  {text}", if first { "" } else { "," }))?;
                first = false;
            }
            if next.is_empty() || !extent.walks_everything() {
                break;
            }
            token = next;
        }
        emit("]")?;
        return Ok(None);
    }
    if extent.all {
        let mut rows = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = fetch(request(WALK_PAGE, &token)).await?;
            rows.extend(page);
            if next.is_empty() {
                return Ok(Some((rows, None)));
            }
            token = next;
        }
    }
    let (rows, mut token) = fetch(request(extent.shown(), "")).await?;
    if token.is_empty() {
        return Ok(Some((rows, None)));
    }
    // Count what was not shown, page by page, up to a cap.
    let mut more: u64 = 0;
    while !token.is_empty() && more < COUNT_CAP {
        let (page, next) = fetch(request(WALK_PAGE, &token)).await?;
        more += page.len() as u64;
        token = next;
    }
    let note = if token.is_empty() {
        format!("... and {more} more (use --all, or --limit N)")
    } else {
        format!("... and more than {more} more (use --all, or --limit N)")
    };
    Ok(Some((rows, Some(note))))
}
