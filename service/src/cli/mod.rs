//! The `imsync` command: a D-Bus client of `org.imsync.Sync1` for people and scripts.
//!
//! Exit codes: 0 success; 1 the service answered with an error (or could not be reached);
//! 2 usage error; 3 the job ended `partial`; 4 the job `failed`; 5 the job was `cancelled`.

use std::collections::HashMap;
use std::io::Read;

use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use zbus::zvariant::{OwnedValue, Value};

use crate::dbus::client::{Account1Proxy, Job1Proxy, Sync1Proxy};

#[derive(Parser, Debug)]
#[command(name = "imsync", version, about = "Back up this phone's contacts and more to a SyncML server, through the imsync service")]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show or change the account (IM identity + sync settings).
    #[command(subcommand)]
    Account(AccountCmd),
    /// Back up the phone now.
    Backup(BackupArgs),
    /// Bring the server's data back onto the phone.
    Restore(RestoreArgs),
    /// Running jobs and the last backup.
    Status,
    /// Past jobs, newest first.
    History {
        /// How many jobs to show.
        #[arg(long, default_value_t = 10)]
        max: u32,
    },
    /// Set up an account's sync settings from an operator's OMA Client Provisioning document
    /// (XML, APPLICATION w5); the account is created if it does not exist.
    Provision(ProvisionArgs),
    /// Cancel a running job (the newest running one if no path is given).
    Cancel {
        /// Job object path, e.g. /org/imsync/Sync1/Job/3.
        job: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Create or update an account. Without --protocol/--im-id: the default account.
    Set(AccountSetArgs),
    /// Show the default account (never the password).
    Show,
    /// List the accounts (the default one is marked).
    List,
    /// Remove an account: its settings, sync state, friend list and password (the data on the
    /// server stays).
    Remove {
        /// The account, `<protocol>:<im_id>`.
        account: String,
    },
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Wait for the job to finish, showing progress.
    #[arg(long)]
    pub wait: bool,
    /// Only these classes (default: every enabled class).
    #[arg(long = "class", value_name = "CLASS")]
    pub classes: Vec<String>,
    /// Account `<protocol>:<im_id>` (default: the default account).
    #[arg(long)]
    pub account: Option<String>,
    /// `merge` (keep what the phone has, add what it lacks) or `replace` (the phone becomes the
    /// server's copy).
    #[arg(long, default_value = "merge", value_parser = ["merge", "replace"])]
    pub mode: String,
}

#[derive(Args, Debug)]
pub struct AccountSetArgs {
    /// IM protocol, e.g. xmpp, matrix, sip.
    #[arg(long, requires = "im_id")]
    pub protocol: Option<String>,
    /// IM id, e.g. alice@example.org.
    #[arg(long, requires = "protocol")]
    pub im_id: Option<String>,
    #[arg(long)]
    pub display_name: Option<String>,
    /// SyncML server URL (http or https).
    #[arg(long)]
    pub server_url: Option<String>,
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password from standard input (it never goes on the command line).
    #[arg(long)]
    pub password_stdin: bool,
    /// Any other setting as KEY=VALUE, e.g. contacts.mode=two-way, calendar.enabled=true.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Wait for the job to finish, showing progress.
    #[arg(long)]
    pub wait: bool,
    /// Only these classes (contacts, calendar, tasks, notes, sms, roster).
    #[arg(long = "class", value_name = "CLASS")]
    pub classes: Vec<String>,
    /// Account `<protocol>:<im_id>` (default: the default account).
    #[arg(long)]
    pub account: Option<String>,
    /// Go ahead even if the backup deletes more than half of a class's items on the server.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Make the server's copy equal to the phone: items only the server holds are deleted there.
    #[arg(long)]
    pub replace_server: bool,
}

#[derive(Args, Debug)]
pub struct ProvisionArgs {
    /// The provisioning document (XML); `-` reads standard input.
    pub file: std::path::PathBuf,
    /// Account `<protocol>:<im_id>` (default: the default account).
    #[arg(long)]
    pub account: Option<String>,
    /// Back a newly created account up right away (a slow sync: nothing on the server is deleted).
    #[arg(long)]
    pub auto_backup: bool,
}

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_PARTIAL: u8 = 3;
pub const EXIT_FAILED: u8 = 4;
pub const EXIT_CANCELLED: u8 = 5;

/// Run the command; returns the exit code.
pub async fn run(cli: Cli) -> Result<u8, String> {
    let conn = zbus::Connection::session().await.map_err(|e| format!("cannot connect to the session bus: {e}"))?;
    let sync = Sync1Proxy::new(&conn).await.map_err(err)?;
    match cli.command {
        Command::Account(AccountCmd::Set(a)) => {
            let mut settings: HashMap<&str, Value<'_>> = HashMap::new();
            let password;
            if let Some(p) = &a.protocol {
                settings.insert("protocol", p.as_str().into());
            }
            if let Some(i) = &a.im_id {
                settings.insert("im_id", i.as_str().into());
            }
            if let Some(d) = &a.display_name {
                settings.insert("display_name", d.as_str().into());
            }
            if let Some(u) = &a.server_url {
                settings.insert("server_url", u.as_str().into());
            }
            if let Some(u) = &a.username {
                settings.insert("username", u.as_str().into());
            }
            if a.password_stdin {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read the password: {e}"))?;
                password = s.trim_end_matches(['\n', '\r']).to_string();
                settings.insert("password", password.as_str().into());
            }
            for kv in &a.set {
                let (k, v) = kv.split_once('=').ok_or_else(|| format!("--set expects KEY=VALUE, got '{kv}'"))?;
                let value: Value<'_> = if k.ends_with(".enabled") {
                    match v {
                        "true" | "yes" | "1" => true.into(),
                        "false" | "no" | "0" => false.into(),
                        _ => return Err(format!("{k} expects true or false, got '{v}'")),
                    }
                } else {
                    v.into()
                };
                settings.insert(k, value);
            }
            sync.set_account(settings).await.map_err(err)?;
            if !cli.json {
                println!("account saved");
            }
            Ok(EXIT_OK)
        }
        Command::Account(AccountCmd::Show) => {
            let acc = sync.get_account().await.map_err(err)?;
            print_dict(&acc, cli.json);
            Ok(EXIT_OK)
        }
        Command::Account(AccountCmd::List) => {
            let mut rows = Vec::new();
            for path in sync.list_accounts().await.map_err(err)? {
                let p = account_proxy(&conn, path.as_str()).await?;
                rows.push((p.name().await.map_err(err)?, p.is_default().await.map_err(err)?, p.server_url().await.map_err(err)?));
            }
            if cli.json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(n, d, u)| serde_json::json!({"account": n, "is_default": d, "server_url": u}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for (n, d, u) in &rows {
                    println!("{}{n}  {u}", if *d { "* " } else { "  " });
                }
            }
            Ok(EXIT_OK)
        }
        Command::Account(AccountCmd::Remove { account }) => {
            for path in sync.list_accounts().await.map_err(err)? {
                let p = account_proxy(&conn, path.as_str()).await?;
                if p.name().await.map_err(err)? == account {
                    p.remove().await.map_err(err)?;
                    if !cli.json {
                        println!("account {account} removed");
                    }
                    return Ok(EXIT_OK);
                }
            }
            Err(format!("org.imsync.Error.NoSuchAccount: no account named '{account}'"))
        }
        Command::Restore(r) => {
            let mut opts: HashMap<&str, Value<'_>> = HashMap::new();
            if let Some(a) = &r.account {
                opts.insert("account", a.as_str().into());
            }
            if !r.classes.is_empty() {
                opts.insert("classes", r.classes.clone().into());
            }
            opts.insert("mode", r.mode.as_str().into());
            let path = sync.restore_with(opts).await.map_err(err)?;
            if !r.wait {
                if cli.json {
                    println!("{}", serde_json::json!({ "job": path.as_str() }));
                } else {
                    println!("{}", path.as_str());
                }
                return Ok(EXIT_OK);
            }
            wait_for(&conn, path.as_str(), cli.json).await
        }
        Command::Backup(b) => {
            let path = if b.classes.is_empty() && b.account.is_none() && !b.allow_mass_delete && !b.replace_server {
                sync.backup().await.map_err(err)?
            } else {
                let mut opts: HashMap<&str, Value<'_>> = HashMap::new();
                if let Some(a) = &b.account {
                    opts.insert("account", a.as_str().into());
                }
                if !b.classes.is_empty() {
                    opts.insert("classes", b.classes.clone().into());
                }
                if b.allow_mass_delete {
                    opts.insert("allow_mass_delete", true.into());
                }
                if b.replace_server {
                    opts.insert("replace_server", true.into());
                }
                sync.backup_with(opts).await.map_err(err)?
            };
            if !b.wait {
                if cli.json {
                    println!("{}", serde_json::json!({ "job": path.as_str() }));
                } else {
                    println!("{}", path.as_str());
                }
                return Ok(EXIT_OK);
            }
            wait_for(&conn, path.as_str(), cli.json).await
        }
        Command::Status => {
            let jobs = sync.jobs().await.map_err(err)?;
            let last = sync.last_backup().await.map_err(err)?;
            if cli.json {
                let mut running = Vec::new();
                for j in &jobs {
                    let p = job_proxy(&conn, j.as_str()).await?;
                    running.push(serde_json::json!({"job": j.as_str(), "state": p.state().await.map_err(err)?}));
                }
                println!("{}", serde_json::json!({"jobs": running, "last_backup": to_json_dict(&last)}));
            } else {
                for j in &jobs {
                    let p = job_proxy(&conn, j.as_str()).await?;
                    println!("job {}: {}", j.as_str(), p.state().await.map_err(err)?);
                }
                if last.is_empty() {
                    println!("no backup yet");
                } else {
                    println!("last backup:");
                    print_report(&last);
                }
            }
            Ok(EXIT_OK)
        }
        Command::History { max } => {
            let h = sync.get_history(max).await.map_err(err)?;
            if cli.json {
                println!("{}", serde_json::Value::Array(h.iter().map(to_json_dict).collect()));
            } else {
                for r in &h {
                    print_report(r);
                }
            }
            Ok(EXIT_OK)
        }
        Command::Provision(p) => {
            let document = if p.file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read the document: {e}"))?;
                s
            } else {
                std::fs::read_to_string(&p.file).map_err(|e| format!("cannot read {}: {e}", p.file.display()))?
            };
            let account = p.account.as_deref().unwrap_or("");
            if p.auto_backup {
                let opts: HashMap<&str, Value<'_>> = HashMap::from([("auto_backup", true.into())]);
                sync.import_provisioning_with(account, &document, opts).await.map_err(err)?;
            } else {
                sync.import_provisioning(account, &document).await.map_err(err)?;
            }
            if !cli.json {
                println!("account provisioned");
            }
            Ok(EXIT_OK)
        }
        Command::Cancel { job } => {
            let path = match job {
                Some(p) => p,
                None => {
                    let mut newest = None;
                    for j in sync.jobs().await.map_err(err)? {
                        let p = job_proxy(&conn, j.as_str()).await?;
                        if p.state().await.map_err(err)? == "running" {
                            newest = Some(j.as_str().to_string());
                        }
                    }
                    newest.ok_or("no job is running")?
                }
            };
            job_proxy(&conn, &path).await?.cancel().await.map_err(err)?;
            Ok(EXIT_OK)
        }
    }
}

fn err(e: zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(msg), _) => format!("{}: {msg}", name.as_str()),
        zbus::Error::MethodError(name, None, _) => name.as_str().to_string(),
        other => other.to_string(),
    }
}

async fn job_proxy<'a>(conn: &zbus::Connection, path: &'a str) -> Result<Job1Proxy<'a>, String> {
    Job1Proxy::builder(conn).path(path).map_err(err)?.build().await.map_err(err)
}

async fn account_proxy<'a>(conn: &zbus::Connection, path: &'a str) -> Result<Account1Proxy<'a>, String> {
    Account1Proxy::builder(conn).path(path).map_err(err)?.build().await.map_err(err)
}

/// Progress display: a bar per class on a terminal, plain lines otherwise.
struct ProgressView {
    bars: Option<(indicatif::MultiProgress, HashMap<String, indicatif::ProgressBar>)>,
    json: bool,
}

impl ProgressView {
    fn new(json: bool) -> Self {
        use std::io::IsTerminal;
        let bars = (!json && std::io::stdout().is_terminal()).then(|| (indicatif::MultiProgress::new(), HashMap::new()));
        ProgressView { bars, json }
    }

    fn update(&mut self, class: &str, done: u32, total: u32) {
        match &mut self.bars {
            Some((multi, bars)) => {
                let bar = bars.entry(class.to_string()).or_insert_with(|| {
                    let b = multi.add(indicatif::ProgressBar::new(u64::from(total)));
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    b.set_prefix(class.to_string());
                    b
                });
                bar.set_length(u64::from(total));
                bar.set_position(u64::from(done));
            }
            None if self.json => {
                println!("{}", serde_json::json!({"progress": {"class": class, "done": done, "total": total}}))
            }
            None => println!("{class}: {done}/{total}"),
        }
    }

    fn finish(&mut self) {
        if let Some((_, bars)) = &self.bars {
            for b in bars.values() {
                b.finish();
            }
        }
    }
}

async fn wait_for(conn: &zbus::Connection, path: &str, json: bool) -> Result<u8, String> {
    let job = job_proxy(conn, path).await?;
    let mut progress = job.receive_progress().await.map_err(err)?;
    let mut finished = job.receive_finished().await.map_err(err)?;
    // The job may have finished before we subscribed: its State tells.
    let state = job.state().await.map_err(err)?;
    let mut view = ProgressView::new(json);
    let (state, report) = if state != "running" {
        (state, job.report().await.map_err(err)?)
    } else {
        loop {
            tokio::select! {
                Some(p) = progress.next() => {
                    if let Ok(a) = p.args() {
                        view.update(&a.class, a.done, a.total);
                    }
                }
                Some(f) = finished.next() => {
                    let a = f.args().map_err(err)?;
                    break (a.state.clone(), a.report.clone());
                }
                else => return Err("the service left the bus during the job".into()),
            }
        }
    };
    view.finish();
    if json {
        println!("{}", to_json_dict(&report));
    } else {
        print_report(&report);
    }
    Ok(match state.as_str() {
        "succeeded" => EXIT_OK,
        "partial" => EXIT_PARTIAL,
        "cancelled" => EXIT_CANCELLED,
        _ => EXIT_FAILED,
    })
}

fn to_json(v: &Value<'_>) -> serde_json::Value {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::U8(n) => (*n).into(),
        Value::I16(n) => (*n).into(),
        Value::U16(n) => (*n).into(),
        Value::I32(n) => (*n).into(),
        Value::U32(n) => (*n).into(),
        Value::I64(n) => (*n).into(),
        Value::U64(n) => (*n).into(),
        Value::F64(n) => (*n).into(),
        Value::Str(s) => s.as_str().into(),
        Value::ObjectPath(p) => p.as_str().into(),
        Value::Value(inner) => to_json(inner),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Dict(d) => {
            let mut m = serde_json::Map::new();
            for (k, v) in d.iter() {
                let key = match k {
                    Value::Str(s) => s.as_str().to_string(),
                    other => format!("{other:?}"),
                };
                m.insert(key, to_json(v));
            }
            serde_json::Value::Object(m)
        }
        other => format!("{other:?}").into(),
    }
}

fn to_json_dict(d: &HashMap<String, OwnedValue>) -> serde_json::Value {
    let mut keys: Vec<&String> = d.keys().collect();
    keys.sort();
    serde_json::Value::Object(keys.into_iter().map(|k| (k.clone(), to_json(&d[k]))).collect())
}

fn print_dict(d: &HashMap<String, OwnedValue>, json: bool) {
    let j = to_json_dict(d);
    if json {
        println!("{j}");
        return;
    }
    if let serde_json::Value::Object(m) = j {
        for (k, v) in m {
            match v {
                serde_json::Value::String(s) => println!("{k}: {s}"),
                other => println!("{k}: {other}"),
            }
        }
    }
}

fn print_report(r: &HashMap<String, OwnedValue>) {
    let j = to_json_dict(r);
    let s = |k: &str| j.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let job = j.get("job").map(|v| v.to_string()).unwrap_or_default();
    println!("job {job} {} {}: {}", s("kind"), s("account"), s("state"));
    if !s("error").is_empty() {
        println!("  error: {}", s("error"));
    }
    if let Some(serde_json::Value::Object(classes)) = j.get("classes") {
        for (name, c) in classes {
            let n = |k: &str| c.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            let t = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            println!(
                "  {name}: {} ({}) — {} added, {} replaced, {} deleted, {} failed{}",
                t("state"),
                t("mode"),
                n("added"),
                n("replaced"),
                n("deleted"),
                n("failed"),
                if t("error").is_empty() { String::new() } else { format!(" — {}", t("error")) }
            );
            if let Some(serde_json::Value::Array(errs)) = c.get("errors") {
                for e in errs.iter().take(10) {
                    println!("    {}", e.as_str().unwrap_or(""));
                }
            }
        }
    }
}
