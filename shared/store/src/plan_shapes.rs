//! Plans the schema must leave the planner no room to get wrong: lookups that a job new to
//! the table statistics (estimated at one row) must still answer by the right index.

#[cfg(test)]
mod tests {
    use sqlx::PgPool;
    use uuid::Uuid;

    /// `groups` groups of `members` members each in `job`, their anchors prefixed `prefix`.
    async fn write_memberships(pool: &PgPool, job: Uuid, prefix: &str, groups: i32, members: i32) {
        sqlx::query(
            "INSERT INTO directory_memberships (job_id, group_anchor, member_anchor)
             SELECT $1, $2 || '-group-' || g, $2 || '-user-' || (g * $4 + n)
             FROM generate_series(1, $3) g CROSS JOIN generate_series(1, $4) n",
        )
        .bind(job)
        .bind(prefix)
        .bind(groups)
        .bind(members)
        .execute(pool)
        .await
        .expect("memberships written");
    }

    /// The change feed and the diff read a group's members of a job by (job, group). After an
    /// ANALYZE that saw only another job's memberships, the new job is estimated at one row;
    /// the planner then scanned "every membership of the job" through the members' index and
    /// filtered by group (0.5 ms a group with 10,000 memberships, the second job's feed three
    /// times the first's in scripts/bench). The lookup must take the primary key.
    #[sqlx::test(migrations = false)]
    async fn a_new_jobs_group_members_are_read_by_the_primary_key(pool: PgPool) {
        crate::MIGRATOR.run(&pool).await.expect("migrated");
        // Jobs the statistics see, of different sizes, each with its own groups.
        for (job, groups, members) in [(1, 1000, 20), (2, 500, 20), (3, 10, 20)] {
            write_memberships(&pool, Uuid::now_v7(), &format!("j{job}"), groups, members).await;
        }
        sqlx::query("ANALYZE directory_memberships")
            .execute(&pool)
            .await
            .expect("analyzed");
        let new_job = Uuid::now_v7();
        write_memberships(&pool, new_job, "new", 500, 20).await;

        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN SELECT g.anchor, (SELECT array_agg(m.member_anchor ORDER BY m.member_anchor)
                 FROM directory_memberships m WHERE m.job_id = '{new_job}' AND m.group_anchor = g.anchor)
             FROM (VALUES ('new-group-7'), ('new-group-8')) g (anchor)"
        )))
        .fetch_all(&pool)
        .await
        .expect("explained");
        let plan = plan.join("\n");
        assert!(
            plan.contains("directory_memberships_pkey") && !plan.contains("_by_member"),
            "a group's members are read by the primary key:\n{plan}"
        );
    }
}
