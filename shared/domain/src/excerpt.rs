//! Quoting untrusted input in error messages: a short, escaped excerpt, so an error, a job
//! status, a log line or an email never carries a file's or request's content at length
//! (a secret read by mistake, a control sequence, a megabyte of junk).

/// Characters of input an error quotes at most.
pub const EXCERPT_CHARS: usize = 40;

/// `text` quoted for an error: at most [`EXCERPT_CHARS`] characters, control characters
/// escaped, an ellipsis when cut.
pub fn excerpt(text: &str) -> String {
    format!("\"{}\"", shortened(text, EXCERPT_CHARS))
}

/// A message that may embed input (a parser's own error text): cut to `max` characters,
/// control characters escaped.
pub fn shortened(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt("uid=ada"), "\"uid=ada\"");
        assert_eq!(excerpt("a\nb\u{1b}[31m"), "\"a\\nb\\u{1b}[31m\"");
        let long = "x".repeat(1000);
        let quoted = excerpt(&long);
        assert!(quoted.chars().count() <= EXCERPT_CHARS + 3, "{quoted}");
        assert!(quoted.ends_with("…\""));
    }
}
