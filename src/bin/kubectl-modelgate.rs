//! `kubectl modelgate`: the reviewers' and auditors' plugin.

fn main() -> std::process::ExitCode {
    eprintln!("kubectl-modelgate: not built yet");
    std::process::ExitCode::FAILURE
}
