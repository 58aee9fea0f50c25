//! One empty database per test, on the server `DATABASE_URL` names.

use std::str::FromStr;

use sqlx::ConnectOptions as _;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// A database created for one test and dropped by [`TestDatabase::drop_database`], or when
/// it goes out of scope (a failed test included), so no test leaves a database behind.
pub struct TestDatabase {
    server: PgConnectOptions,
    server_url: String,
    name: String,
    dropped: bool,
}

impl TestDatabase {
    /// Creates an empty database. Fails with a hint when `DATABASE_URL` is unset: the README's
    /// test command sets it (or starts a throwaway server).
    pub async fn create() -> anyhow::Result<Self> {
        let url = std::env::var("DATABASE_URL").map_err(|_| {
            anyhow::anyhow!(
                "DATABASE_URL is not set: run the tests with scripts/test, which finds or starts Postgres"
            )
        })?;
        Self::create_on(&url).await
    }

    /// Creates an empty database on the server `url` names.
    pub async fn create_on(url: &str) -> anyhow::Result<Self> {
        let url = url.to_owned();
        let server = PgConnectOptions::from_str(&url)?;
        let name = format!("sgtest_{}", uuid::Uuid::new_v4().simple());
        let mut admin = server.connect().await.map_err(|error| {
            anyhow::anyhow!("cannot connect to the Postgres server of DATABASE_URL: {error}")
        })?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(Self {
            server,
            server_url: url,
            name,
            dropped: false,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection options for the test's database.
    pub fn options(&self) -> PgConnectOptions {
        self.server.clone().database(&self.name)
    }

    /// The test database's URL, for services started as separate processes.
    pub fn url(&self) -> String {
        // DATABASE_URL with its database (the last path segment) swapped for this one.
        let (base, query) = match self.server_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (self.server_url.as_str(), String::new()),
        };
        let authority_end = base.find("://").map_or(0, |i| i + 3);
        let server = match base[authority_end..].find('/') {
            Some(slash) => &base[..authority_end + slash],
            None => base,
        };
        format!("{server}/{}{query}", self.name)
    }

    /// A direct connection, for assertions about the schema itself.
    pub async fn connect(&self) -> anyhow::Result<PgConnection> {
        Ok(self.options().connect().await?)
    }

    /// Drops the database; connections still open to it are terminated.
    pub async fn drop_database(mut self) -> anyhow::Result<()> {
        self.dropped = true;
        drop_named(&self.server, &self.name).await
    }

    /// Leaves the database in place and returns its URL, to inspect a run's data after it.
    pub fn keep(mut self) -> String {
        self.dropped = true;
        self.url()
    }
}

async fn drop_named(server: &PgConnectOptions, name: &str) -> anyhow::Result<()> {
    let mut admin = server.connect().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}

impl Drop for TestDatabase {
    /// A test that failed before dropping its database: drop it now, on a thread of its own
    /// (this may run inside an async runtime, which must not block).
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drop_named(&server, &name))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}
