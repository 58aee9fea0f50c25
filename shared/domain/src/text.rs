//! Free text from requests, checked before it is stored or logged: Postgres text cannot hold
//! NUL, control characters in a name or a DN only hide what the value is, and a reason is a
//! sentence for the provisioning log, not a document.

use crate::ids::FieldError;

/// Longest reason recorded with a decision or a setting change.
pub const MAX_REASON_CHARS: usize = 2000;

/// A required reason: trimmed, 1 to [`MAX_REASON_CHARS`] characters, no control characters
/// but line breaks and tabs.
pub fn reason(field: &str, value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > MAX_REASON_CHARS {
        return Err(FieldError::new(
            field,
            format!(
                "a reason of 1 to {MAX_REASON_CHARS} characters is required; it is recorded in the provisioning log"
            ),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(FieldError::new(
            field,
            "control characters (NUL, escapes) are not allowed in a reason",
        ));
    }
    Ok(value.to_owned())
}

/// An optional reason: empty, or what [`reason`] accepts.
pub fn optional_reason(field: &str, value: &str) -> Result<Option<String>, FieldError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        reason(field, value).map(Some)
    }
}

/// A one-line value (a name, a DN, a path, a filter): at most `max_chars` characters and no
/// control characters. Returns the value as given.
pub fn single_line<'a>(
    field: &str,
    value: &'a str,
    max_chars: usize,
) -> Result<&'a str, FieldError> {
    if value.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("at most {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "control characters (NUL, line breaks, escapes) are not allowed",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_sentences_without_control_characters() {
        assert_eq!(
            reason("reason", "  HR confirmed\n").unwrap(),
            "HR confirmed"
        );
        assert!(reason("reason", "").is_err());
        assert!(
            reason("reason", "a\0b")
                .unwrap_err()
                .to_string()
                .starts_with("reason:")
        );
        assert!(reason("reason", &"x".repeat(2001)).is_err());
        assert_eq!(optional_reason("reason", " ").unwrap(), None);
    }

    #[test]
    fn single_lines_refuse_nul_and_length() {
        assert_eq!(single_line("name", "HR feed", 200).unwrap(), "HR feed");
        assert!(single_line("name", "a\0", 200).is_err());
        assert!(single_line("name", "a\nb", 200).is_err());
        assert!(single_line("name", &"x".repeat(201), 200).is_err());
    }
}
