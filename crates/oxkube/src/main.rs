//! The oxkube binary.
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "oxkube", version, about = "Kubernetes in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the node's container images.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Internal: the per-container shim the runtime starts (single-threaded).
    #[command(hide = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Import OCI image archives, OCI layout directories or docker-save tarballs (also while the
    /// agent runs).
    Import {
        /// The node's data directory.
        #[arg(long, default_value = "/var/lib/oxkube")]
        data_dir: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Images {
            command: ImagesCommand::Import { data_dir, files },
        } => {
            for img in runtime::images::import(&data_dir, &files).context("import images")? {
                println!("imported {} {}", img.id, img.repo_tags.join(","));
            }
        }
        Command::Shim { args } => std::process::exit(runtime::container::shim::main(&args)),
    }
    Ok(())
}
