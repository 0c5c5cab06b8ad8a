//! Notices that a provider's data changed upstream, told by the platform
//! itself (a webhook event) rather than found out by asking. Whatever keeps
//! copies of provider data (the response cache) subscribes and drops what
//! went stale; the counts make the notices observable in tests and logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;

use crate::id::ProviderId;

/// Which part of a provider's data changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeScope {
    /// Public marketplace listings (loans, auctions): a loan was published,
    /// filled or withdrawn.
    Marketplace,
}

/// One notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub provider: ProviderId,
    pub scope: ChangeScope,
    /// What told us, for logs, e.g. `webhook:15848b4e-…`.
    pub source: String,
}

/// Reacts to notices, e.g. by invalidating cached pages. Called once per
/// notice, in the order notices are sent; a slow listener delays the sender
/// (webhook processing), never a request.
#[async_trait]
pub trait ChangeListener: Send + Sync + 'static {
    async fn changed(&self, change: &Change);
}

/// Fans notices out to every listener and counts them per provider and
/// scope. Cheap to clone: clones share listeners and counts.
#[derive(Clone, Default)]
pub struct Changes {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    listeners: RwLock<Vec<Arc<dyn ChangeListener>>>,
    counts: Mutex<HashMap<(ProviderId, ChangeScope), u64>>,
}

impl Changes {
    /// Adds a listener for every later notice.
    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) {
        self.inner
            .listeners
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(listener);
    }

    /// Counts the notice, then tells every listener.
    pub async fn notify(&self, change: Change) {
        *self
            .inner
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry((change.provider.clone(), change.scope))
            .or_default() += 1;
        tracing::debug!(provider = %change.provider, scope = ?change.scope, source = change.source, "provider data changed");
        // Cloned out so that no lock is held across a listener's await.
        let listeners = self
            .inner
            .listeners
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        for listener in listeners {
            listener.changed(&change).await;
        }
    }

    /// How many notices of `scope` were sent for `provider` so far.
    pub fn count(&self, provider: &ProviderId, scope: ChangeScope) -> u64 {
        self.inner
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&(provider.clone(), scope))
            .copied()
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Mutex<Vec<Change>>);

    #[async_trait]
    impl ChangeListener for Recorder {
        async fn changed(&self, change: &Change) {
            self.0.lock().unwrap().push(change.clone());
        }
    }

    #[tokio::test]
    async fn notices_reach_every_listener_and_are_counted() {
        let changes = Changes::default();
        let (a, b) = (
            Arc::new(Recorder(Mutex::new(Vec::new()))),
            Arc::new(Recorder(Mutex::new(Vec::new()))),
        );
        changes.subscribe(a.clone());
        changes.clone().subscribe(b.clone());
        let bondora = ProviderId::new("bondora").unwrap();
        let change = Change {
            provider: bondora.clone(),
            scope: ChangeScope::Marketplace,
            source: "webhook:1".into(),
        };
        changes.notify(change.clone()).await;
        changes.notify(change.clone()).await;
        assert_eq!(changes.count(&bondora, ChangeScope::Marketplace), 2);
        let zonky = ProviderId::new("zonky").unwrap();
        assert_eq!(changes.count(&zonky, ChangeScope::Marketplace), 0);
        assert_eq!(*a.0.lock().unwrap(), vec![change.clone(), change.clone()]);
        assert_eq!(b.0.lock().unwrap().len(), 2);
    }
}
