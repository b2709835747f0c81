//! What a syncer keeps of each of its copies downstream: what it compares,
//! not the copy (issue #16).
//!
//! Of its own copy the syncer reads the name and namespace (which object it
//! is), the deletion timestamp, the uid (the precondition of a delete), the
//! status (copied up to the leaf) and, to tell whether the copy already is
//! what it would apply ([`spec::is_up_to_date`]), its labels, annotations
//! (the applied hash) and content. That last question is asked of every
//! copy on every sync, but its answer changes only when the copy or the
//! desired object does: so a record keeps the rest of the copy as compact
//! JSON text only until a sync has compared it once, then only the hash of
//! the applied hash it was found up to date with ([`CopyRecord::verify`]).
//! A later sync with the same applied hash needs no content: the desired
//! object is the same (the applied hash is the hash of all of it), and so
//! is the copy (a changed copy is a new record, with its text, from the
//! watch).
//!
//! A new version of a copy that differs from the last one only in what the
//! syncer does not compare (its status, resourceVersion, managedFields)
//! keeps its verification ([`CopyRecord::digest`]): the watch's router
//! carries it over, and the version a sync applied itself is verified from
//! the apply's response, so neither is parsed again. The text is there
//! again after a restart or a relist (every record comes from the list,
//! unverified): the resync that follows compares each copy once, from the
//! text, without a read.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::spec;
use crate::labels;

/// One copy downstream as a syncer's cache keeps it (see the module docs).
#[derive(Debug)]
pub struct CopyRecord {
    /// The name, namespace and deletion timestamp (and, until
    /// [`CopyRecord::forget_version`], the resourceVersion the watch reads).
    pub metadata: ObjectMeta,
    /// The uid: the precondition of a delete.
    uid: Option<Box<str>>,
    /// The hash of what the syncer compares (the text below): equal for two
    /// versions that differ only in their status or bookkeeping.
    digest: u64,
    /// `status` as compact JSON, when the copy has one.
    status: Option<Box<str>>,
    /// The mark ([`applied_mark`]) of the desired object the copy was last
    /// found to be; 0 until then.
    verified: AtomicU64,
    /// The object but its status and bookkeeping, as compact JSON, until
    /// the copy is verified.
    body: Mutex<Option<Box<str>>>,
}

/// The mark of `desired` (an object the syncer would apply): the hash of its
/// applied-hash annotation, never 0; `None` without one.
pub fn applied_mark(desired: &Value) -> Option<u64> {
    spec::applied_hash(desired).map(|h| crate::hash::of(h) | 1)
}

impl CopyRecord {
    /// The copy's uid.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// The hash of what the syncer compares of this version of the copy.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The mark the copy was last verified with (0: not yet).
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// Whether the text is still kept (not verified yet).
    pub fn has_body(&self) -> bool {
        self.body
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The copy was found to be the desired object marked `mark`: keep that,
    /// drop the text.
    pub fn verify(&self, mark: u64) {
        self.verified.store(mark, Ordering::Relaxed);
        self.body.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Drops the resourceVersion once the watch has read it: the syncer
    /// never reads it, and the store's key keeps a copy of it too.
    pub fn forget_version(&mut self) {
        self.metadata.resource_version = None;
    }

    /// The copy's status as an object `{"status": ...}` (empty without
    /// one), as [`super::status::status_update`] reads a copy.
    pub fn status_object(&self) -> Value {
        let mut out = serde_json::Map::new();
        if let Some(status) = self
            .status
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
        {
            out.insert("status".into(), status);
        }
        Value::Object(out)
    }

    /// Whether the copy already is `desired` ([`spec::is_up_to_date`]):
    /// from the verification when it was made with `desired`'s mark, else
    /// from the text, verifying the copy when it is. Without the text, the
    /// copy was verified with another mark: it carries another applied hash
    /// than `desired`, so it is not.
    pub fn is_up_to_date(&self, desired: &Value) -> bool {
        let Some(mark) = applied_mark(desired) else {
            return false;
        };
        if self.verified() == mark {
            return true;
        }
        let body = self.body.lock().unwrap_or_else(|p| p.into_inner());
        let Some(actual) = body.as_deref().and_then(|b| serde_json::from_str(b).ok()) else {
            return false;
        };
        drop(body);
        let up_to_date = spec::is_up_to_date(desired, &actual);
        if up_to_date {
            self.verify(mark);
        }
        up_to_date
    }
}

/// The metadata the syncer compares: all but bookkeeping that changes
/// without the copy changing (and what the watch drops anyway).
fn compared_metadata(metadata: &ObjectMeta) -> ObjectMeta {
    let mut compared = metadata.clone();
    compared.resource_version = None;
    compared.managed_fields = None;
    compared.self_link = None;
    if let Some(annotations) = compared.annotations.as_mut() {
        annotations.remove(labels::KUBECTL_LAST_APPLIED_ANNOTATION);
    }
    compared
}

impl From<DynamicObject> for CopyRecord {
    fn from(object: DynamicObject) -> Self {
        let DynamicObject { metadata, data, .. } = object;
        let mut fields = match data {
            Value::Object(fields) => fields,
            _ => serde_json::Map::new(),
        };
        let status = fields
            .remove("status")
            .filter(|s| !s.is_null())
            .map(|s| s.to_string().into_boxed_str());
        // ObjectMeta serializes to an object: the fallback cannot happen.
        let compared = serde_json::to_value(compared_metadata(&metadata)).unwrap_or(Value::Null);
        fields.insert("metadata".into(), compared);
        let body = Value::Object(fields).to_string();
        let kept = ObjectMeta {
            name: metadata.name,
            namespace: metadata.namespace,
            deletion_timestamp: metadata.deletion_timestamp,
            resource_version: metadata.resource_version,
            ..ObjectMeta::default()
        };
        Self {
            metadata: kept,
            uid: metadata.uid.map(String::into_boxed_str),
            digest: crate::hash::of(&body),
            status,
            verified: AtomicU64::new(0),
            body: Mutex::new(Some(body.into_boxed_str())),
        }
    }
}

impl<'de> Deserialize<'de> for CopyRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DynamicObject::deserialize(deserializer).map(Self::from)
    }
}

impl Clone for CopyRecord {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            uid: self.uid.clone(),
            digest: self.digest,
            status: self.status.clone(),
            verified: AtomicU64::new(self.verified()),
            body: Mutex::new(self.body.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }
}

super::cached::dynamic_resource!(CopyRecord);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn leaf() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web--east", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web"}},
            "spec": {"rules": [{"host": "web.example.test"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.1.1"}]}}
        })
    }

    fn desired() -> Value {
        spec::downstream_object(&leaf(), "networking.k8s.io/v1", "Ingress", "east").unwrap()
    }

    /// The copy the cluster holds after applying `desired`: its fields,
    /// bookkeeping and defaults, and a status.
    fn copy(desired: &Value) -> Value {
        let mut copy = desired.clone();
        let meta = &mut copy["metadata"];
        meta["uid"] = json!("d-1");
        meta["resourceVersion"] = json!("7");
        meta["generation"] = json!(1);
        meta["managedFields"] = json!([{"manager": "kcp-ingress-syncer-east"}]);
        copy["spec"]["rules"][0]["http"] = json!({"paths": []});
        copy["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}});
        copy
    }

    fn record(object: Value) -> CopyRecord {
        serde_json::from_value(object).unwrap()
    }

    #[test]
    fn a_record_keeps_what_the_syncer_reads() {
        let mut r = record(copy(&desired()));
        assert_eq!(r.metadata.name.as_deref(), Some("web--east"));
        assert_eq!(r.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(r.metadata.resource_version.as_deref(), Some("7"));
        r.forget_version();
        assert_eq!(r.metadata.resource_version, None);
        assert_eq!(r.metadata.labels, None);
        assert_eq!(r.uid(), Some("d-1"));
        assert_eq!(
            r.status_object(),
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}})
        );
        let mut no_status = copy(&desired());
        no_status.as_object_mut().unwrap().remove("status");
        assert_eq!(record(no_status).status_object(), json!({}));
    }

    #[test]
    fn a_copy_is_compared_once_then_known_by_its_mark() {
        let want = desired();
        let r = record(copy(&want));
        assert!(r.has_body());
        assert!(r.is_up_to_date(&want));
        assert!(!r.has_body(), "verified: the text goes");
        assert_eq!(Some(r.verified()), applied_mark(&want));
        assert!(r.is_up_to_date(&want), "known without the text");
        // The leaf changed: another applied hash, so not up to date.
        let mut edited = leaf();
        edited["spec"]["rules"][0]["host"] = json!("other.example.test");
        let other =
            spec::downstream_object(&edited, "networking.k8s.io/v1", "Ingress", "east").unwrap();
        assert!(!r.is_up_to_date(&other));
    }

    #[test]
    fn a_copy_edited_downstream_is_not_up_to_date_and_stays_unverified() {
        let want = desired();
        let mut edited = copy(&want);
        edited["spec"]["rules"][0]["host"] = json!("hijacked.example.test");
        let r = record(edited);
        assert!(!r.is_up_to_date(&want));
        assert!(r.has_body());
        assert_eq!(r.verified(), 0);
        let mut unmarked = want.clone();
        unmarked["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(labels::APPLIED_HASH_ANNOTATION);
        assert!(!record(copy(&want)).is_up_to_date(&unmarked));
    }

    #[test]
    fn the_digest_follows_what_is_compared_only() {
        let want = desired();
        let base = record(copy(&want)).digest();
        let mut status_changed = copy(&want);
        status_changed["status"] = json!({"loadBalancer": {}});
        status_changed["metadata"]["resourceVersion"] = json!("8");
        status_changed["metadata"]["managedFields"] = json!([{"manager": "lb"}]);
        assert_eq!(record(status_changed).digest(), base);
        let mut label_changed = copy(&want);
        label_changed["metadata"]["labels"]["extra"] = json!("x");
        assert_ne!(record(label_changed).digest(), base);
        let mut spec_changed = copy(&want);
        spec_changed["spec"]["rules"][0]["http"] = json!({"paths": [{"path": "/"}]});
        assert_ne!(record(spec_changed).digest(), base);
    }

    #[test]
    fn a_clone_keeps_the_verification() {
        let want = desired();
        let r = record(copy(&want));
        let before = r.clone();
        assert!(before.has_body());
        r.verify(5);
        let after = r.clone();
        assert_eq!((after.verified(), after.has_body()), (5, false));
    }

    #[test]
    fn bad_content_gives_an_unverifiable_record() {
        let r = record(json!({"metadata": {"name": "a", "namespace": "b"}, "spec": 1}));
        assert_eq!(r.status_object(), json!({}));
        assert!(!r.is_up_to_date(&desired()));
    }
}
