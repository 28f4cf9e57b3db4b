//! Logging: `tracing` to the journal when systemd started us (`JOURNAL_STREAM` names our
//! stderr), human-readable lines on stderr otherwise. The level follows `--log-level`, else
//! `RUST_LOG` (e.g. `imsync=debug`), else `info`.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

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
    let filter = filter_for(&spec);
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

/// The filter for a `RUST_LOG`-style spec: a level (`debug`), `target=level` pairs, or both
/// (`info,imsync=debug`); targets not named log at `info` unless the spec gives a level.
/// (`Targets` rather than `EnvFilter`: no regex engine in a daemon
/// that only needs levels per target.) A spec that does not parse gives `info`, with a
/// warning on stderr. The HTTP and TLS stacks log every request at debug level:
/// they stay at `warn` unless the spec names them.
fn filter_for(spec: &str) -> Targets {
    let mut filter = match spec.parse::<Targets>() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("imsync: log level {spec:?} is not valid ({e}); using info");
            Targets::new().with_default(LevelFilter::INFO)
        }
    };
    // `imsync=debug` means more of imsync, not nothing of the rest
    if filter.default_level().is_none() {
        filter = filter.with_default(LevelFilter::INFO);
    }
    for noisy in ["ureq", "ureq_proto", "rustls", "zbus", "tracing"] {
        if !spec.contains(noisy) {
            filter = filter.with_target(noisy, LevelFilter::WARN);
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn levels_per_target_and_quiet_network_stacks() {
        let f = filter_for("info");
        assert!(f.would_enable("imsync::engine", &Level::INFO));
        assert!(!f.would_enable("imsync::engine", &Level::DEBUG));
        assert!(!f.would_enable("ureq::unversioned", &Level::INFO));
        assert!(f.would_enable("zbus", &Level::WARN));

        let f = filter_for("info,imsync=debug,zbus=trace");
        assert!(f.would_enable("imsync::engine::backup", &Level::DEBUG));
        assert!(!f.would_enable("oo7", &Level::DEBUG));
        assert!(f.would_enable("zbus::connection", &Level::TRACE));
        assert!(!f.would_enable("rustls::client", &Level::INFO));

        let f = filter_for("imsync=debug");
        assert!(f.would_enable("imsync::engine", &Level::DEBUG));
        assert!(f.would_enable("oo7", &Level::INFO) && !f.would_enable("oo7", &Level::DEBUG));

        let f = filter_for("no such level!");
        assert!(f.would_enable("imsync", &Level::INFO) && !f.would_enable("imsync", &Level::DEBUG));
    }
}
