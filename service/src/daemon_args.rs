//! Command-line arguments of `imsyncd` (in the library so that `imsync-gen` can render the
//! man page and the tests can check them).

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "imsyncd", version, about = "imsync service: backs up the phone's personal data over SyncML")]
pub struct Args {
    /// Exit after this many seconds without a call or a job (0: never).
    #[arg(long, default_value_t = 120, env = "IMSYNC_IDLE_TIMEOUT")]
    pub idle_timeout: u64,
    /// Keep finished job objects on the bus this many seconds.
    #[arg(long, default_value_t = 300, env = "IMSYNC_JOB_RETENTION")]
    pub job_retention: u64,
    /// Where the state database and the password fallback live (default: $XDG_DATA_HOME/imsync).
    #[arg(long, env = "IMSYNC_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `imsync=debug` (default: $RUST_LOG, else info).
    #[arg(long)]
    pub log_level: Option<String>,
}
