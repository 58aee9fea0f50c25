//! `syncguard`: the admin command line for a running syncguard suite.

mod addressed;
mod args;
mod client;
mod commands;
mod demo;
mod dev_certs;
mod export;
mod failure;
mod import;
mod listing;
mod output;
mod tokens;

use std::process::ExitCode;

use clap::Parser as _;

use args::{Cli, Command};
use client::Clients;
use failure::Failure;

async fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.connection.json;
    // Commands that work offline, before any connection is set up.
    let command = match cli.command {
        Command::Tokens(command) => return tokens::tokens(command),
        Command::DevCerts(args) => return dev_certs::dev_certs(args),
        command => command,
    };
    let mut clients = Clients::new(&cli.connection)?;
    match command {
        Command::Tokens(_) | Command::DevCerts(_) => Ok(()),
        Command::Jobs(command) => commands::jobs(&mut clients, command, json).await,
        Command::Cycles(command) => commands::cycles(&mut clients, command, json).await,
        Command::Quarantine(command) => commands::quarantine(&mut clients, command, json).await,
        Command::Logs(args) => commands::logs(&mut clients, args, json).await,
        Command::Directory(command) => commands::directory(&mut clients, command, json).await,
        Command::Import(args) => import::import(&mut clients, args, json).await,
        Command::Targets(command) => export::targets(&mut clients, command, json).await,
        Command::Watch(args) => export::watch(&mut clients, args, json).await,
        Command::Demo(args) => demo::demo(&mut clients, args).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("syncguard: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): not an error.
        Err(failure) if failure.code == 0 => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("syncguard: {}", failure.message);
            failure.exit_code()
        }
    }
}
