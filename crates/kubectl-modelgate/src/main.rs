//! `kubectl modelgate`: the reviewers' and auditors' plugin (see the `kubectl_modelgate` library).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kubectl_modelgate::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubectl-modelgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(kubectl_modelgate::run(cli)) {
        Ok(text) => {
            // A closed pipe (`| head`) is a normal end.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
