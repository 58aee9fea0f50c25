//! `syncguard-ingest`: see the crate documentation of `syncguard_ingest`.

use std::process::ExitCode;

use syncguard_bootstrap::{ServiceName, run_main, shutdown_signal};

/// Ingest allocates several small strings per directory object; mimalloc makes that cheap
/// (glibc malloc and free were a fifth of the CPU of an LDAP read).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    run_main(ServiceName::Ingest, |config| async move {
        syncguard_ingest::App::build(config)
            .await?
            .run_until_stopped(shutdown_signal())
            .await
    })
}
