//! Logging: `tracing` to the journal when systemd started us (`JOURNAL_STREAM` names our
//! stderr), human-readable lines on stderr otherwise. The level follows `--log-level`, else
//! `RUST_LOG` (e.g. `imsync=debug`), else `info`.

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// Whether our stderr is the journal stream systemd set up for us.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.split_once(':') else { return false };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else { return false };
    dev.parse::<u64>().ok() == Some(meta.dev()) && ino.parse::<u64>().ok() == Some(meta.ino())
}

pub fn init(level: Option<&str>) {
    let spec = match level {
        Some(l) => l.to_string(),
        None => std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    };
    // The HTTP and TLS stacks log every request at debug level; keep them quiet unless named.
    let mut filter = EnvFilter::new(&spec);
    for noisy in ["ureq", "ureq_proto", "rustls", "zbus", "tracing"] {
        if !spec.contains(noisy) {
            filter = filter.add_directive(format!("{noisy}=warn").parse().expect("valid directive"));
        }
    }
    let registry = tracing_subscriber::registry().with(filter);
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            registry.with(journald.with_syslog_identifier("imsyncd".into())).init();
            return;
        }
    }
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi)).init();
}
