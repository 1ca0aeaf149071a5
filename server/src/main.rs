//! The `latch` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    match latch_server::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("latch: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
