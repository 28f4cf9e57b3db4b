//! imsync: command-line client of the imsync service (see `imsync --help`).

use clap::Parser;
use imsync::cli::{self, Cli};

fn main() -> std::process::ExitCode {
    let args = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("imsync: {e}");
            return std::process::ExitCode::from(cli::EXIT_ERROR);
        }
    };
    match rt.block_on(cli::run(args)) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("imsync: {e}");
            std::process::ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
