//! The modelgate controller binary.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "modelgate",
    version,
    about = "The modelgate operator: holds every model rollout until its approval has passed"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print both CustomResourceDefinitions as YAML, ready for `kubectl apply -f -`.
    Crd {
        /// Write one file per CRD into this directory instead (how crds/ is made).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Crd { dir }) => print_crds(dir),
        None => Err("the controller is not built yet; try `modelgate crd`".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_crds(dir: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for crd in modelgate::crd::all() {
                std::fs::write(
                    dir.join(modelgate::crd::file_name(&crd)),
                    modelgate::crd::to_yaml(&crd)?,
                )?;
            }
        }
        None => {
            // A closed pipe (`| head`) is a normal end, not a failure worth a panic.
            let yaml = modelgate::crd::all_to_yaml()?;
            let _ = std::io::stdout().lock().write_all(yaml.as_bytes());
        }
    }
    Ok(())
}
