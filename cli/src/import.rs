//! `syncguard import`: streams export files to ingest in chunks, with progress on a terminal.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use serde_json::json;
use syncguard_proto::v1::{self, import_file_request::Part};
use tokio::io::AsyncReadExt as _;

use crate::args::ImportArgs;
use crate::client::Clients;
use crate::commands::file_format;
use crate::failure::Failure;
use crate::out;
use crate::output::{self, print_json};

const CHUNK: usize = 1024 * 1024;

fn files(path: &Path) -> Result<Vec<PathBuf>, Failure> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|file| file_format(file).is_ok())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(Failure::usage(format!(
            "{} holds no .ldif or .json files",
            path.display()
        )));
    }
    Ok(found)
}

/// Pushes each file as one snapshot and prints the cycle each became.
pub async fn import(clients: &mut Clients, args: ImportArgs, json: bool) -> Result<(), Failure> {
    let mut results = Vec::new();
    for file in files(&args.path)? {
        let format = file_format(&file)?;
        let size = tokio::fs::metadata(&file)
            .await
            .map_err(|error| Failure::usage(format!("{}: {error}", file.display())))?
            .len();
        let mut reader = tokio::fs::File::open(&file).await?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let show_progress = std::io::stderr().is_terminal() && size > 4 * CHUNK as u64;
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        sender
            .send(v1::ImportFileRequest {
                part: Some(Part::Header(v1::ImportFileHeader {
                    job_id: args.job.clone(),
                    format: format as i32,
                    file_name: name.clone(),
                    anchor_attribute: String::new(),
                })),
            })
            .await
            .map_err(|_| Failure::other("the import stream closed"))?;
        let upload = {
            let mut ingest = clients.ingest.clone();
            tokio::spawn(async move {
                ingest
                    .import_file(tokio_stream::wrappers::ReceiverStream::new(receiver))
                    .await
            })
        };
        let mut sent: u64 = 0;
        loop {
            let mut chunk = vec![0; CHUNK];
            let read = reader.read(&mut chunk).await?;
            if read == 0 {
                break;
            }
            chunk.truncate(read);
            sent += read as u64;
            if sender
                .send(v1::ImportFileRequest {
                    part: Some(Part::Chunk(chunk)),
                })
                .await
                .is_err()
            {
                break; // the server answered early (an error); it is reported below
            }
            if show_progress {
                eprint!(
                    "\r{name}: {:>5.1}% of {:.1} MiB",
                    sent as f64 * 100.0 / size as f64,
                    size as f64 / 1_048_576.0
                );
                std::io::stderr().flush()?;
            }
        }
        drop(sender);
        if show_progress {
            eprintln!();
        }
        let response = upload
            .await
            .map_err(|error| Failure::other(error.to_string()))??
            .into_inner();
        results.push((name, response));
    }
    if json {
        return print_json(&json!(
            results
                .iter()
                .map(|(name, r)| json!({
                    "file": name, "snapshot_id": r.snapshot_id, "objects": r.objects_received,
                    "cycle_id": r.cycle_id, "cycle_state": output::cycle_state(r.cycle_state),
                }))
                .collect::<Vec<_>>()
        ));
    }
    for (name, response) in &results {
        if response.cycle_id.is_empty() {
            out!(
                "{name}: {} objects received and kept; the job is quarantined, so no cycle ran (syncguard quarantine show {})",
                response.objects_received,
                args.job
            )?;
        } else {
            out!(
                "{name}: {} objects, cycle {} {}",
                response.objects_received,
                response.cycle_id,
                output::cycle_state(response.cycle_state)
            )?;
        }
    }
    Ok(())
}
