//! Secrets at rest and in flight: the real binaries re-read their tokens file on SIGHUP, and
//! no token, password or database password they were given ever shows up in what they
//! write (logs at debug level, gRPC errors, job statuses, stored mail errors).

use std::time::Duration;

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::processes::{ProcessOptions, Processes};
use syncguard_e2e::slapd::{ADMIN_DN, ADMIN_PASSWORD, SUFFIX, Slapd};
use syncguard_e2e::smtp::{SmtpServer, free_port};
use syncguard_e2e::{TestDatabase, wait_for};
use syncguard_proto::v1::ingest_service_client::IngestServiceClient;
use syncguard_proto::v1::{self, CycleState, job_source};
use tonic::Code;

use crate::jobs::push_job;

/// Asks `service` something any reader may ask (its health needs no token, so ask the API).
async fn reader_call(
    processes: &Processes,
    service: ServiceName,
    token: &str,
) -> Result<(), tonic::Status> {
    use syncguard_proto::v1::gate_service_client::GateServiceClient;
    use syncguard_proto::v1::notifier_service_client::NotifierServiceClient;
    use syncguard_proto::v1::retention_service_client::RetentionServiceClient;
    use syncguard_proto::v1::stager_service_client::StagerServiceClient;
    let channel = processes.authed(service, token);
    let unknown_job = uuid::Uuid::new_v4().to_string();
    let outcome = match service {
        ServiceName::Ingest => IngestServiceClient::new(channel)
            .list_jobs(v1::ListJobsRequest::default())
            .await
            .map(drop),
        ServiceName::Stager => StagerServiceClient::new(channel)
            .list_cycles(v1::ListCyclesRequest {
                job_id: unknown_job,
                ..Default::default()
            })
            .await
            .map(drop),
        ServiceName::Gate => GateServiceClient::new(channel)
            .get_protection(v1::GetProtectionRequest {
                job_id: unknown_job,
            })
            .await
            .map(drop),
        ServiceName::Notifier => NotifierServiceClient::new(channel)
            .list_notifications(v1::ListNotificationsRequest::default())
            .await
            .map(drop),
        ServiceName::Retention => RetentionServiceClient::new(channel)
            .list_deleted_objects(v1::ListDeletedObjectsRequest {
                job_id: unknown_job,
                ..Default::default()
            })
            .await
            .map(drop),
        ServiceName::Exporter => {
            syncguard_proto::v1::exporter_service_client::ExporterServiceClient::new(channel)
                .list_targets(v1::ListTargetsRequest::default())
                .await
                .map(drop)
        }
    };
    // Past authentication, "not found" is an answer too.
    match outcome {
        Err(status) if status.code() == Code::NotFound => Ok(()),
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_working_after_sighup_without_a_restart() -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("syncguard-hup-{}", uuid::Uuid::new_v4()));
    let processes = Processes::start_with(ProcessOptions {
        extra_env: vec![(
            "SYNCGUARD_MAIL_DIR".into(),
            scratch.join("mail").display().to_string(),
        )],
        log_dir: Some(scratch.join("logs")),
        ..ProcessOptions::default()
    })
    .await?;
    let old_reader = processes.tokens.reader.clone();
    for service in ServiceName::ALL {
        reader_call(&processes, service, &old_reader).await?;
    }

    // The reader's token is revoked and a new reader is listed by digest only.
    let new_reader = format!("sg_{}", uuid::Uuid::new_v4().simple());
    let text = processes
        .tokens
        .file_text()
        .lines()
        .filter(|line| !line.starts_with("reader "))
        .map(|line| format!("{line}\n"))
        .collect::<String>()
        + &format!(
            "reader rita sha256:{}\n",
            hex::encode(syncguard_bootstrap::token_digest(&new_reader))
        );
    std::fs::write(processes.token_file(), text)?;
    for service in ServiceName::ALL {
        processes.signal(service, "HUP").await?;
    }
    for service in ServiceName::ALL {
        let refused = wait_for(
            &format!("{} to refuse the revoked token", service.as_str()),
            Duration::from_secs(10),
            || async {
                match reader_call(&processes, service, &old_reader).await {
                    Err(status) if status.code() == Code::Unauthenticated => Some(status),
                    _ => None,
                }
            },
        )
        .await?;
        assert!(!refused.message().contains(&old_reader), "{refused:?}");
        reader_call(&processes, service, &new_reader).await?;
    }

    // A tokens file others may read is not taken on a reload: the tokens in force stay.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            processes.token_file(),
            std::fs::Permissions::from_mode(0o644),
        )?;
    }
    std::fs::write(processes.token_file(), processes.tokens.file_text())?;
    for service in ServiceName::ALL {
        processes.signal(service, "HUP").await?;
    }
    let said = wait_for(
        "every service to refuse the world-readable file",
        Duration::from_secs(10),
        || async {
            let logs = processes.logs().ok()?;
            (logs.matches("tokens file not read again").count() >= 5).then_some(logs)
        },
    )
    .await?;
    assert!(
        said.contains("chmod"),
        "the refusal says how to fix it:\n{said}"
    );
    for service in ServiceName::ALL {
        reader_call(&processes, service, &new_reader).await?;
        let old = reader_call(&processes, service, &old_reader).await;
        assert_eq!(
            old.map_err(|status| status.code()),
            Err(Code::Unauthenticated),
            "{} took a world-readable tokens file",
            service.as_str()
        );
    }
    processes.stop().await?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// `url` with `password` for its user, unless it has one already; returns the URL and the
/// password it carries.
fn with_password(url: &str, password: &str) -> (String, String) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), password.to_owned());
    };
    let (userinfo, host) = rest.split_once('@').unwrap_or(("postgres", rest));
    match userinfo.split_once(':') {
        Some((_, existing)) => (url.to_owned(), existing.to_owned()),
        None => (
            format!("{scheme}://{userinfo}:{password}@{host}"),
            password.to_owned(),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_an_error_a_status_or_a_mail() -> anyhow::Result<()> {
    let slapd = Slapd::start().await?;
    slapd
        .add(&format!(
            "dn: uid=ada,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada\nsn: L\n\n"
        ))
        .await?;
    let scratch = std::env::temp_dir().join(format!("syncguard-secrets-{}", uuid::Uuid::new_v4()));
    let secrets_dir = scratch.join("secrets");
    let log_dir = scratch.join("logs");
    std::fs::create_dir_all(&secrets_dir)?;
    let wrong_password = format!("wrong-bind-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(secrets_dir.join("ldap-bind"), format!("{ADMIN_PASSWORD}\n"))?;
    std::fs::write(
        secrets_dir.join("ldap-wrong"),
        format!("{wrong_password}\n"),
    )?;
    let smtp_password = format!("smtp-pass-{}", uuid::Uuid::new_v4().simple());
    let smtp = SmtpServer::accepting(free_port()).await?;
    let database = TestDatabase::create().await?;
    let (database_url, database_password) = with_password(
        &database.url(),
        &format!("db-pass-{}", uuid::Uuid::new_v4().simple()),
    );

    let processes = Processes::start_on(
        database,
        ProcessOptions {
            extra_env: vec![
                ("DATABASE_URL".into(), database_url),
                ("SYNCGUARD_SECRETS_DIR".into(), secrets_dir.display().to_string()),
                (
                    "SYNCGUARD_SMTP_URL".into(),
                    format!("smtp://mailer:{smtp_password}@127.0.0.1:{}", smtp.port),
                ),
                ("SYNCGUARD_MAIL_MAX_BACKOFF_SECS".into(), "1".into()),
            ],
            log_filter: "info,syncguard_bootstrap=debug,syncguard_ingest=debug,syncguard_stager=debug,syncguard_gate=debug,syncguard_notifier=debug,syncguard_retention=debug,syncguard_store=debug,syncguard_telemetry=debug".into(),
            log_dir: Some(log_dir.clone()),
            ..ProcessOptions::default()
        },
    )
    .await?;
    let tokens = processes.tokens.clone();
    let mut said = Vec::<String>::new();

    let mut ingest =
        IngestServiceClient::new(processes.authed(ServiceName::Ingest, &tokens.operator));
    let ldap_job = |secret: &str| {
        let mut spec = push_job(&format!("ldap with {secret}"));
        spec.source = Some(v1::JobSource {
            kind: Some(job_source::Kind::Ldap(v1::LdapSource {
                url: slapd.url(),
                bind_dn: ADMIN_DN.into(),
                password_secret: secret.into(),
                base_dn: SUFFIX.into(),
                filter: "(objectClass=inetOrgPerson)".into(),
                ..Default::default()
            })),
        });
        v1::CreateJobRequest { spec: Some(spec) }
    };
    let good = ingest
        .create_job(ldap_job("ldap-bind"))
        .await?
        .into_inner()
        .job_id;
    let read = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: good.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(read.cycle_state, CycleState::Completed as i32, "{read:?}");

    let bad = ingest
        .create_job(ldap_job("ldap-wrong"))
        .await?
        .into_inner()
        .job_id;
    let refused = ingest
        .trigger_cycle(v1::TriggerCycleRequest {
            job_id: bad.clone(),
        })
        .await
        .expect_err("a wrong bind password fails the read");
    said.push(format!("{refused:?}"));
    let status = ingest
        .get_job(v1::GetJobRequest {
            job_id: bad.clone(),
        })
        .await?
        .into_inner();
    said.push(format!("{status:?}"));
    let missing = ingest
        .create_job(ldap_job("no-such-secret"))
        .await
        .expect_err("an unknown secret is refused");
    assert_eq!(missing.code(), Code::InvalidArgument, "{missing:?}");
    said.push(format!("{missing:?}"));

    // Calls with tokens nobody listed, and with every listed one.
    let stranger = format!("stranger-{}", uuid::Uuid::new_v4().simple());
    for service in ServiceName::ALL {
        let refused = reader_call(&processes, service, &stranger)
            .await
            .expect_err("an unknown token is refused");
        said.push(format!("{refused:?}"));
        reader_call(&processes, service, &tokens.reader).await?;
        reader_call(&processes, service, &tokens.admin).await?;
    }

    // The failed read's notice goes to an SMTP server that offers no login: delivery fails
    // with the credentials in hand, and the error is stored and logged.
    let mut conn = processes.database().connect().await?;
    let errors: Vec<String> = wait_for(
        "the notifier to try and fail a delivery",
        Duration::from_secs(60),
        || {
            let options = processes.database().options();
            async move {
                let mut conn = sqlx::ConnectOptions::connect(&options).await.ok()?;
                let rows: Vec<(Option<String>,)> =
                    sqlx::query_as("SELECT last_error FROM notification_outbox WHERE attempts > 0")
                        .fetch_all(&mut conn)
                        .await
                        .ok()?;
                let errors: Vec<String> = rows.into_iter().filter_map(|(error,)| error).collect();
                (!errors.is_empty()).then_some(errors)
            }
        },
    )
    .await?;
    said.extend(errors);
    let stored: Vec<(String,)> = sqlx::query_as(
        "SELECT error FROM source_failures UNION ALL SELECT coalesce(error, '') FROM notification_attempts \
         UNION ALL SELECT subject || encode(event, 'escape') FROM notification_outbox",
    )
    .fetch_all(&mut conn)
    .await?;
    said.extend(stored.into_iter().map(|(text,)| text));
    sqlx::Connection::close(conn).await?;

    // SIGHUP makes each service read its tokens again (and say so in the log).
    for service in ServiceName::ALL {
        processes.signal(service, "HUP").await?;
    }
    wait_for(
        "every service to reload its tokens",
        Duration::from_secs(10),
        || async {
            let logs = processes.logs().ok()?;
            (logs.matches("tokens read again").count() >= 5).then_some(())
        },
    )
    .await?;

    let logs = processes.logs()?;
    assert!(
        logs.lines().count() > 20 && logs.contains("listening") && logs.contains("DEBUG"),
        "the services logged at debug level:\n{logs}"
    );
    let mut secrets = vec![
        ("the LDAP bind password", ADMIN_PASSWORD.to_owned()),
        ("a wrong LDAP bind password", wrong_password),
        ("the SMTP password", smtp_password),
        ("the database password", database_password),
        ("an unknown token", stranger),
    ];
    for (role, token) in [
        ("reader", &tokens.reader),
        ("operator", &tokens.operator),
        ("approver", &tokens.approver),
        ("admin", &tokens.admin),
        ("service", &tokens.service),
    ] {
        secrets.push((role, token.clone()));
    }
    let answers = said.join("\n");
    for (what, secret) in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{what} is in the services' logs"
        );
        assert!(
            !answers.contains(secret.as_str()),
            "{what} is in an answer, a status or a stored error:\n{answers}"
        );
    }
    println!(
        "checked {} log lines and {} answers for {} secrets",
        logs.lines().count(),
        said.len(),
        secrets.len()
    );
    processes.stop().await?;
    smtp.stop().await?;
    slapd.stop().await?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
