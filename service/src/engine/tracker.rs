//! Change tracking: what the phone holds now, against what the server has from us
//! (per item a short LUID and a hash of what was sent), gives the Add/Replace/Delete plan.

use std::collections::HashMap;
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_128;

use crate::profile::TrackedItem;

/// An item as it would go on the wire now.
#[derive(Debug, Clone)]
pub struct CurrentItem {
    /// The store's id, shared by all its items.
    pub source_id: Arc<str>,
    /// Shared with the change plan (a backup of 10 000 contacts would copy each id twice).
    pub local_id: Arc<str>,
    /// The wire form (empty for an item the store reported unchanged, see `known_hash`).
    pub data: Vec<u8>,
    /// The store's digest of the item as it holds it (see `SourceItem::digest`).
    pub digest: Option<[u8; 16]>,
    /// For an item not converted because its digest was known: the hash of what the server
    /// has (the item is unchanged).
    pub known_hash: Option<[u8; 16]>,
}

impl CurrentItem {
    pub fn new(source_id: Arc<str>, local_id: String, data: Vec<u8>) -> CurrentItem {
        CurrentItem { source_id, local_id: local_id.into(), data, digest: None, known_hash: None }
    }

    /// Skipped as unchanged and not read since: its wire form is not at hand.
    pub fn unread(&self) -> bool {
        self.known_hash.is_some() && self.data.is_empty()
    }
}

pub fn hash(data: &[u8]) -> Vec<u8> {
    digest(data).to_vec()
}

/// [`hash`] without an allocation (what a plan keeps per item).
pub fn digest(data: &[u8]) -> [u8; 16] {
    xxh3_128(data).to_be_bytes()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedKind {
    Add,
    Replace,
    Delete,
}

/// One change to send, with everything needed to record it once the server confirmed it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: PlannedKind,
    pub luid: u64,
    pub source_id: Arc<str>,
    pub local_id: Arc<str>,
    /// The hash of what is sent (zero for deletes).
    pub hash: [u8; 16],
    /// Index into the current items (not for deletes, nor for streamed items).
    pub item: Option<usize>,
    /// The store's digest of the item as it holds it (see `CurrentItem::digest`).
    pub digest: Option<[u8; 16]>,
}

#[derive(Debug, Default)]
pub struct Plan {
    /// Incremental changes since the last successful session.
    pub changes: Vec<Planned>,
    /// Every current item with its LUID (kept where known, new ones numbered on): what a slow
    /// sync sends.
    pub all: Vec<Planned>,
    pub unchanged: usize,
    /// The next free LUID after this plan.
    pub next_luid: u64,
    /// Unchanged items whose tracked source digest is missing or stale: (LUID, digest).
    pub digest_updates: Vec<(u64, [u8; 16])>,
}

/// Diff `current` against `tracked`. New items get LUIDs from `next_luid` on.
pub fn plan(current: &[CurrentItem], tracked: &[TrackedItem], mut next_luid: u64) -> Plan {
    let mut known: HashMap<(&str, &str), &TrackedItem> =
        tracked.iter().map(|t| ((t.source_id.as_str(), t.local_id.as_str()), t)).collect();
    if let Some(max) = tracked.iter().map(|t| t.luid).max() {
        next_luid = next_luid.max(max + 1);
    }
    let mut p = Plan::default();
    p.all.reserve_exact(current.len());
    for (i, c) in current.iter().enumerate() {
        let h = c.known_hash.unwrap_or_else(|| digest(&c.data));
        let (kind, luid) = match known.remove(&(&*c.source_id, &*c.local_id)) {
            Some(t) if t.hash == h => {
                if let Some(d) = c.digest.filter(|d| t.source_digest != d) {
                    p.digest_updates.push((t.luid, d));
                }
                (None, t.luid)
            }
            Some(t) => (Some(PlannedKind::Replace), t.luid),
            None => {
                next_luid += 1;
                (Some(PlannedKind::Add), next_luid - 1)
            }
        };
        let planned = Planned {
            kind: kind.clone().unwrap_or(PlannedKind::Replace),
            luid,
            source_id: c.source_id.clone(),
            local_id: c.local_id.clone(),
            hash: h,
            item: Some(i),
            digest: c.digest,
        };
        match kind {
            Some(_) => p.changes.push(planned.clone()),
            None => p.unchanged += 1,
        }
        p.all.push(planned);
    }
    let mut gone: Vec<&TrackedItem> = known.into_values().collect();
    gone.sort_by_key(|t| t.luid);
    for t in gone {
        p.changes.push(Planned {
            kind: PlannedKind::Delete,
            luid: t.luid,
            source_id: t.source_id.as_str().into(),
            local_id: t.local_id.as_str().into(),
            hash: [0; 16],
            item: None,
            digest: None,
        });
    }
    p.next_luid = next_luid;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(id: &str, data: &str) -> CurrentItem {
        CurrentItem::new("eds:book".into(), id.into(), data.as_bytes().to_vec())
    }

    #[test]
    fn diff_finds_adds_replaces_deletes() {
        let tracked: Vec<TrackedItem> = [("a", "A", 1), ("b", "B", 2), ("c", "C", 3)]
            .iter()
            .map(|(id, d, l)| TrackedItem { luid: *l, source_id: "eds:book".into(), local_id: (*id).into(), hash: hash(d.as_bytes()), ..Default::default() })
            .collect();
        let current = vec![cur("a", "A"), cur("b", "B2"), cur("d", "D")];
        let p = plan(&current, &tracked, 4);
        let kinds: Vec<(PlannedKind, u64, &str)> =
            p.changes.iter().map(|c| (c.kind.clone(), c.luid, &*c.local_id)).collect();
        assert_eq!(
            kinds,
            vec![(PlannedKind::Replace, 2, "b"), (PlannedKind::Add, 4, "d"), (PlannedKind::Delete, 3, "c")]
        );
        assert_eq!(p.unchanged, 1);
        assert_eq!(p.all.len(), 3);
        assert_eq!(p.next_luid, 5);
    }

    #[test]
    fn luids_never_reused_even_if_counter_lags() {
        let tracked = vec![TrackedItem { luid: 9, source_id: "s".into(), local_id: "x".into(), hash: hash(b"X"), ..Default::default() }];
        let p = plan(&[CurrentItem::new("s".into(), "y".into(), b"Y".to_vec())], &tracked, 1);
        assert_eq!(p.changes[0].luid, 10);
    }

    #[test]
    fn same_local_id_in_two_sources_are_two_items() {
        let current = vec![
            CurrentItem::new("eds:a".into(), "1".into(), b"x".to_vec()),
            CurrentItem::new("eds:b".into(), "1".into(), b"x".to_vec()),
        ];
        let p = plan(&current, &[], 1);
        assert_eq!(p.changes.iter().map(|c| c.luid).collect::<Vec<_>>(), vec![1, 2]);
    }
}
