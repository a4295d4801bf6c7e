//! [`Promise`]: what a member says about the pool behind it — the settings
//! its answers depend on (model, dimensions, maximum length, pooling,
//! normalisation, task, tokenizer…) and names that are only shown (its
//! node). A member sends it once, when a router first asks
//! ([`crate::wire::encode_describe`]); a router that was given an
//! expectation ([`crate::ClusterConfig::expect`]) routes to the member
//! only when every key it expects has the same value in the promise, and
//! otherwise keeps it out of routing with the reason
//! ([`Promise::disagreement`]), logged and reported
//! ([`crate::MemberInfo::refused`]) — never silently mixed in.
//!
//! This crate knows no task: keys and values are strings a capability
//! chooses (corral-server's `promise_of` writes the embedding ones). Keys
//! a router does not expect are not compared, so a member may say more
//! than a router asks.

use std::collections::BTreeMap;

use crate::wire::{put_len, put_str, Limits, Reader, Wire, WireError};

/// The key naming a member's node: shown, never compared by routers that
/// leave it out of their expectation (as they should).
pub const NODE_KEY: &str = "node";

/// Settings and names as string pairs, ordered by key; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Promise(BTreeMap<String, String>);

impl Promise {
    /// An empty promise (a member that says nothing agrees only with a
    /// router that expects nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// The promise with `key` set to `value`.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.0.insert(key.into(), value.to_string());
        self
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: impl Into<String>, value: impl ToString) {
        self.0.insert(key.into(), value.to_string());
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The promise without `key`.
    #[must_use]
    pub fn without(mut self, key: &str) -> Self {
        self.0.remove(key);
        self
    }

    /// Every pair, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Why a member promising `member` must not be routed to by a router
    /// expecting `self`: every expected key whose value differs or is
    /// missing, as `key: member has A, expected B`, joined by `; `. `None`
    /// when they agree on every key of `self`.
    pub fn disagreement(&self, member: &Promise) -> Option<String> {
        let reasons: Vec<String> = self
            .0
            .iter()
            .filter_map(|(key, want)| match member.get(key) {
                Some(have) if have == want => None,
                Some(have) => Some(format!("{key}: member has {have}, expected {want}")),
                None => Some(format!("{key}: member does not say, expected {want}")),
            })
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

/// A `u32` count of pairs (≤ [`Limits::max_items`]), then each key and
/// value as strings.
impl Wire for Promise {
    const MIN_LEN: usize = 4;

    fn encode(&self, out: &mut Vec<u8>) {
        let n = put_len(out, self.0.len());
        for (k, v) in self.0.iter().take(n) {
            put_str(out, k);
            put_str(out, v);
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        let n = r.length("promise pairs", limits.max_items, 8)?;
        let mut map = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..n {
            let key = r.string("promise key", limits.max_item_bytes)?;
            let value = r.string("promise value", limits.max_item_bytes)?;
            // Strictly ordered, as `encode` writes them: one form per value.
            if last.as_ref().is_some_and(|l| *l >= key) {
                return Err(WireError::Invalid(format!(
                    "promise key {key:?} out of order or repeated"
                )));
            }
            last = Some(key.clone());
            map.insert(key, value);
        }
        Ok(Self(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promise(pairs: &[(&str, &str)]) -> Promise {
        pairs
            .iter()
            .fold(Promise::new(), |p, (k, v)| p.with(*k, *v))
    }

    #[test]
    fn agreement_is_on_the_expected_keys_only() {
        let expected = promise(&[("dimensions", "384"), ("normalize", "false")]);
        let member = promise(&[
            ("dimensions", "384"),
            ("normalize", "false"),
            (NODE_KEY, "a"),
        ]);
        assert_eq!(expected.disagreement(&member), None);
        assert_eq!(Promise::new().disagreement(&member), None);
    }

    #[test]
    fn every_differing_or_missing_key_is_named() {
        let expected = promise(&[
            ("dimensions", "384"),
            ("normalize", "false"),
            ("pooling", "mean"),
        ]);
        let member = promise(&[("dimensions", "384"), ("normalize", "true")]);
        assert_eq!(
            expected.disagreement(&member).as_deref(),
            Some(
                "normalize: member has true, expected false; \
                 pooling: member does not say, expected mean"
            )
        );
    }

    #[test]
    fn round_trips_and_refuses_disorder() {
        let p = promise(&[("b", "2"), ("a", "1"), ("c", "")]);
        let mut bytes = Vec::new();
        p.encode(&mut bytes);
        let limits = Limits::default();
        let mut r = Reader::new(&bytes);
        assert_eq!(Promise::decode(&mut r, &limits), Ok(p));
        r.finish().unwrap();
        // Two pairs written out of order.
        let mut bad = Vec::new();
        put_len(&mut bad, 2);
        for s in ["b", "2", "a", "1"] {
            put_str(&mut bad, s);
        }
        assert!(matches!(
            Promise::decode(&mut Reader::new(&bad), &limits),
            Err(WireError::Invalid(_))
        ));
        // A count the bytes cannot hold.
        let mut huge = Vec::new();
        put_len(&mut huge, 1_000_000);
        assert!(Promise::decode(&mut Reader::new(&huge), &limits).is_err());
    }
}
