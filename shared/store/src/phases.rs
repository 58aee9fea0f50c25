//! Phase timings of a cycle, appended by whichever service ran the phase.

use sqlx::PgConnection;

use crate::StoreError;

/// Appends `{phase, started_at, millis}` to the cycle's phase list, in the caller's
/// transaction so the timing commits with the phase's work.
pub async fn record_phase(
    conn: &mut PgConnection,
    cycle_id: uuid::Uuid,
    phase: &str,
    started_at: chrono::DateTime<chrono::Utc>,
    took: std::time::Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cycles SET phases = phases || jsonb_build_array(jsonb_build_object(
             'phase', $2::text, 'started_at', $3::timestamptz, 'millis', $4::bigint)), updated_at = now()
         WHERE cycle_id = $1",
    )
    .bind(cycle_id)
    .bind(phase)
    .bind(started_at)
    .bind(took.as_millis() as i64)
    .execute(conn)
    .await?;
    Ok(())
}
