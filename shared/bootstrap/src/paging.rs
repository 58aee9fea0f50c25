//! Keyset paging and timestamps as every list call of every service reads and writes them.

use chrono::{DateTime, Utc};
use syncguard_domain::FieldError;
use syncguard_proto::v1;

/// Page size when a request names none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page a request may ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A page request, validated: the size, and the token (the sort key of the last row seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Rows to return.
    pub size: i64,
    /// Where the previous page ended.
    pub token: Option<String>,
}

impl Page {
    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch(&self) -> i64 {
        self.size + 1
    }

    /// The token parsed as the sort key it carries (an id, a log number); a token this
    /// service could not have issued is refused naming `page.page_token`.
    pub fn token_as<T: std::str::FromStr>(&self) -> Result<Option<T>, FieldError> {
        self.token
            .as_deref()
            .map(|token| {
                token.parse().map_err(|_| {
                    FieldError::new("page.page_token", "not a token this service issued")
                })
            })
            .transpose()
    }

    /// Cuts `rows` to the page and returns the next page's token (empty when this is the last).
    pub fn finish<T>(&self, rows: &mut Vec<T>, token_of: impl Fn(&T) -> String) -> String {
        if rows.len() as i64 > self.size {
            rows.truncate(self.size as usize);
            rows.last().map(token_of).unwrap_or_default()
        } else {
            String::new()
        }
    }
}

/// Reads a page request: size within bounds (`page.page_size` named when not).
pub fn page(request: Option<&v1::PageRequest>) -> Result<Page, FieldError> {
    let Some(request) = request else {
        return Ok(Page {
            size: i64::from(DEFAULT_PAGE_SIZE),
            token: None,
        });
    };
    let size = match request.page_size {
        0 => DEFAULT_PAGE_SIZE,
        size if size > MAX_PAGE_SIZE => {
            return Err(FieldError::new(
                "page.page_size",
                format!("at most {MAX_PAGE_SIZE}"),
            ));
        }
        size => size,
    };
    Ok(Page {
        size: i64::from(size),
        token: Some(request.page_token.clone()).filter(|token| !token.is_empty()),
    })
}

/// A database time as the API's timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_default_cap_and_name_the_field() {
        assert_eq!(page(None).unwrap().size, 100);
        let too_big = v1::PageRequest {
            page_size: 5000,
            page_token: String::new(),
        };
        assert_eq!(page(Some(&too_big)).unwrap_err().field, "page.page_size");
        let second = v1::PageRequest {
            page_size: 2,
            page_token: "b".into(),
        };
        let second = page(Some(&second)).unwrap();
        assert_eq!(
            (second.size, second.token.as_deref(), second.fetch()),
            (2, Some("b"), 3)
        );
        let mut rows = vec!["c", "d", "e"];
        assert_eq!(second.finish(&mut rows, |row| (*row).to_owned()), "d");
        assert_eq!(rows, ["c", "d"]);
        assert_eq!(
            second.token_as::<i64>().unwrap_err().field,
            "page.page_token"
        );
        let numbered = page(Some(&v1::PageRequest {
            page_size: 0,
            page_token: "42".into(),
        }))
        .unwrap();
        assert_eq!(numbered.token_as::<i64>(), Ok(Some(42)));
        let mut last = vec!["f"];
        assert_eq!(second.finish(&mut last, |row| (*row).to_owned()), "");
    }
}
