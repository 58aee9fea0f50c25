//! Email addresses of notification recipients.

use crate::FieldError;

/// Checks that `address` is one plain address (`ops@example.com`): no display name, no
/// second address, nothing that could start a new mail header. Returns it trimmed.
pub fn parse_email(field: &str, address: &str) -> Result<String, FieldError> {
    let address = address.trim();
    let forbidden = |c: char| c.is_control() || c.is_whitespace() || ",;<>\"()[]\\".contains(c);
    let valid = address.len() <= 254
        && !address.chars().any(forbidden)
        && matches!(address.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@')
               && !domain.starts_with('.') && !domain.ends_with('.'));
    if !valid {
        return Err(FieldError::new(
            field,
            format!("{address:?} is not a single email address like ops@example.com"),
        ));
    }
    Ok(address.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_pass_and_header_tricks_do_not() {
        assert_eq!(
            parse_email("to", " ops@example.com ").unwrap(),
            "ops@example.com"
        );
        for bad in [
            "ops@example.com\r\nBcc: all@example.com",
            "Ops <ops@example.com>",
            "a@example.com, b@example.com",
            "ops@localhost",
            "@example.com",
            "ops@@example.com",
        ] {
            assert_eq!(parse_email("to", bad).unwrap_err().field, "to", "{bad:?}");
        }
    }
}
