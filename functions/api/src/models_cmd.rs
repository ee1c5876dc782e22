//! `ff models`: the FaceFusion 3.5.3 model catalogue against the models directory, explicit
//! downloads (the counterpart of FaceFusion's `force-download`), and filling the bucket's models
//! prefix (FF_MODELS_S3_PREFIX) that functions and containers copy models from.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use ff_pipeline::models::{catalogue, DownloadScope, ModelEntry, ModelSource, ModelStatus, ModelStore};
use ff_service::models_bucket::{BucketModels, Published};
use ff_service::{storage_from_config, ServiceConfig};

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// List models with their processor, whether they are downloaded, their size and whether they
    /// match their `.hash` sidecar.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only these models, model options (`yolo_face`, `live_portrait`), modules or processors.
        names: Vec<String>,
    },
    /// Download and verify models into the models directory; verified files are kept as they are.
    Download {
        /// Models (`inswapper_128`), model options (`ghost_1_256` brings its converter too),
        /// modules or processors (`face_swapper`), or `all`.
        #[arg(required = true)]
        names: Vec<String>,
        /// With a processor name or `all`, include the deep swapper models FaceFusion only fetches
        /// with `--download-scope full`.
        #[arg(long)]
        full: bool,
    },
    /// Put models into the storage's models prefix (FF_MODELS_S3_PREFIX, in FF_S3_BUCKET or
    /// FF_DATA_DIR), downloading any the models directory lacks first; models the prefix already
    /// holds unchanged are skipped. Every function and container then copies them from there.
    Upload {
        /// Models, model options, modules or processors, or `all`, as for `download`.
        #[arg(required = true)]
        names: Vec<String>,
        /// As for `download`: include the deep swapper models of `--download-scope full`.
        #[arg(long)]
        full: bool,
    },
}

pub fn run(command: ModelsCommand, models_dir: &Path) -> anyhow::Result<()> {
    match command {
        ModelsCommand::List { json, names } => {
            let entries = if names.is_empty() {
                catalogue().models().iter().collect()
            } else {
                resolve(&names, DownloadScope::Full)?
            };
            let store = ModelStore::new(models_dir, false);
            let rows = entries
                .into_iter()
                .map(|entry| Ok((entry, store.status(&entry.name)?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if json {
                print_json(&rows)?;
            } else {
                print_table(&rows);
            }
            Ok(())
        }
        ModelsCommand::Download { names, full } => {
            let scope = if full { DownloadScope::Full } else { DownloadScope::Lite };
            let entries = resolve(&names, scope)?;
            let store = ModelStore::new(models_dir, true);
            let mut rows = Vec::with_capacity(entries.len());
            let mut failed = Vec::new();
            for (position, entry) in entries.iter().enumerate() {
                eprintln!("[{}/{}] {}", position + 1, entries.len(), entry.name);
                if let Err(error) = store.download(&entry.name) {
                    eprintln!("  failed: {error}");
                    failed.push(entry.name.as_str());
                }
                rows.push((*entry, store.status(&entry.name)?));
            }
            print_table(&rows);
            if !failed.is_empty() {
                bail!(
                    "{} of {} models could not be downloaded into {}: {} (the errors above say why)",
                    failed.len(),
                    entries.len(),
                    models_dir.display(),
                    failed.join(", ")
                );
            }
            Ok(())
        }
        ModelsCommand::Upload { names, full } => {
            let scope = if full { DownloadScope::Full } else { DownloadScope::Lite };
            let entries = resolve(&names, scope)?;
            tokio::runtime::Runtime::new()?.block_on(upload(&entries, models_dir))
        }
    }
}

/// Downloads (or copies from the prefix) each model into `models_dir`, then publishes it.
async fn upload(entries: &[&'static ModelEntry], models_dir: &Path) -> anyhow::Result<()> {
    let config = ServiceConfig::from_env().context("invalid service configuration")?;
    let Some(prefix) = config.models_s3_prefix.clone() else {
        bail!("set FF_MODELS_S3_PREFIX (e.g. `models/`) to the prefix the functions read models from");
    };
    let storage = storage_from_config(&config);
    let bucket = Arc::new(BucketModels::new(storage, prefix, tokio::runtime::Handle::current()));
    eprintln!("uploading {} models to {}", entries.len(), bucket.location());
    let store = Arc::new(ModelStore::new(models_dir, true).with_source(bucket.clone()));
    let mut failed = Vec::new();
    for (position, entry) in entries.iter().enumerate() {
        eprintln!("[{}/{}] {}", position + 1, entries.len(), entry.name);
        let (local, name) = (Arc::clone(&store), entry.name.clone());
        let downloaded = tokio::task::spawn_blocking(move || local.download(&name)).await?;
        let outcome = match downloaded {
            Ok(_) => bucket.publish(models_dir, &entry.name).await.map_err(anyhow::Error::from),
            Err(error) => Err(error.into()),
        };
        match outcome {
            Ok(Published::Present) => eprintln!("  already there: {}", bucket.key(&entry.file)),
            Ok(Published::Uploaded { bytes }) => eprintln!("  uploaded {bytes} bytes to {}", bucket.key(&entry.file)),
            Err(error) => {
                eprintln!("  failed: {error:#}");
                failed.push(entry.name.as_str());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} models are not in {}: {} (the errors above say why)",
            failed.len(),
            entries.len(),
            bucket.location(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Expands each name into catalogue entries, without duplicates, in the order given.
fn resolve(names: &[String], scope: DownloadScope) -> anyhow::Result<Vec<&'static ModelEntry>> {
    let mut entries: Vec<&'static ModelEntry> = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        let found = catalogue().resolve(name, scope);
        if found.is_empty() {
            unknown.push(name.as_str());
        }
        for entry in found {
            if !entries.iter().any(|e| e.name == entry.name) {
                entries.push(entry);
            }
        }
    }
    if !unknown.is_empty() {
        bail!(
            "not a FaceFusion 3.5.3 model, model option, module or processor: {}; `ff models list` shows the names",
            unknown.join(", ")
        );
    }
    Ok(entries)
}

fn print_json(rows: &[(&ModelEntry, ModelStatus)]) -> anyhow::Result<()> {
    let list: Vec<serde_json::Value> = rows
        .iter()
        .map(|(entry, status)| {
            serde_json::json!({
                "name": entry.name,
                "modules": entry.modules,
                "choices": entry.choices,
                "base_name": entry.base_name,
                "file": status.file,
                "downloaded": status.downloaded,
                "size": status.size,
                "verified": status.verified,
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(())
}

fn print_table(rows: &[(&ModelEntry, ModelStatus)]) {
    let header = ["NAME", "PROCESSOR", "DOWNLOADED", "SIZE", "VERIFIED"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|(entry, status)| {
            [
                entry.name.clone(),
                entry.modules.join(","),
                yes_no(status.downloaded).to_string(),
                status.size.map(human_size).unwrap_or_else(|| "-".into()),
                if status.downloaded { yes_no(status.verified) } else { "-" }.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |row: [&str; 5]| {
        let text: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header);
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human_readable() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(12_659_761), "12.1 MiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn names_resolve_to_models_options_and_processors() {
        let names = |input: &[&str]| {
            let input: Vec<String> = input.iter().map(|s| s.to_string()).collect();
            resolve(&input, DownloadScope::Lite).map(|found| found.iter().map(|e| e.name.clone()).collect::<Vec<_>>())
        };
        assert_eq!(names(&["yolo_face", "yoloface_8n"]).unwrap(), ["yoloface_8n"]);
        assert_eq!(names(&["ghost_2_256"]).unwrap(), ["crossface_ghost", "ghost_2_256"]);
        assert_eq!(names(&["face_detector"]).unwrap().len(), 4);
        let error = names(&["face_detector", "nope"]).unwrap_err().to_string();
        assert!(error.contains("nope") && error.contains("ff models list"), "{error}");
    }

    #[test]
    fn listing_an_empty_directory_shows_nothing_downloaded() {
        let dir = std::env::temp_dir().join(format!("ff-models-cmd-{}", std::process::id()));
        let command = ModelsCommand::List { json: true, names: vec!["face_landmarker".into()] };
        run(command, &dir).unwrap();
        let status = ModelStore::new(&dir, false).status("2dfan4").unwrap();
        assert!(!status.downloaded && !status.verified);
    }
}
