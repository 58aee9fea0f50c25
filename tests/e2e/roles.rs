//! The role matrix: every method the reflection descriptor lists is called with no token, an
//! unknown token and each role's token, and the answers are compared with the one access
//! table in the code (`syncguard_bootstrap::METHOD_ACCESS`). A method without a declared
//! role fails here, and the README's roles table must equal the one generated from the code.

use std::collections::BTreeSet;

use prost::Message as _;
use syncguard_bootstrap::{METHOD_ACCESS, Requirement, ServiceName, requirement, roles_markdown};
use syncguard_domain::Role;
use syncguard_e2e::Suite;
use syncguard_e2e::raw::{call, is_refused_for_identity};
use tonic::Code;

/// Every `syncguard.v1.<Service>/<Method>` the API's descriptor declares.
pub fn described_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(syncguard_proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    let mut methods = BTreeSet::new();
    for file in set.file {
        let package = file.package().to_owned();
        for service in &file.service {
            for method in &service.method {
                methods.insert(format!("{package}.{}/{}", service.name(), method.name()));
            }
        }
    }
    methods
}

/// The service whose port serves `method`.
pub fn serving(method: &str) -> ServiceName {
    let service = method
        .strip_prefix("syncguard.v1.")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    ServiceName::ALL
        .into_iter()
        .find(|name| service.eq_ignore_ascii_case(&format!("{}Service", name.as_str())))
        .unwrap_or_else(|| panic!("{method} belongs to no service of ours"))
}

#[test]
fn every_described_method_has_a_declared_role_and_nothing_else_is_declared() {
    let described = described_methods();
    let declared: BTreeSet<String> = METHOD_ACCESS
        .iter()
        .map(|(method, _)| (*method).to_owned())
        .collect();
    let undeclared: Vec<_> = described.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "methods without a declared role (add them to METHOD_ACCESS): {undeclared:?}"
    );
    let stale: Vec<_> = declared.difference(&described).collect();
    assert!(stale.is_empty(), "declared but not in the API: {stale:?}");
}

#[test]
fn the_readme_roles_table_is_the_one_in_the_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md is readable");
    let (_, rest) = readme
        .split_once("<!-- roles table: generated from METHOD_ACCESS -->\n")
        .expect("the README marks where the roles table begins");
    let (table, _) = rest
        .split_once("<!-- end of roles table -->")
        .expect("the README marks where the roles table ends");
    let expected = roles_markdown();
    assert_eq!(
        table, expected,
        "README.md's roles table differs from the code; replace it with:\n{expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_answers_each_caller_as_its_declared_role_says() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let tokens = suite.tokens.clone();
    let roles = [
        (Role::Reader, tokens.reader.as_str()),
        (Role::Operator, tokens.operator.as_str()),
        (Role::Approver, tokens.approver.as_str()),
        (Role::Admin, tokens.admin.as_str()),
        (Role::Service, tokens.service.as_str()),
    ];
    let stranger = format!("stranger-{}", uuid::Uuid::new_v4().simple());
    let mut calls = 0;
    let mut mismatches = Vec::new();
    println!(
        "{:<48} none  wrong reader operator approver admin service",
        "method"
    );
    for method in described_methods() {
        let Requirement::Token(access) = requirement(&format!("/{method}")) else {
            panic!("{method} has no declared role");
        };
        let channel = suite.channel(serving(&method));
        let mut row = format!("{method:<48}");
        for token in [None, Some(stranger.as_str())] {
            let answer = call(channel.clone(), &method, token, vec![Vec::new()]).await;
            calls += 1;
            let code = answer.err().map_or(Code::Ok, |status| status.code());
            row.push_str(&format!(" {:<5}", short(code)));
            if code != Code::Unauthenticated {
                mismatches.push(format!(
                    "{method} with {token:?}: {code:?}, not Unauthenticated"
                ));
            }
        }
        for (role, token) in roles {
            let answer = call(channel.clone(), &method, Some(token), vec![Vec::new()]).await;
            calls += 1;
            let code = answer.err().map_or(Code::Ok, |status| status.code());
            row.push_str(&format!(" {:<8}", short(code)));
            let allowed = role.grants(access);
            if allowed == is_refused_for_identity(code) || code == Code::Unimplemented {
                mismatches.push(format!(
                    "{method} as {role}: {code:?}, but its declared access {access} {} the {role} role",
                    if allowed { "grants" } else { "does not grant" }
                ));
            }
        }
        println!("{row}");
    }
    println!("{calls} calls");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // A path nobody declared is refused to everyone, the admin too.
    let refused = call(
        suite.channel(ServiceName::Gate),
        "syncguard.v1.GateService/NotARealMethod",
        Some(&tokens.admin),
        vec![Vec::new()],
    )
    .await
    .expect_err("an undeclared method is refused");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    suite.stop().await
}

fn short(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Unauthenticated => "unauth",
        Code::PermissionDenied => "denied",
        Code::InvalidArgument => "invalid",
        Code::NotFound => "notfound",
        Code::FailedPrecondition => "state",
        _ => "other",
    }
}
