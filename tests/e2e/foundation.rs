//! Health, reflection, authentication and migrations of the running suite.

use syncguard_bootstrap::ServiceName;
use syncguard_e2e::{Suite, TestDatabase};
use syncguard_proto::v1;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// Every table and the one service that writes it (the schema's ownership comments). The
/// provisioning log (its plain rows and its compact chunks) is the exception: append-only,
/// every service appends its own rows.
const OWNERS: [(&str, &str); 26] = [
    ("applied_cycles", "retention"),
    ("approvals", "gate"),
    ("cycles", "stager"),
    ("decisions", "gate"),
    ("directory_changes", "retention"),
    ("directory_memberships", "retention"),
    ("directory_objects", "retention"),
    ("export_cursors", "exporter"),
    ("export_failures", "exporter"),
    ("export_objects", "exporter"),
    ("feed_clock", "retention"),
    ("held_verdicts", "gate"),
    ("job_protection", "gate"),
    ("jobs", "ingest"),
    ("notification_attempts", "notifier"),
    ("notification_outbox", "notifier"),
    ("pins", "gate"),
    ("protection_rules", "gate"),
    ("provisioning_log", "every service appends"),
    ("provisioning_log_sets", "every service appends"),
    ("purged_objects", "retention"),
    ("quarantines", "gate"),
    ("snapshots", "ingest"),
    ("source_failures", "ingest"),
    ("source_objects", "ingest"),
    ("staged_actions", "stager"),
];

fn grpc_name(service: ServiceName) -> &'static str {
    match service {
        ServiceName::Ingest => "syncguard.v1.IngestService",
        ServiceName::Stager => "syncguard.v1.StagerService",
        ServiceName::Gate => "syncguard.v1.GateService",
        ServiceName::Notifier => "syncguard.v1.NotifierService",
        ServiceName::Retention => "syncguard.v1.RetentionService",
        ServiceName::Exporter => "syncguard.v1.ExporterService",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_health_and_reflection_without_a_token() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    for service in ServiceName::ALL {
        let mut health = HealthClient::new(suite.channel(service));
        let status = health
            .check(HealthCheckRequest {
                service: grpc_name(service).into(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(
            status,
            ServingStatus::Serving as i32,
            "{}",
            service.as_str()
        );

        let mut reflection = ServerReflectionClient::new(suite.channel(service));
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await?
            .into_inner();
        let response = responses.message().await?.expect("one answer");
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("{}: expected a service list", service.as_str());
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.iter().any(|name| name == grpc_name(service)),
            "{} lists {names:?}",
            service.as_str()
        );
        assert!(names.iter().any(|name| name == "grpc.health.v1.Health"));
    }
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_need_a_known_token_with_the_right_role() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let tokens = suite.tokens.clone();

    let without_token = suite
        .ingest(None)
        .list_jobs(v1::ListJobsRequest::default())
        .await
        .expect_err("a call without a token is refused");
    assert_eq!(without_token.code(), Code::Unauthenticated);

    let unknown = suite
        .ingest(Some("not-a-token-of-this-suite"))
        .list_jobs(v1::ListJobsRequest::default())
        .await
        .expect_err("an unknown token is refused");
    assert_eq!(unknown.code(), Code::Unauthenticated);

    let allow = v1::AllowDeletesRequest {
        quarantine_id: uuid::Uuid::new_v4().to_string(),
        digest: "d".into(),
        reason: "r".into(),
        anchors: vec![],
    };
    let reader_allows = suite
        .gate(Some(&tokens.reader))
        .allow_deletes(allow.clone())
        .await
        .expect_err("a reader cannot allow deletes");
    assert_eq!(reader_allows.code(), Code::PermissionDenied);
    assert!(
        reader_allows.message().contains("approver"),
        "{}",
        reader_allows.message()
    );

    let operator_allows = suite
        .gate(Some(&tokens.operator))
        .allow_deletes(allow.clone())
        .await
        .expect_err("an operator cannot allow deletes");
    assert_eq!(operator_allows.code(), Code::PermissionDenied);

    // An approver gets past authentication to the call itself.
    let approver_allows = suite
        .gate(Some(&tokens.approver))
        .allow_deletes(allow)
        .await;
    if let Err(status) = approver_allows {
        assert!(
            !matches!(
                status.code(),
                Code::PermissionDenied | Code::Unauthenticated
            ),
            "approver refused: {status:?}"
        );
    }

    // Readers read; internal calls are for services only.
    suite
        .ingest(Some(&tokens.reader))
        .list_jobs(v1::ListJobsRequest::default())
        .await?;
    let admin_stages = suite
        .stager(Some(&tokens.admin))
        .stage_cycle(v1::StageCycleRequest::default())
        .await
        .expect_err("internal calls are for services");
    assert_eq!(admin_stages.code(), Code::PermissionDenied);

    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_services_starting_at_once_leave_one_migrated_schema() -> anyhow::Result<()> {
    // Suite::start starts all five on an empty database at the same moment; each migrates.
    let suite = Suite::start().await?;
    let mut conn = suite.database().connect().await?;
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await?;
    let expected: Vec<(i64, bool)> = syncguard_store::MIGRATOR
        .iter()
        .map(|migration| (migration.version, true))
        .collect();
    assert_eq!(applied, expected);
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations' \
         ORDER BY table_name",
    )
    .fetch_all(&mut conn)
    .await?;
    let tables: Vec<String> = tables.into_iter().map(|(name,)| name).collect();
    let mut owned: Vec<&str> = OWNERS.iter().map(|(table, _)| *table).collect();
    owned.sort_unstable();
    assert_eq!(tables, owned, "every table has an owner in OWNERS");
    drop(conn);
    suite.stop().await?;

    // And the migrator alone, raced twenty times over one empty database.
    let database = TestDatabase::create().await?;
    let pool = sqlx::PgPool::connect_with(database.options()).await?;
    let options = database.options();
    let races = (0..20).map(|_| {
        let options = options.clone();
        async move { syncguard_store::migrate(&options).await }
    });
    for outcome in futures_join_all(races).await {
        outcome?;
    }
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await?;
    assert_eq!(count, syncguard_store::MIGRATOR.iter().count() as i64);
    pool.close().await;
    database.drop_database().await
}

/// A bulk statement's ids come from one drawn batch: `syncguard_batch_id` must give what the
/// Rust side expects, distinct version 7 ids ascending in row order, and two batches drawn
/// one after the other (usually in the same millisecond) must not collide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_ids_are_distinct_version_7_ids_in_row_order() -> anyhow::Result<()> {
    let database = TestDatabase::create().await?;
    syncguard_store::migrate(&database.options()).await?;
    let pool = sqlx::PgPool::connect_with(database.options()).await?;
    let mut all = std::collections::HashSet::new();
    for _ in 0..2 {
        let batch = syncguard_store::BatchIds::draw();
        let ids: Vec<(uuid::Uuid,)> = sqlx::query_as(
            "SELECT syncguard_batch_id($1, $2, row_number() OVER ()) FROM generate_series(1, 1000)",
        )
        .bind(&batch.prefix)
        .bind(batch.start)
        .fetch_all(&pool)
        .await?;
        assert_eq!(ids.len(), 1000);
        assert_eq!(ids[0].0, batch.id(1), "the SQL and the Rust side agree");
        assert!(
            ids.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "ascending"
        );
        for (id,) in ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert!(all.insert(id), "{id} drawn twice");
        }
    }
    pool.close().await;
    database.drop_database().await
}

async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for future in futures {
        set.spawn(future);
    }
    let mut outputs = Vec::new();
    while let Some(output) = set.join_next().await {
        outputs.push(output.expect("migration task panicked"));
    }
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provisioning_log_refuses_updates_and_deletes() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut conn = suite.database().connect().await?;
    sqlx::query(
        "INSERT INTO provisioning_log (job_id, display_action, actor) VALUES (gen_random_uuid(), 'Test', 'test')",
    )
    .execute(&mut conn)
    .await?;
    let update = sqlx::query("UPDATE provisioning_log SET actor = 'someone else'")
        .execute(&mut conn)
        .await
        .expect_err("log rows are never updated");
    assert!(
        update.to_string().contains("never updated or deleted"),
        "{update}"
    );
    let delete = sqlx::query("DELETE FROM provisioning_log")
        .execute(&mut conn)
        .await
        .expect_err("log rows are never deleted");
    assert!(
        delete.to_string().contains("never updated or deleted"),
        "{delete}"
    );
    drop(conn);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_table_is_written_by_its_owning_service_only() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let mut conn = suite.database().connect().await?;
    // The grants, read back: who may insert, update or delete each table.
    let grants: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT table_name::text, grantee::text FROM information_schema.role_table_grants \
         WHERE table_schema = 'public' AND grantee LIKE 'syncguard\\_%' \
           AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE') ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await?;
    for (table, owner) in OWNERS {
        let writers: Vec<&str> = grants
            .iter()
            .filter(|(granted, _)| granted == table)
            .map(|(_, role)| role.trim_start_matches("syncguard_"))
            .collect();
        if table.starts_with("provisioning_log") {
            assert_eq!(
                writers.len(),
                6,
                "every service appends to the log: {writers:?}"
            );
        } else {
            assert_eq!(writers, [owner], "{table} is written by {owner} only");
        }
    }
    // And enforced: the gate's role cannot change a cycle the stager owns, nor the target
    // directory; the stager's role cannot decide a quarantine; nobody rewrites the log.
    sqlx::query("SET ROLE syncguard_gate")
        .execute(&mut conn)
        .await?;
    let refused = sqlx::query("UPDATE cycles SET state = 'failed'")
        .execute(&mut conn)
        .await
        .expect_err("the gate may not write cycles");
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    let refused = sqlx::query("DELETE FROM directory_objects")
        .execute(&mut conn)
        .await
        .expect_err("the gate may not write the target directory");
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    sqlx::query("RESET ROLE").execute(&mut conn).await?;
    sqlx::query("SET ROLE syncguard_stager")
        .execute(&mut conn)
        .await?;
    let refused = sqlx::query("UPDATE quarantines SET state = 'allowed'")
        .execute(&mut conn)
        .await
        .expect_err("the stager may not decide quarantines");
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    let refused = sqlx::query("UPDATE provisioning_log SET actor = 'x'")
        .execute(&mut conn)
        .await
        .expect_err("the log is append-only");
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    sqlx::query("RESET ROLE").execute(&mut conn).await?;
    drop(conn);
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_test_leaves_no_database_behind() -> anyhow::Result<()> {
    let (name_sender, name_receiver) = tokio::sync::oneshot::channel();
    // A test body that fails half-way, with its services running.
    let failed = tokio::spawn(async move {
        let suite = syncguard_e2e::Suite::start()
            .await
            .expect("the suite starts");
        let _ = name_sender.send(suite.database().name().to_owned());
        panic!("a test that fails before it cleans up");
    })
    .await;
    assert!(failed.is_err(), "the failing body panicked");
    let name = name_receiver.await?;
    let server = syncguard_e2e::TestDatabase::create().await?;
    let mut conn = server.connect().await?;
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
    sqlx::Connection::close(conn).await?;
    assert_eq!(left, 0, "database {name} was left behind");
    server.drop_database().await
}
