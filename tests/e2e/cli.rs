//! The `syncguard` admin command line, run as a separate process against the suite.

use std::path::PathBuf;
use std::process::Output;

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::{Suite, transport};
use tokio::process::Command;

fn cli_binary() -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test binary has a path");
    let path = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("syncguard"))
        .expect("the test binary lives in target/<profile>/deps");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// Runs `syncguard <args>` against the suite with `token` (None: no token at all).
async fn syncguard(suite: &Suite, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(cli_binary());
    command
        .args(args)
        .env_remove("SYNCGUARD_TOKEN")
        .stdin(std::process::Stdio::null());
    for service in ServiceName::ALL {
        command.env(
            service.url_variable(),
            transport::service_url(suite.address(service)),
        );
    }
    command.envs(transport::cli_env());
    if let Some(token) = token {
        command.env("SYNCGUARD_TOKEN", token);
    }
    command.output().await.expect("the CLI runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        stdout(output)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

fn users_json(range: std::ops::Range<usize>) -> String {
    let objects: Vec<serde_json::Value> = range
        .map(|n| {
            serde_json::json!({
                "anchor": format!("E-{n:04}"), "type": "user",
                "attributes": {"cn": format!("Person {n}"), "mail": format!("p{n}@example.org")}
            })
        })
        .collect();
    serde_json::json!({ "objects": objects }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_takes_a_quarantine_from_import_to_restore_with_the_cli() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let operator = suite.tokens.operator.clone();
    let approver = suite.tokens.approver.clone();
    let dir = std::env::temp_dir().join(format!("syncguard-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;

    let created = json(
        &syncguard(
            &suite,
            Some(&operator),
            &[
                "jobs",
                "create",
                "--name",
                "hr",
                "--threshold",
                "3",
                "--recipient",
                "ops@example.com",
                "--json",
            ],
        )
        .await,
    );
    let job = created["job_id"].as_str().expect("job id").to_owned();
    assert_eq!(created["health"], "healthy");

    let full = dir.join("full.json");
    std::fs::write(&full, users_json(0..10))?;
    let imported = json(
        &syncguard(
            &suite,
            Some(&operator),
            &["import", &job, full.to_str().unwrap_or_default(), "--json"],
        )
        .await,
    );
    assert_eq!(imported[0]["cycle_state"], "completed");
    assert_eq!(imported[0]["objects"], 10);

    let broken = dir.join("broken.json");
    std::fs::write(&broken, users_json(4..10))?;
    let held = json(
        &syncguard(
            &suite,
            Some(&operator),
            &[
                "import",
                &job,
                broken.to_str().unwrap_or_default(),
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(held[0]["cycle_state"], "quarantined");

    let shown = syncguard(&suite, Some(&approver), &["quarantine", "show", &job]).await;
    let table = stdout(&shown);
    assert!(
        table.contains("Delete threshold exceeded") || table.contains("counted 4"),
        "{table}"
    );
    assert!(
        table.contains("E-0000") && table.contains("removed_from_source"),
        "{table}"
    );

    // Not at a terminal and without --yes, nothing is allowed.
    let unconfirmed = syncguard(
        &suite,
        Some(&approver),
        &["quarantine", "allow", &job, "--reason", "hr confirmed"],
    )
    .await;
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    let quarantine = json(
        &syncguard(
            &suite,
            Some(&approver),
            &["quarantine", "show", &job, "--json"],
        )
        .await,
    );
    assert_eq!(quarantine["state"], "open");

    let allowed = syncguard(
        &suite,
        Some(&approver),
        &[
            "quarantine",
            "allow",
            &job,
            "--reason",
            "hr confirmed",
            "--yes",
        ],
    )
    .await;
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    assert!(
        stdout(&allowed).contains("4 actions applied"),
        "{}",
        stdout(&allowed)
    );

    let deleted = json(
        &syncguard(
            &suite,
            Some(&approver),
            &["directory", "deleted", &job, "--json"],
        )
        .await,
    );
    let deleted = deleted.as_array().expect("a list").clone();
    assert_eq!(deleted.len(), 4);
    let object_id = deleted[0]["object_id"]
        .as_str()
        .expect("object id")
        .to_owned();
    let restored = json(
        &syncguard(
            &suite,
            Some(&approver),
            &[
                "directory",
                "restore",
                &object_id,
                "--reason",
                "mistake",
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(restored["object_id"], object_id.as_str());

    let staged = json(
        &syncguard(
            &suite,
            Some(&approver),
            &["logs", "--job", &job, "--action", "staged-delete", "--json"],
        )
        .await,
    );
    assert_eq!(staged.as_array().map(Vec::len), Some(4));
    let cycles = json(
        &syncguard(
            &suite,
            Some(&approver),
            &["cycles", "list", "--job", &job, "--json"],
        )
        .await,
    );
    assert_eq!(cycles.as_array().map(Vec::len), Some(2));
    std::fs::remove_dir_all(&dir)?;
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_with_the_documented_codes() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let no_token = syncguard(&suite, None, &["jobs", "list"]).await;
    assert_eq!(no_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("SYNCGUARD_TOKEN"));
    let wrong = syncguard(&suite, Some("not-a-token-of-this-suite"), &["jobs", "list"]).await;
    assert_eq!(wrong.status.code(), Some(4));
    let missing = syncguard(
        &suite,
        Some(&suite.tokens.reader),
        &["jobs", "show", &uuid::Uuid::new_v4().to_string()],
    )
    .await;
    assert_eq!(missing.status.code(), Some(3));
    let reader = syncguard(
        &suite,
        Some(&suite.tokens.reader),
        &["jobs", "create", "--name", "x"],
    )
    .await;
    assert_eq!(reader.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&reader.stderr).contains("operator"),
        "{}",
        String::from_utf8_lossy(&reader.stderr)
    );
    let empty = syncguard(&suite, Some(&suite.tokens.reader), &["jobs", "list"]).await;
    assert!(empty.status.success());
    assert!(stdout(&empty).contains("(none)"));
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_explains_itself_with_an_example() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let commands: &[&[&str]] = &[
        &[],
        &["jobs"],
        &["jobs", "create"],
        &["jobs", "show"],
        &["jobs", "list"],
        &["jobs", "protection"],
        &["jobs", "recipients"],
        &["jobs", "retention"],
        &["jobs", "delete"],
        &["cycles"],
        &["cycles", "trigger"],
        &["cycles", "show"],
        &["cycles", "list"],
        &["quarantine"],
        &["quarantine", "show"],
        &["quarantine", "allow"],
        &["quarantine", "reject"],
        &["quarantine", "restart"],
        &["quarantine", "pins"],
        &["logs"],
        &["directory"],
        &["directory", "get"],
        &["directory", "list"],
        &["directory", "deleted"],
        &["directory", "restore"],
        &["directory", "purge"],
        &["import"],
        &["demo"],
        &["targets"],
        &["targets", "status"],
        &["targets", "failures"],
        &["targets", "retry"],
        &["watch"],
    ];
    for command in commands {
        let mut args: Vec<&str> = command.to_vec();
        args.push("--help");
        let help = syncguard(&suite, None, &args).await;
        assert!(help.status.success(), "{command:?}");
        assert!(
            stdout(&help).contains("Example:"),
            "{command:?} has no example:\n{}",
            stdout(&help)
        );
    }
    suite.stop().await
}

/// A suite whose notifier writes mail to a fresh folder, as scripts/run does, for the demo.
async fn demo_suite() -> anyhow::Result<(Suite, PathBuf)> {
    let mail_dir =
        std::env::temp_dir().join(format!("syncguard-demo-mail-{}", uuid::Uuid::new_v4()));
    let suite = Suite::start_with(syncguard_e2e::SuiteOptions {
        mail: Some(syncguard_notifier::settings::MailSettings {
            delivery: syncguard_notifier::settings::Delivery::Directory(mail_dir.clone()),
            poll_interval: std::time::Duration::from_millis(200),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await?;
    Ok((suite, mail_dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_plays_the_whole_story() -> anyhow::Result<()> {
    let (suite, mail_dir) = demo_suite().await?;
    let demo = syncguard(
        &suite,
        Some(&suite.tokens.admin),
        &["demo", "--mail-dir", mail_dir.to_str().unwrap_or_default()],
    )
    .await;
    let printed = stdout(&demo);
    assert!(
        demo.status.success(),
        "{}\n{printed}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for expected in [
        "1000 objects, completed",
        "quarantined",
        "job status: Delete threshold exceeded",
        "600 StagedDelete entries",
        "Subject: [syncguard] Delete threshold exceeded",
        "600 user deletes",
        "applied 600 deletes",
        "600 soft-deleted objects",
        "(the same object id)",
    ] {
        assert!(
            printed.contains(expected),
            "missing {expected:?} in:\n{printed}"
        );
    }
    suite.stop().await
}

/// Runs `syncguard <args>` with its standard output read only up to `lines` lines, then
/// closed, as `| head -<lines>` does.
async fn syncguard_head(
    suite: &Suite,
    token: &str,
    args: &[&str],
    lines: usize,
) -> (std::process::ExitStatus, String, String) {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
    let mut command = Command::new(cli_binary());
    command
        .args(args)
        .env("SYNCGUARD_TOKEN", token)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for service in ServiceName::ALL {
        command.env(
            service.url_variable(),
            transport::service_url(suite.address(service)),
        );
    }
    command.envs(transport::cli_env());
    let mut child = command.spawn().expect("the CLI runs");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut read = String::new();
    for _ in 0..lines {
        match stdout.next_line().await {
            Ok(Some(line)) => {
                read.push_str(&line);
                read.push('\n');
            }
            _ => break,
        }
    }
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .await
        .expect("stderr reads");
    let status = child.wait().await.expect("the CLI ends");
    (status, read, stderr)
}

/// A job with `total` users, then a source that lost all but 2 of them: a quarantine of
/// `total - 2` held deletes, and as many log rows.
async fn job_with_many_held_deletes(suite: &Suite, total: usize) -> anyhow::Result<String> {
    use syncguard_e2e::directory::{directory, push_snapshot};
    use syncguard_proto::v1;
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let mut spec = crate::jobs::push_job("many");
    spec.protection_rules = vec![v1::ProtectionRule {
        max_count: Some(10),
        ..Default::default()
    }];
    let job = ingest
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    let people = directory(total, 0);
    push_snapshot(&mut ingest, &job, &people).await?;
    push_snapshot(&mut ingest, &job, &people[..2]).await?;
    Ok(job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_ends_quietly_when_its_reader_stops_and_says_what_it_did_not_show()
-> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job = job_with_many_held_deletes(&suite, 600).await?;
    let reader = suite.tokens.reader.clone();

    // `| head -8`: no panic, no error, exit 0.
    let (status, shown, stderr) = syncguard_head(
        &suite,
        &reader,
        &[
            "logs",
            "--job",
            &job,
            "--action",
            "staged-delete",
            "--limit",
            "500",
        ],
        8,
    )
    .await;
    assert_eq!(shown.lines().count(), 8, "{shown}");
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );

    // A table of 50 says how many more there are and how to see them.
    let logs = syncguard(
        &suite,
        Some(&reader),
        &["logs", "--job", &job, "--action", "staged-delete"],
    )
    .await;
    let table = stdout(&logs);
    assert!(logs.status.success(), "{table}");
    assert!(
        table.contains("... and 548 more (use --all, or --limit N)"),
        "{table}"
    );
    let all = syncguard(
        &suite,
        Some(&reader),
        &["logs", "--job", &job, "--action", "staged-delete", "--all"],
    )
    .await;
    assert_eq!(
        stdout(&all).lines().count(),
        1 + 598,
        "a header and every row"
    );

    // JSON carries every row unless --limit says otherwise.
    let every = json(
        &syncguard(
            &suite,
            Some(&reader),
            &["logs", "--job", &job, "--action", "staged-delete", "--json"],
        )
        .await,
    );
    assert_eq!(every.as_array().map(Vec::len), Some(598));
    assert!(
        every[0]["at"]
            .as_str()
            .is_some_and(|at| chrono::DateTime::parse_from_rfc3339(at).is_ok()),
        "RFC 3339 times: {}",
        every[0]
    );
    let ten = json(
        &syncguard(
            &suite,
            Some(&reader),
            &["logs", "--job", &job, "--json", "--limit", "10"],
        )
        .await,
    );
    assert_eq!(ten.as_array().map(Vec::len), Some(10));

    // The quarantine lists 50 of its 598 actions and says so.
    let shown = syncguard(&suite, Some(&reader), &["quarantine", "show", &job]).await;
    assert!(
        stdout(&shown).contains("... and 548 more"),
        "{}",
        stdout(&shown)
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_names_the_address_and_the_flag_when_it_cannot_reach_a_service()
-> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let reader = suite.tokens.reader.clone();
    let gate = transport::service_url(suite.address(ServiceName::Gate));

    // The gate's port given as ingest's.
    let wrong_port = syncguard(
        &suite,
        Some(&reader),
        &["--ingest-url", &gate, "jobs", "list"],
    )
    .await;
    let said = String::from_utf8_lossy(&wrong_port.stderr).into_owned();
    assert!(!wrong_port.status.success());
    assert!(
        said.contains(&gate) && said.contains("--ingest-url"),
        "{said}"
    );
    assert!(
        said.contains("syncguard.v1.GateService"),
        "the port says what it serves: {said}"
    );

    // No scheme.
    let bare = suite.address(ServiceName::Ingest).to_string();
    let no_scheme = syncguard(
        &suite,
        Some(&reader),
        &["--ingest-url", &bare, "jobs", "list"],
    )
    .await;
    let said = String::from_utf8_lossy(&no_scheme.stderr).into_owned();
    assert_eq!(no_scheme.status.code(), Some(2), "{said}");
    assert!(
        said.contains("needs a scheme") && said.contains(&bare),
        "{said}"
    );

    // Nothing listens there.
    let dead = transport::service_url("127.0.0.1:9".parse()?);
    let nobody = syncguard(
        &suite,
        Some(&reader),
        &["--ingest-url", &dead, "jobs", "list"],
    )
    .await;
    let said = String::from_utf8_lossy(&nobody.stderr).into_owned();
    assert_eq!(nobody.status.code(), Some(6), "{said}");
    assert!(
        said.contains("cannot reach ingest at") && said.contains("127.0.0.1:9"),
        "{said}"
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_job_is_exit_3_in_every_command() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let reader = suite.tokens.reader.clone();
    let unknown = uuid::Uuid::new_v4().to_string();
    for args in [
        vec!["jobs", "show", &unknown],
        vec!["cycles", "list", "--job", &unknown],
        vec!["logs", "--job", &unknown],
        vec!["directory", "list", &unknown],
        vec!["directory", "deleted", &unknown],
        vec!["quarantine", "show", &unknown],
        vec!["quarantine", "pins", &unknown],
    ] {
        let answer = syncguard(&suite, Some(&reader), &args).await;
        let said = String::from_utf8_lossy(&answer.stderr).into_owned();
        assert_eq!(
            answer.status.code(),
            Some(3),
            "{args:?}: {said}{}",
            stdout(&answer)
        );
        assert!(said.contains(&unknown), "{args:?} names the job: {said}");
    }
    let not_an_id = syncguard(&suite, Some(&reader), &["quarantine", "show", "not-a-uuid"]).await;
    let said = String::from_utf8_lossy(&not_an_id.stderr).into_owned();
    assert_eq!(not_an_id.status.code(), Some(2), "{said}");
    assert!(said.contains("not a job id or a quarantine id"), "{said}");
    assert!(!said.contains("quarantine_id"), "{said}");
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_follows_the_change_feed_and_shows_where_each_target_stands() -> anyhow::Result<()>
{
    use std::time::Duration;
    use syncguard_e2e::directory::{directory, push_snapshot};
    use syncguard_e2e::wait_for;
    use syncguard_proto::v1;

    let scim = syncguard_e2e::scim::ScimServer::start().await?;
    let suite = Suite::start().await?;
    suite.add_secret("app-token", &scim.token)?;
    let mut spec = crate::jobs::push_job("exported");
    spec.targets = vec![v1::JobTarget {
        name: "app".into(),
        kind: Some(v1::job_target::Kind::Scim(v1::ScimTarget {
            base_url: scim.base_url(),
            token_secret: "app-token".into(),
            ..Default::default()
        })),
    }];
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    push_snapshot(&mut ingest, &job_id, &directory(5, 0)).await?;
    let reader = suite.tokens.reader.clone();

    // One JSON line per change, ending once caught up; the text form names kind and anchor.
    let watched = syncguard(
        &suite,
        Some(&reader),
        &["watch", &job_id, "--until-now", "--json"],
    )
    .await;
    assert!(
        watched.status.success(),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout(&watched)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|line| line["kind"] == "create"));
    assert_eq!(lines[0]["object"]["anchor"], "u-00000");
    let resumed = syncguard(
        &suite,
        Some(&reader),
        &[
            "watch",
            &job_id,
            "--until-now",
            "--after",
            lines[2]["cursor"].as_str().unwrap_or_default(),
        ],
    )
    .await;
    let text = stdout(&resumed);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("create") && text.contains("u-00004"),
        "{text}"
    );

    // The target: exported, nothing refused, nothing to retry.
    let status = wait_for("the app up to date", Duration::from_secs(60), || {
        let suite = &suite;
        let (reader, job_id) = (reader.clone(), job_id.clone());
        async move {
            let shown = syncguard(
                suite,
                Some(&reader),
                &["targets", "status", "--job", &job_id, "--json"],
            )
            .await;
            let status = json(&shown);
            (status[0]["exported"] == 5 && status[0]["pending_changes"] == 0).then_some(status)
        }
    })
    .await?;
    assert_eq!(status[0]["target"], "app");
    assert_eq!(status[0]["kind"], "scim");
    let table = syncguard(
        &suite,
        Some(&reader),
        &["targets", "status", "--job", &job_id],
    )
    .await;
    assert!(stdout(&table).contains("up to date"), "{}", stdout(&table));
    let failures = syncguard(&suite, Some(&reader), &["targets", "failures", &job_id]).await;
    assert!(
        stdout(&failures).contains("no refused objects"),
        "{}",
        stdout(&failures)
    );
    let operator = suite.tokens.operator.clone();
    let retried = syncguard(
        &suite,
        Some(&operator),
        &["targets", "retry", &job_id, "--target", "app"],
    )
    .await;
    assert!(
        retried.status.success(),
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
    assert!(
        stdout(&retried).starts_with("0 refused"),
        "{}",
        stdout(&retried)
    );
    suite.stop().await?;
    scim.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_users_arriving_in_an_ldap_target_and_held_deletes_kept_out()
-> anyhow::Result<()> {
    use syncguard_e2e::slapd::{ADMIN_PASSWORD, SUFFIX, Slapd};
    let slapd = Slapd::start().await?;
    let (suite, mail_dir) = demo_suite().await?;
    suite.add_secret("demo-directory", ADMIN_PASSWORD)?;
    let demo = syncguard(
        &suite,
        Some(&suite.tokens.admin),
        &[
            "demo",
            "--mail-dir",
            mail_dir.to_str().unwrap_or_default(),
            "--ldap-target",
            &slapd.url(),
            "--ldap-secret",
            "demo-directory",
        ],
    )
    .await;
    let printed = stdout(&demo);
    assert!(
        demo.status.success(),
        "{}\n{printed}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for expected in [
        "the LDAP target received 1000 users",
        "the LDAP target still has all 1000 users: nothing of the held cycle was exported",
        "the LDAP target removed the 600 allowed leavers: 400 users remain there",
        "and it is back in the LDAP target",
    ] {
        assert!(
            printed.contains(expected),
            "missing {expected:?} in:\n{printed}"
        );
    }
    // What the directory itself says: the 400 who stayed and the one restored.
    let people = slapd
        .search(
            &format!("ou=people,{SUFFIX}"),
            "(objectClass=inetOrgPerson)",
        )
        .await?;
    assert_eq!(people.len(), 401);
    suite.stop().await?;
    slapd.stop().await
}
