//! imsync-gen: writes the man pages and shell completions of `imsync` and `imsyncd`, rendered
//! from their clap definitions, into the directory given on the command line. Used by the
//! packaging (debian/rules, APKBUILD, the RPM spec); not installed.
//!
//! ```text
//! imsync-gen OUT_DIR
//!   OUT_DIR/man/imsync.1, imsync-<subcommand>[-<subcommand>].1, imsyncd.8
//!   OUT_DIR/completions/bash/imsync
//!   OUT_DIR/completions/zsh/_imsync
//!   OUT_DIR/completions/fish/imsync.fish
//! ```
//!
//! The output is reproducible: no dates, only the crate version.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;

const MANUAL: &str = "imsync manual";
const SOURCE: &str = concat!("imsync ", env!("CARGO_PKG_VERSION"));

const IMSYNC_EXTRA: &str = r#".SH "EXIT STATUS"
.TP
.B 0
Success.
.TP
.B 1
The service answered with an error, or could not be reached on the session bus.
.TP
.B 2
Usage error (unknown command or option).
.TP
.B 3
The job ended
.IR partial :
some items could not be backed up.
.TP
.B 4
The job
.IR failed .
.TP
.B 5
The job was
.IR cancelled .
.SH ENVIRONMENT
.TP
.B DBUS_SESSION_BUS_ADDRESS
The session bus on which the service
.B org.imsync.Sync1
is found. The service is started on demand by D\-Bus activation; nothing has to be enabled.
.SH EXAMPLES
.nf
printf '%s\en' "$PASSWORD" | imsync account set \e
    \-\-protocol xmpp \-\-im\-id alice@example.org \e
    \-\-server\-url https://sync.example.org/sync \-\-username alice \-\-password\-stdin
imsync backup \-\-wait
imsync status
imsync \-\-json history \-\-max 5
.fi
.SH "SEE ALSO"
.BR imsyncd (8),
.BR busctl (1),
.BR journalctl (1)
"#;

const SUB_EXTRA: &str = r#".SH "SEE ALSO"
.BR imsync (1),
.BR imsyncd (8)
"#;

const IMSYNCD_DESCRIPTION: &str = r#".SH DESCRIPTION
.B imsyncd
owns the name
.B org.imsync.Sync1
on the D\-Bus session bus and runs backup jobs. It is not started by hand: D\-Bus activation
starts it when a client (such as
.BR imsync (1))
calls it, through the systemd user unit
.B imsyncd.service
where the user session is run by systemd, or directly from the D\-Bus service file elsewhere.
It exits after
.B \-\-idle\-timeout
seconds without calls or jobs.
"#;

const IMSYNCD_EXTRA: &str = r#".SH FILES
.TP
.I ~/.local/share/imsync/state.db
Accounts, sync state and job history (SQLite).
.TP
.I ~/.local/share/imsync/secrets
Password fallback when no Secret Service (gnome\-keyring) is available.
.TP
.I /usr/lib/systemd/user/imsyncd.service
The hardened systemd user unit.
.TP
.I /usr/share/dbus-1/services/org.imsync.Sync1.service
The D\-Bus activation file.
.TP
.I /usr/share/dbus-1/interfaces/org.imsync.Sync1.xml
The D\-Bus interface (introspection XML).
.TP
.I /usr/share/polkit-1/rules.d/50-imsync-modemmanager.rules
Lets the active local user's processes use ModemManager's messaging (SMS restore).
.SH LOGGING
When started by systemd, the log goes to the journal:
.B journalctl \-\-user \-u imsyncd
(identifier
.BR imsyncd ).
Otherwise it goes to standard error. More detail:
.B \-\-log\-level=imsync=debug
or
.BR RUST_LOG=imsync=debug .
.SH "SEE ALSO"
.BR imsync (1),
.BR systemctl (1),
.BR journalctl (1),
.BR busctl (1)
"#;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: imsync-gen OUT_DIR");
        return std::process::ExitCode::from(2);
    };
    match generate(Path::new(&out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("imsync-gen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man = out.join("man");
    fs::create_dir_all(&man)?;

    let mut cli = imsync::cli::Cli::command();
    cli.build();
    man_tree(&cli, &man, "imsync", "imsync", &mut written)?;

    let mut daemon = imsync::daemon_args::Args::command();
    daemon.build();
    let page = man_page(&daemon, "8", false, Some(IMSYNCD_DESCRIPTION), IMSYNCD_EXTRA)?;
    written.push(write(&man.join("imsyncd.8"), &page)?);

    for (shell, dir, name) in
        [(Shell::Bash, "bash", "imsync"), (Shell::Zsh, "zsh", "_imsync"), (Shell::Fish, "fish", "imsync.fish")]
    {
        let dir = out.join("completions").join(dir);
        fs::create_dir_all(&dir)?;
        let mut buf = Vec::new();
        let mut cmd = imsync::cli::Cli::command();
        clap_complete::generate(shell, &mut cmd, "imsync", &mut buf);
        written.push(write(&dir.join(name), &buf)?);
    }
    Ok(written)
}

/// `imsync.1` and one page per (nested) subcommand: `imsync-account-set.1`.
fn man_tree(cmd: &Command, dir: &Path, page: &str, bin: &str, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let top = page == "imsync";
    // clap's names are `&'static str` without its "string" feature; this runs once per page.
    let name: &'static str = Box::leak(page.to_string().into_boxed_str());
    let renamed = cmd.clone().name(name).bin_name(bin.to_string());
    let body = man_page(&renamed, "1", !top, None, if top { IMSYNC_EXTRA } else { SUB_EXTRA })?;
    written.push(write(&dir.join(format!("{page}.1")), &body)?);
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = sub.get_name();
        man_tree(sub, dir, &format!("{page}-{name}"), &format!("{bin} {name}"), written)?;
    }
    Ok(())
}

/// One page: NAME, SYNOPSIS, DESCRIPTION (given or clap's long about), OPTIONS, SUBCOMMANDS,
/// the extra sections, VERSION.
fn man_page(cmd: &Command, section: &str, sub: bool, description: Option<&str>, extra: &str) -> std::io::Result<Vec<u8>> {
    // The generated `help` subcommand has no page of its own.
    let cmd = if cmd.find_subcommand("help").is_some() { cmd.clone().mut_subcommand("help", |h| h.hide(true)) } else { cmd.clone() };
    let man = clap_mangen::Man::new(cmd.clone()).section(section).manual(MANUAL).source(SOURCE);
    let mut buf = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    if let Some(d) = description {
        buf.write_all(d.as_bytes())?;
    } else if cmd.get_long_about().is_some() {
        man.render_description_section(&mut buf)?;
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut buf)?;
    }
    buf.write_all(extra.as_bytes())?;
    if !sub {
        man.render_version_section(&mut buf)?;
    }
    Ok(buf)
}

fn write(path: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
    fs::write(path, data)?;
    Ok(path.to_path_buf())
}
