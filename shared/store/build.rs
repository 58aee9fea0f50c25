//! Rebuilds the store when a migration is added or changed: `sqlx::migrate!` embeds the
//! migrations at compile time, and cargo does not see new files on its own.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
