//! Request fingerprints: the same key with a different request is a conflict.

use finmesh_core::ProviderId;
use finmesh_core::model::NewTransfer;
use sha2::{Digest, Sha256};

/// A digest of an operation's name, provider and input fields. Fields are
/// length-prefixed so no two different inputs share a digest by concatenation.
pub fn fingerprint(operation: &str, provider: &ProviderId, fields: &[(&str, String)]) -> String {
    let mut hash = Sha256::new();
    for part in [operation, provider.as_str()]
        .into_iter()
        .chain(fields.iter().flat_map(|(k, v)| [*k, v.as_str()]))
    {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A transfer's fields in canonical form: `1.5` and `1.50` are the same amount.
pub(crate) fn transfer_fields(transfer: &NewTransfer) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("amount", transfer.amount.amount.normalize().to_string()),
        ("currency", transfer.amount.currency.to_string()),
        ("destination", transfer.destination_account.clone()),
    ];
    // BTreeMap iterates in key order, so the map is canonical too.
    for (key, value) in &transfer.metadata {
        fields.push(("metadata.key", key.clone()));
        fields.push(("metadata.value", value.clone()));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use finmesh_core::{Currency, Money};

    fn transfer(amount: &str, note: &str) -> NewTransfer {
        NewTransfer {
            amount: Money::new(amount.parse().unwrap(), Currency::USD),
            destination_account: "002002965".into(),
            metadata: [("note".to_string(), note.to_string())].into(),
        }
    }

    #[test]
    fn equal_requests_share_a_fingerprint_and_different_ones_do_not() {
        let bongloy = ProviderId::new("bongloy").unwrap();
        let fp = |t: &NewTransfer| fingerprint("createTransfer", &bongloy, &transfer_fields(t));
        assert_eq!(fp(&transfer("1.5", "a")), fp(&transfer("1.50", "a")));
        assert_ne!(fp(&transfer("1.5", "a")), fp(&transfer("1.51", "a")));
        assert_ne!(fp(&transfer("1.5", "a")), fp(&transfer("1.5", "b")));
        assert_ne!(
            fingerprint("x", &bongloy, &[("a", "bc".into())]),
            fingerprint("x", &bongloy, &[("ab", "c".into())])
        );
    }
}
