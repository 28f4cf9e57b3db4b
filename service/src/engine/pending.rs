//! Whether a backup is due: per enabled class, how many changes the phone's stores made since
//! the last good backup. Cheap: only the stores' revisions are read (no item), and for EDS the
//! revision's counter (`2026-11-24T20:14:52Z(20)`, bumped once per change call) gives the count.

use std::collections::BTreeMap;

use super::{Engine, EngineError};
use crate::class::DataClass;
use crate::sources::{self, SourceContext};

/// The change counter in an EDS-style revision, `...(N)`.
fn counter(rev: &str) -> Option<u64> {
    let inner = rev.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    inner[open + 1..].parse().ok()
}

/// Changes between the revision seen at the last backup and now: the counter difference where
/// both carry one and it grew, else 1 if they differ.
pub fn changes_between(then: Option<&str>, now: &str) -> u32 {
    match then {
        Some(t) if t == now => 0,
        Some(t) => match (counter(t), counter(now)) {
            (Some(a), Some(b)) if b > a => u32::try_from(b - a).unwrap_or(u32::MAX),
            _ => 1,
        },
        None => 1,
    }
}

impl Engine {
    /// For each enabled class of the default account with a store on this phone: the number of
    /// changes since the last good backup (0 = nothing to back up). A class never backed up
    /// counts as 1 per store. Classes whose store cannot be reached are left out.
    pub async fn pending_changes(&self) -> Result<BTreeMap<String, u32>, EngineError> {
        let Some(account) = self.with_store(|s| s.default_account())? else {
            return Ok(BTreeMap::new());
        };
        let name = account.name();
        let bus = zbus::Connection::session()
            .await
            .map_err(|e| EngineError::Source(format!("cannot connect to the session bus: {e}")))?;
        let mut out = BTreeMap::new();
        for class in DataClass::ALL {
            let settings = account.class(class);
            if !settings.enabled {
                continue;
            }
            let ctx = SourceContext { conn: &bus, store: &self.store, account: &account, state_dir: self.options.state_dir.as_deref() };
            let Ok(mut srcs) = sources::open_sources(class, &ctx).await else { continue };
            let state = self.with_store(|s| s.class_state(&name, class))?;
            let usable = state.as_ref().filter(|st| st.is_for(&account.server_url, &settings.remote_uri));
            let mut n = 0u32;
            for src in srcs.iter_mut() {
                let Ok(rev) = src.revision().await else { continue };
                let then = usable.and_then(|st| st.source_revisions.get(src.id())).map(String::as_str);
                n = n.saturating_add(changes_between(then, &rev));
            }
            out.insert(class.to_string(), n);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_eds_revision_bumps() {
        assert_eq!(changes_between(Some("2026-11-24T20:14:52Z(20)"), "2026-11-24T20:14:52Z(20)"), 0);
        assert_eq!(changes_between(Some("2026-11-24T20:14:52Z(20)"), "2026-11-24T21:00:00Z(23)"), 3);
        assert_eq!(changes_between(Some("2026-11-24T20:18:41.186108Z(13)"), "2026-11-24T20:19:00.000001Z(14)"), 1);
        // counter reset (store recreated) or opaque revisions: something changed
        assert_eq!(changes_between(Some("x(9)"), "y(2)"), 1);
        assert_eq!(changes_between(Some("abc"), "abd"), 1);
        assert_eq!(changes_between(None, "r(1)"), 1);
    }
}
