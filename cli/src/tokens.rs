//! `syncguard tokens`: new bearer tokens and the digest lines the services' tokens file
//! lists, so the file never has to hold a token in clear.

use std::io::Read as _;

use sha2::{Digest as _, Sha256};

use crate::args::TokensCommand;
use crate::failure::Failure;
use crate::out;

const ROLES: [&str; 5] = ["reader", "operator", "approver", "admin", "service"];

fn checked(role: &str, name: &str) -> Result<(), Failure> {
    if !ROLES.contains(&role) {
        return Err(Failure::usage(format!(
            "--role {role:?} is not a role: use one of {}",
            ROLES.join(", ")
        )));
    }
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Failure::usage(
            "--name is one word: the principal recorded as the actor".to_owned(),
        ));
    }
    Ok(())
}

fn line(role: &str, name: &str, token: &str) -> String {
    format!(
        "{role} {name} sha256:{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

/// Runs a token command.
pub fn tokens(command: TokensCommand) -> Result<(), Failure> {
    match command {
        TokensCommand::New { role, name } => {
            checked(&role, &name)?;
            // 244 random bits from the system's generator.
            let token = format!(
                "sg_{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            out!("token (give it to {name}; it is not shown again): {token}")?;
            out!("tokens file line: {}", line(&role, &name, &token))?;
        }
        TokensCommand::Digest { role, name } => {
            checked(&role, &name)?;
            let mut token = String::new();
            std::io::stdin()
                .read_to_string(&mut token)
                .map_err(|error| Failure::other(format!("cannot read the token: {error}")))?;
            let token = token.trim_end_matches(['\n', '\r']);
            if token.len() < 16 {
                return Err(Failure::usage(
                    "a token is at least 16 characters".to_owned(),
                ));
            }
            out!("{}", line(&role, &name, token))?;
        }
    }
    Ok(())
}
