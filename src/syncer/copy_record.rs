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

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::DynamicObject;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::spec;
use crate::labels;
use crate::runtime::lazy_meta::LazyMeta;
use crate::runtime::names::Layout;

/// One copy downstream as a syncer's cache keeps it (see the module docs).
///
/// Its `ObjectMeta` (`Resource::meta`, which kube-runtime's watcher and
/// store read) is built from the fields below only when asked for, and a
/// clone (what the store keeps) does not carry it ([`LazyMeta`]); the
/// syncer reads the fields through [`CopyRecord::name`] and the like.
pub struct CopyRecord {
    /// The namespace and the name as one text (`runtime::names`).
    names: Box<str>,
    names_layout: Layout,
    /// Boxed: only a copy being deleted has one (8 bytes, not 24).
    deletion_timestamp: Option<Box<Time>>,
    /// What the watch reads, until [`CopyRecord::forget_version`].
    resource_version: Option<Box<str>>,
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
    /// The `ObjectMeta` of `Resource::meta`, built when first asked for.
    meta: LazyMeta,
}

/// The mark of `desired` (an object the syncer would apply): the hash of its
/// applied-hash annotation, never 0; `None` without one.
pub fn applied_mark(desired: &Value) -> Option<u64> {
    spec::applied_hash(desired).map(|h| crate::hash::of(h) | 1)
}

impl CopyRecord {
    /// The copy's name (read without building the `ObjectMeta`).
    pub fn name(&self) -> Option<&str> {
        self.meta.field(self.own_names().1, |m| m.name.as_deref())
    }

    /// The copy's namespace.
    pub fn namespace(&self) -> Option<&str> {
        self.meta
            .field(self.own_names().0, |m| m.namespace.as_deref())
    }

    /// The copy's own namespace and name (not an edited meta's).
    fn own_names(&self) -> (Option<&str>, Option<&str>) {
        self.names_layout.split(&self.names)
    }

    /// The copy's deletion timestamp.
    pub fn deletion_timestamp(&self) -> Option<&Time> {
        self.meta.field(self.deletion_timestamp.as_deref(), |m| {
            m.deletion_timestamp.as_ref()
        })
    }

    /// The resourceVersion, until [`CopyRecord::forget_version`].
    pub fn resource_version(&self) -> Option<&str> {
        self.meta.field(self.resource_version.as_deref(), |m| {
            m.resource_version.as_deref()
        })
    }

    /// Whether `Resource::meta` built its `ObjectMeta` (for tests: a
    /// stored record should hold none).
    pub fn meta_built(&self) -> bool {
        self.meta.is_built()
    }

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
        self.resource_version = None;
        match self.meta.edited_mut() {
            Some(meta) => meta.resource_version = None,
            // The watch built it to read the resourceVersion: forget it too.
            None => self.meta.reset(),
        }
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
        let box_str = |s: Option<String>| s.map(String::into_boxed_str);
        let (names, names_layout) =
            Layout::join(metadata.namespace.as_deref(), metadata.name.as_deref());
        Self {
            names,
            names_layout,
            deletion_timestamp: metadata.deletion_timestamp.map(Box::new),
            resource_version: box_str(metadata.resource_version),
            uid: metadata.uid.map(String::into_boxed_str),
            digest: crate::hash::of(&body),
            status,
            verified: AtomicU64::new(0),
            body: Mutex::new(Some(body.into_boxed_str())),
            meta: LazyMeta::default(),
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
            names: self.names.clone(),
            names_layout: self.names_layout,
            deletion_timestamp: self.deletion_timestamp.clone(),
            resource_version: self.resource_version.clone(),
            uid: self.uid.clone(),
            digest: self.digest,
            status: self.status.clone(),
            verified: AtomicU64::new(self.verified()),
            body: Mutex::new(self.body.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            meta: self.meta.clone(),
        }
    }
}

impl std::fmt::Debug for CopyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyRecord")
            .field("name", &self.name())
            .field("namespace", &self.namespace())
            .field("deletion_timestamp", &self.deletion_timestamp())
            .field("resource_version", &self.resource_version())
            .field("uid", &self.uid)
            .field("digest", &self.digest)
            .field("status", &self.status)
            .field("verified", &self.verified())
            .field("has_body", &self.has_body())
            .finish()
    }
}

super::cached::dynamic_resource!(CopyRecord, meta = built_meta, meta_mut = edited_meta);

impl CopyRecord {
    /// `Resource::meta`: built on the first call (the watcher reads the
    /// resourceVersion, the store its key) and not carried over by a
    /// clone: a record in the store holds none (see [`LazyMeta`]).
    fn built_meta(&self) -> &ObjectMeta {
        self.meta.get_or_build(|| {
            Self::build_meta(
                self.own_names(),
                &self.deletion_timestamp,
                &self.resource_version,
            )
        })
    }

    /// `Resource::meta_mut`: builds the `ObjectMeta` too, which from then
    /// on is the record's: the accessors read its name, namespace,
    /// deletion timestamp and resourceVersion, and a clone carries it.
    /// Nothing calls it (the syncer edits a record through
    /// [`CopyRecord::forget_version`]).
    fn edited_meta(&mut self) -> &mut ObjectMeta {
        let names = self.names_layout.split(&self.names);
        let Self {
            deletion_timestamp,
            resource_version,
            meta,
            ..
        } = self;
        meta.edit(|| Self::build_meta(names, deletion_timestamp, resource_version))
    }

    /// The `ObjectMeta` of `Resource::meta`: the fields above, and nothing
    /// else.
    fn build_meta(
        (namespace, name): (Option<&str>, Option<&str>),
        deletion_timestamp: &Option<Box<Time>>,
        resource_version: &Option<Box<str>>,
    ) -> ObjectMeta {
        ObjectMeta {
            name: name.map(str::to_string),
            namespace: namespace.map(str::to_string),
            deletion_timestamp: deletion_timestamp.as_deref().cloned(),
            resource_version: resource_version.as_deref().map(str::to_string),
            ..ObjectMeta::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::Resource;
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
        assert_eq!(r.name(), Some("web--east"));
        assert_eq!(r.namespace(), Some("shop"));
        assert_eq!(r.resource_version(), Some("7"));
        assert_eq!(r.deletion_timestamp(), None);
        // What the watch reads of it (the resourceVersion) builds the
        // metadata; forgetting the version forgets that too.
        assert_eq!(r.meta().resource_version.as_deref(), Some("7"));
        assert!(r.meta_built());
        r.forget_version();
        assert!(!r.meta_built());
        assert_eq!(r.resource_version(), None);
        assert_eq!(r.meta().resource_version, None);
        assert_eq!(r.meta().name.as_deref(), Some("web--east"));
        assert_eq!(r.meta().labels, None);
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
    fn a_store_fed_as_the_watch_does_holds_records_without_metadata() {
        use kube::api::ApiResource;
        use kube::runtime::reflector::{ObjectRef, store::Writer};
        use kube::runtime::watcher::Event;
        let ar = std::sync::Arc::new(ApiResource::erase::<
            k8s_openapi::api::networking::v1::Ingress,
        >(&()));
        let mut writer = Writer::<CopyRecord>::new(ar.clone());
        // The watcher reads the resourceVersion, the watch forgets it
        // (`Watch::slim`), the writer reads the key and keeps a clone.
        let mut r = record(copy(&desired()));
        assert_eq!(r.meta().resource_version.as_deref(), Some("7"));
        r.forget_version();
        let event = Event::Apply(r);
        writer.apply_watcher_event(&event);
        let key = ObjectRef::new_with("web--east", ar).within("shop");
        let stored = writer.as_reader().get(&key).unwrap();
        assert!(!stored.meta_built());
        assert_eq!(stored.name(), Some("web--east"));
        assert!(stored.is_up_to_date(&desired()));
        assert!(!stored.meta_built());
    }

    #[test]
    fn an_edit_through_meta_mut_is_the_records_and_is_kept() {
        let mut r = record(copy(&desired()));
        r.meta_mut().namespace = Some("other".into());
        r.forget_version();
        for r in [&r, &r.clone()] {
            assert_eq!(r.namespace(), Some("other"));
            assert_eq!(r.resource_version(), None);
            assert_eq!(r.meta().namespace.as_deref(), Some("other"));
        }
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
