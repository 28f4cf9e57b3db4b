//! What a job did, per class: the report chat apps show, kept in the history and sent with
//! `Finished`. Error names are the D-Bus error names (`org.imsync.Error.*`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why a class (or a whole job) did not fully succeed. Each maps to one D-Bus error name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The account has no server or credentials.
    NotConfigured,
    /// The server refused the user name or password.
    AuthenticationFailed,
    /// The server could not be reached, or the connection broke.
    Network,
    /// The server's certificate has expired.
    CertificateExpired,
    /// The server's certificate is for another host name.
    CertificateWrongHost,
    /// The server's certificate is not signed by a trusted authority.
    CertificateUnknownCa,
    /// The server's certificate does not match the pinned fingerprint.
    CertificatePinMismatch,
    /// Another TLS failure.
    Certificate,
    /// The server's database is full (status 420).
    ServerFull,
    /// The server answered with an error or with something that is not SyncML.
    ServerError,
    /// The phone's store (EDS, ModemManager) could not be read.
    SourceUnavailable,
    /// The server holds items of this class that this phone does not have.
    ServerHasOtherData,
    /// The backup would delete much of what the server holds; it needs `allow_mass_delete`.
    MassDelete,
    /// Some items could not be read or were refused by the server; the rest went through.
    ItemsFailed,
    /// The job was cancelled.
    Cancelled,
    /// The service stopped during the job.
    Interrupted,
    /// The phone's state could not be read or written.
    Internal,
}

impl ErrorKind {
    pub fn dbus_name(self) -> &'static str {
        match self {
            ErrorKind::NotConfigured => "org.imsync.Error.NotConfigured",
            ErrorKind::AuthenticationFailed => "org.imsync.Error.AuthenticationFailed",
            ErrorKind::Network => "org.imsync.Error.Network",
            ErrorKind::ServerError => "org.imsync.Error.ServerError",
            ErrorKind::CertificateExpired => "org.imsync.Error.CertificateExpired",
            ErrorKind::CertificateWrongHost => "org.imsync.Error.CertificateWrongHost",
            ErrorKind::CertificateUnknownCa => "org.imsync.Error.CertificateUnknownCa",
            ErrorKind::CertificatePinMismatch => "org.imsync.Error.CertificatePinMismatch",
            ErrorKind::Certificate => "org.imsync.Error.Certificate",
            ErrorKind::ServerFull => "org.imsync.Error.ServerFull",
            ErrorKind::SourceUnavailable => "org.imsync.Error.SourceUnavailable",
            ErrorKind::ServerHasOtherData => "org.imsync.Error.ServerHasOtherData",
            ErrorKind::ItemsFailed => "org.imsync.Error.ItemsFailed",
            ErrorKind::MassDelete => "org.imsync.Error.MassDelete",
            ErrorKind::Cancelled => "org.imsync.Error.Cancelled",
            ErrorKind::Interrupted => "org.imsync.Error.Interrupted",
            ErrorKind::Internal => "org.imsync.Error.Internal",
        }
    }
}

/// The outcome of a job or of one class in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Running,
    Succeeded,
    /// The class has no store on this phone (e.g. no modem for `sms`): nothing to do, no failure.
    Skipped,
    Partial,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Skipped => "skipped",
            Outcome::Succeeded => "succeeded",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    pub state: Outcome,
    /// The sync mode used (`two-way`, `slow`, `one-way-from-client`, ...), or `none` when
    /// nothing had changed and no session was needed.
    pub mode: String,
    pub added: u32,
    pub replaced: u32,
    pub deleted: u32,
    pub failed: u32,
    /// Items in the phone's stores.
    pub items: u32,
    /// One line per problem (item-level failures name the item and the server's status).
    pub errors: Vec<String>,
    /// D-Bus error name of the main problem, empty if none.
    pub error: String,
    pub server_other_items: u32,
}

impl ClassReport {
    pub fn new(mode: &str) -> Self {
        ClassReport {
            state: Outcome::Running,
            mode: mode.to_string(),
            added: 0,
            replaced: 0,
            deleted: 0,
            failed: 0,
            items: 0,
            errors: Vec::new(),
            error: String::new(),
            server_other_items: 0,
        }
    }

    pub fn fail(&mut self, kind: ErrorKind, message: String) {
        self.state = match kind {
            ErrorKind::Cancelled => Outcome::Cancelled,
            // Refused to protect the server's data: nothing went wrong, the user must confirm.
            ErrorKind::MassDelete => Outcome::Partial,
            _ => Outcome::Failed,
        };
        self.error = kind.dbus_name().to_string();
        self.errors.push(message);
    }

    /// The class has no store on this phone.
    pub fn skip(&mut self, why: String) {
        self.state = Outcome::Skipped;
        self.errors.push(why);
    }

    /// Fold the report of a later session of the same job for this class into this one
    /// (a recovery session and its follow-up): counts add up, the worse outcome wins.
    pub fn absorb(&mut self, later: ClassReport) {
        fn rank(o: Outcome) -> u8 {
            match o {
                Outcome::Running | Outcome::Skipped | Outcome::Succeeded => 0,
                Outcome::Partial => 1,
                Outcome::Failed => 2,
                Outcome::Cancelled => 3,
            }
        }
        if rank(later.state) >= rank(self.state) {
            if rank(later.state) > rank(self.state) || self.error.is_empty() {
                self.error = later.error;
            }
            self.state = later.state;
        }
        self.mode = later.mode;
        self.added += later.added;
        self.replaced += later.replaced;
        self.deleted += later.deleted;
        self.failed += later.failed;
        self.items = later.items;
        self.server_other_items += later.server_other_items;
        self.errors.extend(later.errors);
    }

    /// Settle the state of a class whose session succeeded.
    pub fn settle(&mut self) {
        if self.state != Outcome::Running {
            return;
        }
        if self.server_other_items > 0 {
            self.state = Outcome::Partial;
            self.error = ErrorKind::ServerHasOtherData.dbus_name().to_string();
            self.errors.push(format!(
                "the server holds {} item(s) this phone does not have; nothing was deleted or pulled onto the phone",
                self.server_other_items
            ));
        } else if self.failed > 0 {
            self.state = Outcome::Partial;
            self.error = ErrorKind::ItemsFailed.dbus_name().to_string();
        } else {
            self.state = Outcome::Succeeded;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    pub account: String,
    pub kind: String,
    pub state: Outcome,
    /// `<D-Bus error name>: <message>` of the job-level problem, empty if none.
    pub error: String,
    pub started: i64,
    pub finished: i64,
    pub classes: BTreeMap<String, ClassReport>,
    pub messages_sent: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl JobReport {
    /// Record the report of `class`; a second session of the same job for the class adds to
    /// the first (see [`ClassReport::absorb`]).
    pub fn put_class(&mut self, class: crate::class::DataClass, report: ClassReport) {
        match self.classes.get_mut(class.as_str()) {
            Some(earlier) => earlier.absorb(report),
            None => {
                self.classes.insert(class.to_string(), report);
            }
        }
    }

    /// The job's state from its classes: all succeeded → succeeded; all failed → failed;
    /// cancelled wins; anything else → partial. The job error is the first class error.
    pub fn settle(&mut self) {
        let states: Vec<Outcome> = self.classes.values().map(|c| c.state).filter(|s| *s != Outcome::Skipped).collect();
        self.state = if states.contains(&Outcome::Cancelled) {
            Outcome::Cancelled
        } else if states.is_empty() || states.iter().all(|s| *s == Outcome::Succeeded) {
            Outcome::Succeeded
        } else if states.iter().all(|s| *s == Outcome::Failed) {
            Outcome::Failed
        } else {
            Outcome::Partial
        };
        if self.error.is_empty() {
            if let Some(c) = self.classes.values().find(|c| !c.error.is_empty()) {
                self.error = format!("{}: {}", c.error, c.errors.first().cloned().unwrap_or_default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(states: &[Outcome]) -> JobReport {
        let mut j = JobReport {
            account: "a".into(),
            kind: "backup".into(),
            state: Outcome::Running,
            error: String::new(),
            started: 0,
            finished: 0,
            classes: BTreeMap::new(),
            messages_sent: 0,
            bytes_sent: 0,
            bytes_received: 0,
        };
        for (i, s) in states.iter().enumerate() {
            let mut c = ClassReport::new("slow");
            c.state = *s;
            if *s == Outcome::Failed {
                c.error = ErrorKind::Network.dbus_name().into();
                c.errors.push("down".into());
            }
            j.classes.insert(format!("c{i}"), c);
        }
        j.settle();
        j
    }

    #[test]
    fn job_state_follows_classes() {
        assert_eq!(job(&[Outcome::Succeeded, Outcome::Succeeded]).state, Outcome::Succeeded);
        assert_eq!(job(&[Outcome::Failed, Outcome::Failed]).state, Outcome::Failed);
        let j = job(&[Outcome::Succeeded, Outcome::Failed]);
        assert_eq!(j.state, Outcome::Partial);
        assert_eq!(j.error, "org.imsync.Error.Network: down");
        assert_eq!(job(&[Outcome::Cancelled, Outcome::Failed]).state, Outcome::Cancelled);
        assert_eq!(job(&[Outcome::Succeeded, Outcome::Skipped]).state, Outcome::Succeeded);
    }

    #[test]
    fn class_settles_on_other_data_and_failures() {
        let mut c = ClassReport::new("slow");
        c.server_other_items = 500;
        c.settle();
        assert_eq!(c.state, Outcome::Partial);
        assert_eq!(c.error, "org.imsync.Error.ServerHasOtherData");
        let mut c = ClassReport::new("one-way-from-client");
        c.failed = 1;
        c.settle();
        assert_eq!((c.state, c.error.as_str()), (Outcome::Partial, "org.imsync.Error.ItemsFailed"));
        let mut c = ClassReport::new("none");
        c.settle();
        assert_eq!(c.state, Outcome::Succeeded);
    }
}
