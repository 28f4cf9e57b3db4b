//! EDS errors on the wire → [`SourceError`].
//!
//! EDS registers no D-Bus error names, so its GErrors arrive as GDBus "unmapped" errors:
//! `org.gtk.GDBus.UnmappedGError.Quark._e_2dclient_2derror_2dquark.Code20`.

use crate::sources::SourceError;

/// The GError domain and code of an unmapped GDBus error name.
pub(crate) fn unmapped_gerror(name: &str) -> Option<(String, i32)> {
    let rest = name.strip_prefix("org.gtk.GDBus.UnmappedGError.Quark.")?;
    let (quark, code) = rest.rsplit_once(".Code")?;
    let code: i32 = code.parse().ok()?;
    // The quark is escaped: '_' followed by two hex digits is a byte; a leading '_'
    // marks the start.
    let quark = quark.strip_prefix('_').unwrap_or(quark);
    let bytes = quark.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some((String::from_utf8_lossy(&out).into_owned(), code))
}

/// The symbolic name of an EDS error code.
pub(crate) fn code_name(quark: &str, code: i32) -> Option<&'static str> {
    const CLIENT: &[&str] = &[
        "INVALID_ARG",
        "BUSY",
        "SOURCE_NOT_LOADED",
        "SOURCE_ALREADY_LOADED",
        "AUTHENTICATION_FAILED",
        "AUTHENTICATION_REQUIRED",
        "REPOSITORY_OFFLINE",
        "OFFLINE_UNAVAILABLE",
        "PERMISSION_DENIED",
        "CANCELLED",
        "COULD_NOT_CANCEL",
        "NOT_SUPPORTED",
        "TLS_NOT_AVAILABLE",
        "UNSUPPORTED_AUTHENTICATION_METHOD",
        "SEARCH_SIZE_LIMIT_EXCEEDED",
        "SEARCH_TIME_LIMIT_EXCEEDED",
        "INVALID_QUERY",
        "QUERY_REFUSED",
        "DBUS_ERROR",
        "OTHER_ERROR",
        "NOT_OPENED",
        "OUT_OF_SYNC",
    ];
    const BOOK: &[&str] = &[
        "NO_SUCH_BOOK",
        "CONTACT_NOT_FOUND",
        "CONTACT_ID_ALREADY_EXISTS",
        "NO_SUCH_SOURCE",
        "NO_SPACE",
    ];
    const CAL: &[&str] = &[
        "NO_SUCH_CALENDAR",
        "OBJECT_NOT_FOUND",
        "INVALID_OBJECT",
        "UNKNOWN_USER",
        "OBJECT_ID_ALREADY_EXISTS",
        "INVALID_RANGE",
    ];
    let table = match quark {
        "e-client-error-quark" => CLIENT,
        "e-book-client-error-quark" => BOOK,
        "e-cal-client-error-quark" => CAL,
        _ => return None,
    };
    usize::try_from(code)
        .ok()
        .and_then(|i| table.get(i))
        .copied()
}

/// D-Bus errors that mean "the object or its owner is gone": reopening may help.
const GONE: &[&str] = &[
    "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.DBus.Error.UnknownInterface",
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Disconnected",
];

fn error_name(e: &zbus::Error) -> Option<String> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
        zbus::Error::FDO(fdo) => Some(zbus::DBusError::name(&**fdo).to_string()),
        _ => None,
    }
}

/// True if `e` says the opened book no longer exists (factory restarted, backend
/// closed): the caller should reopen and retry once.
pub(crate) fn is_object_gone(e: &zbus::Error) -> bool {
    let Some(name) = error_name(e) else {
        return false;
    };
    if GONE.contains(&name.as_str()) {
        return true;
    }
    // A backend that was closed and reopened under the same path is not opened for us.
    matches!(unmapped_gerror(&name), Some((q, 20)) if q == "e-client-error-quark")
}

/// Maps a failed call of `what` on store `store` to a readable [`SourceError`].
pub(crate) fn map_error(store: &str, service: &str, what: &str, e: zbus::Error) -> SourceError {
    let (name, message) = match &e {
        zbus::Error::MethodError(name, msg, _) => {
            (name.to_string(), msg.clone().unwrap_or_default())
        }
        zbus::Error::FDO(fdo) => (
            zbus::DBusError::name(&**fdo).to_string(),
            zbus::DBusError::description(&**fdo)
                .unwrap_or_default()
                .to_string(),
        ),
        _ => return SourceError::DBus(e),
    };
    if name == "org.freedesktop.DBus.Error.ServiceUnknown"
        || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
        || name.starts_with("org.freedesktop.DBus.Error.Spawn")
    {
        return SourceError::Unavailable {
            service: service.to_string(),
            detail: format!("{what}: {message}"),
        };
    }
    let detail = match unmapped_gerror(&name) {
        Some((quark, code)) => {
            let symbol = code_name(&quark, code)
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            format!("{what} failed: {message} ({quark} {code}{symbol})")
        }
        None => format!("{what} failed: {message} ({name})"),
    };
    SourceError::Store {
        store: store.to_string(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unmapped_names() {
        assert_eq!(
            unmapped_gerror(
                "org.gtk.GDBus.UnmappedGError.Quark._e_2dclient_2derror_2dquark.Code20"
            ),
            Some(("e-client-error-quark".into(), 20))
        );
        assert_eq!(
            unmapped_gerror("org.gtk.GDBus.UnmappedGError.Quark._e_2dbook_2dbackend_2dsqlite_2derror_2dquark.Code2"),
            Some(("e-book-backend-sqlite-error-quark".into(), 2))
        );
        assert_eq!(unmapped_gerror("org.freedesktop.DBus.Error.Failed"), None);
        assert_eq!(
            unmapped_gerror("org.gtk.GDBus.UnmappedGError.Quark._x.Codeabc"),
            None
        );
        assert_eq!(code_name("e-client-error-quark", 20), Some("NOT_OPENED"));
        assert_eq!(
            code_name("e-book-client-error-quark", 1),
            Some("CONTACT_NOT_FOUND")
        );
        assert_eq!(code_name("e-book-client-error-quark", 99), None);
        assert_eq!(code_name("g-io-error-quark", 1), None);
    }
}
