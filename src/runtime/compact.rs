//! A typed object kept compactly in a watch's store (issue #16, memory):
//! what the store's key and the routing read typed (name, namespace and
//! deletion timestamp, as fields of its own), everything else as one
//! compact JSON text, parsed back into the typed object
//! ([`Compact::typed`]) only where a reconcile reads it, never in a loop
//! over the store.
//!
//! A typed k8s-openapi object is a large struct (an `ObjectMeta` alone is
//! 360 bytes inline) with 20 to 40 allocations, every `BTreeMap` of labels
//! or annotations a node with room for eleven entries whatever its count;
//! its JSON text is one allocation of about its size on the wire. The
//! `apiVersion` and `kind`, the same for every object of the store, are
//! left out of the text and put back when it is parsed.
//!
//! Unlike the syncer's `Cached` (a type known only at run time), the type
//! is known here: the text parses straight into `K`.
//!
//! The uid and resourceVersion stay in the text: the store's key would
//! copy them (kube-runtime's `ObjectRef` keeps both, though it neither
//! hashes nor compares them), two strings each per object, and what
//! reads them (a delete's preconditions, a status compared) reads the
//! typed object anyway.
//!
//! The `ObjectMeta` that `Resource::meta` hands out is built only when
//! asked for and is not carried over by a clone ([`LazyMeta`]): the store
//! asks for it on the event's object (its key), then keeps a clone,
//! without it. Code over a store reads [`Compact::name`],
//! [`Compact::namespace`] and [`Compact::deletion_timestamp`] (or
//! `runtime::stored::Stored`'s accessors), not `meta()`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::core::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::lazy_meta::LazyMeta;
use super::names::Layout;
use crate::labels;

/// An object of type `K` as a store keeps it compactly (see the module
/// docs). Of its metadata it keeps the name, namespace and deletion
/// timestamp typed; read the rest (uid and resourceVersion included) with
/// [`Compact::typed`].
pub struct Compact<K> {
    /// The namespace and the name as one text, `<namespace><name>`: one
    /// allocation, not two (session 13); where the name starts and which
    /// of the two the object has is `names_layout`.
    names: Box<str>,
    names_layout: Layout,
    /// Boxed: only an object being deleted has one (8 bytes, not 24).
    deletion_timestamp: Option<Box<Time>>,
    /// The object without the metadata fields above, as compact JSON (an
    /// object), without its `apiVersion` and `kind` when they led it.
    body: Box<str>,
    /// Where the values of the kept labels of [`IN_NAME`] are read when
    /// the name spells them (see [`NameSpan`]): nothing allocated.
    in_name: [NameSpan; IN_NAME.len()],
    /// The values of the other kept labels and annotations the object has
    /// ([`Compact::keeping`]), boxed (nothing allocated when there is
    /// none; a thin pointer, so that the spans above fit beside it), not
    /// as maps (a `BTreeMap` node is about 540 bytes, whatever its count).
    kept: Option<Box<KeptTexts>>,
    /// The `ObjectMeta` of `Resource::meta`, built from the fields above
    /// when first asked for (see [`LazyMeta`]).
    meta: LazyMeta,
    kind: PhantomData<fn() -> K>,
}

/// The kept values a compact object holds as texts (see `Compact::kept`).
type KeptTexts = Box<[(Kept, Box<str>)]>;

/// A label or annotation a compact object keeps typed beside its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Label(&'static str),
    Annotation(&'static str),
}

/// What the routing reads of every root and leaf in a store, on every
/// Cluster change and health flip: whether an object is a leaf and whose
/// (its root labels), and a root's placement selector.
pub const KEPT: [Kept; 3] = [
    Kept::Label(labels::ROOT_LABEL),
    Kept::Label(labels::ROOT_NAMESPACE_LABEL),
    Kept::Annotation(labels::PLACEMENT_ANNOTATION),
];

/// The kept labels whose values a leaf's name spells: a leaf the
/// controller names is `<root namespace>.<root>--<cluster>`
/// (`controller::naming::leaf_key`), so its root and root-namespace
/// labels are parts of its name, and a compact leaf keeps where they are
/// in it ([`NameSpan`]) rather than copies of them (session 13: about 140
/// bytes and 3 allocations less per leaf).
pub const IN_NAME: [Kept; 2] = [
    Kept::Label(labels::ROOT_LABEL),
    Kept::Label(labels::ROOT_NAMESPACE_LABEL),
];

/// Where in the object's own name (as stored, never an edited one) a kept
/// value is: `len` bytes from `start`; `len` 0 is none (an empty value is
/// kept as a text). Nothing is parsed: the span is found by searching
/// the name for the value when the object is compacted, so it reads
/// exactly the label it replaces, whatever the name (a user's object with
/// the label whose name does not spell it keeps the value as a text).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct NameSpan {
    start: u8,
    len: u8,
}

impl NameSpan {
    /// Where `value` is in `name`, if it is and the span fits.
    fn find(name: &str, value: &str) -> Option<Self> {
        let start = name.find(value)?;
        Some(Self {
            start: u8::try_from(start).ok()?,
            len: u8::try_from(value.len()).ok().filter(|l| *l > 0)?,
        })
    }

    /// The value in `name` (`None` for no span, or one that does not fit
    /// the name: it cannot happen, the name it was found in is kept).
    fn read(self, name: Option<&str>) -> Option<&str> {
        let start = usize::from(self.start);
        (self.len > 0).then_some(())?;
        name?.get(start..start + usize::from(self.len))
    }
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Self {
            names: self.names.clone(),
            names_layout: self.names_layout,
            deletion_timestamp: self.deletion_timestamp.clone(),
            body: self.body.clone(),
            in_name: self.in_name,
            kept: self.kept.clone(),
            meta: self.meta.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("name", &self.name())
            .field("namespace", &self.namespace())
            .field("deletion_timestamp", &self.deletion_timestamp())
            .field("body", &self.body)
            .field("in_name", &self.in_name)
            .field("kept", &self.kept)
            .finish()
    }
}

impl<K> Compact<K>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned,
{
    /// `object`, compacted. A text that cannot be written (it cannot
    /// happen for the API's types: every map key is a string) leaves an
    /// empty body, which [`Compact::typed`] reports as an error.
    pub fn new(object: &K) -> Self {
        Self::from_rest(object.clone())
    }

    /// `rest`, compacted (see [`Compact::new`]).
    fn from_rest(mut rest: K) -> Self {
        let meta = rest.meta_mut();
        let (names, names_layout) = Layout::join(
            meta.namespace.take().as_deref(),
            meta.name.take().as_deref(),
        );
        let deletion_timestamp = meta.deletion_timestamp.take().map(Box::new);
        let body = match serde_json::to_string(&rest) {
            Ok(text) => match text.strip_prefix(type_prefix::<K>().as_str()) {
                Some(tail) => format!("{{{tail}"),
                None => text,
            },
            Err(_) => String::new(),
        };
        Self {
            names,
            names_layout,
            deletion_timestamp,
            body: body.into_boxed_str(),
            in_name: Default::default(),
            kept: None,
            meta: LazyMeta::default(),
            kind: PhantomData,
        }
    }

    /// Like [`Compact::new`], keeping the labels and annotations of
    /// `kept` the object has typed beside the text ([`Compact::kept`]),
    /// and out of the text (put back by [`Compact::typed`]): the values of
    /// [`IN_NAME`] the name spells as where they are in it, the others as
    /// texts.
    pub fn keeping(object: &K, kept: &[Kept]) -> Self {
        let mut rest = object.clone();
        let meta = rest.meta_mut();
        let name = meta.name.clone().unwrap_or_default();
        let mut in_name = [NameSpan::default(); IN_NAME.len()];
        let mut values: Vec<(Kept, Box<str>)> = Vec::new();
        for k in kept {
            let map = match k {
                Kept::Label(_) => &mut meta.labels,
                Kept::Annotation(_) => &mut meta.annotations,
            };
            let (Kept::Label(key) | Kept::Annotation(key)) = *k;
            let Some(value) = map.as_mut().and_then(|m| m.remove(key)) else {
                continue;
            };
            if map.as_ref().is_some_and(|m| m.is_empty()) {
                *map = None;
            }
            let span = IN_NAME
                .iter()
                .position(|n| n == k)
                .and_then(|i| Some((i, NameSpan::find(&name, &value)?)));
            match span {
                Some((i, span)) => in_name[i] = span,
                None => values.push((*k, value.into_boxed_str())),
            }
        }
        Self {
            in_name,
            kept: (!values.is_empty()).then(|| Box::new(values.into_boxed_slice())),
            ..Self::from_rest(rest)
        }
    }

    /// The typed object, parsed from the text (one allocation tree per
    /// call: read it where a reconcile needs it, not over the whole store).
    pub fn typed(&self) -> Result<K, serde_json::Error> {
        let text: Cow<'_, str> = match self.body.strip_prefix('{') {
            Some(tail) if !self.body.starts_with("{\"apiVersion\"") => {
                Cow::Owned(format!("{}{tail}", type_prefix::<K>()))
            }
            _ => Cow::Borrowed(&self.body),
        };
        let mut object: K = serde_json::from_str(&text)?;
        let meta = object.meta_mut();
        for (key, value) in self.kept_values() {
            let map = match key {
                Kept::Label(_) => &mut meta.labels,
                Kept::Annotation(_) => &mut meta.annotations,
            };
            let (Kept::Label(key) | Kept::Annotation(key)) = key;
            map.get_or_insert_default()
                .insert(key.to_string(), value.to_string());
        }
        meta.name = self.name().map(str::to_string);
        meta.namespace = self.namespace().map(str::to_string);
        meta.deletion_timestamp = self.deletion_timestamp().cloned();
        Ok(object)
    }
}

impl<K> Compact<K> {
    /// The name (what the store's key reads; without building the
    /// `ObjectMeta`).
    pub fn name(&self) -> Option<&str> {
        self.meta.field(self.own_names().1, |m| m.name.as_deref())
    }

    /// The namespace (see [`Compact::name`]).
    pub fn namespace(&self) -> Option<&str> {
        self.meta
            .field(self.own_names().0, |m| m.namespace.as_deref())
    }

    /// The deletion timestamp (see [`Compact::name`]).
    pub fn deletion_timestamp(&self) -> Option<&Time> {
        self.meta.field(self.deletion_timestamp.as_deref(), |m| {
            m.deletion_timestamp.as_ref()
        })
    }

    /// Whether `Resource::meta` built its `ObjectMeta` (for tests: a
    /// stored object should hold none).
    pub fn meta_built(&self) -> bool {
        self.meta.is_built()
    }

    /// The object's own namespace and name (as compacted: not an edited
    /// meta's).
    fn own_names(&self) -> (Option<&str>, Option<&str>) {
        self.names_layout.split(&self.names)
    }

    /// The `ObjectMeta` of `Resource::meta`: the fields above, and nothing
    /// else.
    fn build_meta(
        (namespace, name): (Option<&str>, Option<&str>),
        deletion_timestamp: &Option<Box<Time>>,
    ) -> ObjectMeta {
        ObjectMeta {
            name: name.map(str::to_string),
            namespace: namespace.map(str::to_string),
            deletion_timestamp: deletion_timestamp.as_deref().cloned(),
            ..ObjectMeta::default()
        }
    }

    /// The same, with the text `body` (a test's broken text).
    #[cfg(test)]
    pub(crate) fn with_body(mut self, body: &str) -> Self {
        self.body = body.into();
        self
    }

    /// The value of the label or annotation `which`, when it was kept
    /// ([`Compact::keeping`]) and the object has it.
    pub fn kept(&self, which: Kept) -> Option<&str> {
        self.kept_values()
            .find(|(k, _)| *k == which)
            .map(|(_, v)| v)
    }

    /// Every kept value the object has: those its name spells, then the
    /// texts.
    fn kept_values(&self) -> impl Iterator<Item = (Kept, &str)> {
        let name = self.own_names().1;
        let spelled = IN_NAME
            .iter()
            .zip(self.in_name)
            .filter_map(move |(k, span)| Some((*k, span.read(name)?)));
        let texts = self.kept.iter().flat_map(|b| b.iter());
        spelled.chain(texts.map(|(k, v)| (*k, &**v)))
    }
}

/// How serde_json writes the start of an object of `K` (its `apiVersion`
/// and `kind` come first, then a comma: the text always has a metadata).
fn type_prefix<K: Resource<DynamicType = ()>>() -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "{{\"apiVersion\":{},\"kind\":{},",
        quoted(&K::api_version(&())),
        quoted(&K::kind(&()))
    )
}

impl<K: Resource> Resource for Compact<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    /// Built on the first call and kept until the object is dropped; a
    /// clone does not carry it (see [`LazyMeta`]): the stores keep clones,
    /// so an object in a store holds none.
    fn meta(&self) -> &ObjectMeta {
        self.meta
            .get_or_build(|| Self::build_meta(self.own_names(), &self.deletion_timestamp))
    }

    /// Builds the `ObjectMeta` too, which from then on is the object's:
    /// [`Compact::name`], [`Compact::namespace`],
    /// [`Compact::deletion_timestamp`] and [`Compact::typed`] read its
    /// fields, and a clone carries it. Its other fields are not part of
    /// the compact form (the text is): `typed` ignores them. Nothing
    /// calls it on a stored form (kube-runtime's store and controller
    /// do not; the watch edits the object as read, before compacting).
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        let names = self.names_layout.split(&self.names);
        let deletion = &self.deletion_timestamp;
        self.meta.edit(|| Self::build_meta(names, deletion))
    }
}

/// Reads `K` and compacts it (kube-runtime's controller asks its objects
/// to be deserializable; the stores are fed by a watch, not by this).
impl<'de, K> Deserialize<'de> for Compact<K>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::deserialize(deserializer).map(|object| Self::new(&object))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::ResourceExt;
    use serde_json::json;

    use super::*;
    use crate::apis::GlobalIngress;

    fn global() -> GlobalIngress {
        let mut global: GlobalIngress = serde_json::from_value(json!({
            "apiVersion": "kcp-ingress.dev/v1alpha1",
            "kind": "GlobalIngress",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
                         "resourceVersion": "42", "generation": 3,
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "deletionTimestamp": "2026-01-02T00:00:00Z",
                         "labels": {"a": "b"}, "finalizers": ["kcp-ingress.dev/dns"],
                         "ownerReferences": [{"apiVersion": "networking.k8s.io/v1",
                             "kind": "Ingress", "name": "web", "uid": "u-0",
                             "controller": true}]},
            "spec": {"hosts": ["web.example.com"],
                     "root": {"group": "networking.k8s.io", "kind": "Ingress", "name": "web"}},
            "status": {
                "observedGeneration": 2,
                "clusters": [{"cluster": "east", "healthy": true,
                              "addresses": [{"ip": "10.0.0.1"}],
                              "lastChangeTime": "2026-01-01T00:00:01Z"}],
                "dnsRecords": [{"name": "web.example.com.", "recordType": "A", "ttl": 60,
                                "targets": ["10.0.0.1"], "state": "Published"}],
                "lastPublishedTime": "2026-01-01T00:00:00Z",
                "probes": [{"cluster": "east", "address": "10.0.0.1", "passing": false}],
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Placed", "message": "m",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "DNSPublished", "status": "True", "reason": "Published",
                     "message": "long", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                ]
            }
        }))
        .unwrap();
        crate::controller::slim::global_ingress(&mut global);
        global
    }

    /// The derive gives a GlobalIngress no `PartialEq`: its parts have one.
    fn assert_same(a: &GlobalIngress, b: &GlobalIngress) {
        assert_eq!(a.metadata, b.metadata);
        assert_eq!(a.spec, b.spec);
        assert_eq!(a.status, b.status);
    }

    #[test]
    fn a_global_ingress_reads_back_as_it_was_stored() {
        let global = global();
        let compact = Compact::new(&global);
        assert_same(&compact.typed().unwrap(), &global);
        assert!(global.status.is_some() && global.metadata.owner_references.is_some());
        // What the store's key and the routing read is typed.
        assert_eq!(compact.name_any(), "web");
        assert_eq!(compact.namespace(), Some("shop"));
        assert!(compact.meta().deletion_timestamp.is_some());
        // The rest only in the text, without the type's name and group.
        assert_eq!(compact.uid(), None);
        assert_eq!(compact.resource_version(), None);
        assert!(compact.owner_references().is_empty());
        assert!(compact.labels().is_empty());
        assert!(!compact.body.contains("apiVersion\":\"kcp-ingress"));
    }

    #[test]
    fn an_ingress_reads_back_as_it_was_stored() {
        let ingress: Ingress = serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
                         "resourceVersion": "7", "labels": {"kcp-ingress.dev/root": "web"},
                         "annotations": {"x": "y"}, "finalizers": ["f"]},
            "spec": {"rules": [{"host": "a.example.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
        }))
        .unwrap();
        let compact = Compact::new(&ingress);
        assert!(
            compact.body.starts_with("{\"metadata\""),
            "{}",
            compact.body
        );
        assert_eq!(compact.typed().unwrap(), ingress);
        // A bare object (no metadata fields left) reads back too.
        let bare = Ingress::default();
        assert_eq!(Compact::new(&bare).typed().unwrap(), bare);
    }

    #[test]
    fn a_text_that_does_not_parse_is_an_error_not_a_panic() {
        let mut compact = Compact::new(&global());
        compact.body = "".into();
        assert!(compact.typed().is_err());
        compact.body = "{\"spec\":7}".into();
        assert!(compact.typed().is_err());
    }

    fn leaf(name: &str) -> Ingress {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "kcp-ingress-cluster-east",
                         "uid": "u-1", "resourceVersion": "7",
                         "deletionTimestamp": "2026-01-02T00:00:00Z",
                         "labels": {"kcp-ingress.dev/root": "web"}},
            "spec": {"rules": [{"host": "a.example.test"}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_fields_read_without_building_the_metadata() {
        let compact = Compact::keeping(&leaf("web--shop"), &KEPT);
        assert_eq!(compact.name(), Some("web--shop"));
        assert_eq!(compact.namespace(), Some("kcp-ingress-cluster-east"));
        assert!(compact.deletion_timestamp().is_some());
        assert_eq!(compact.kept(Kept::Label(labels::ROOT_LABEL)), Some("web"));
        let _ = compact.typed().unwrap();
        let _ = format!("{compact:?}");
        assert!(!compact.meta_built());
        // `meta()` builds it from the same fields, and nothing else.
        assert_eq!(compact.meta().name.as_deref(), Some("web--shop"));
        assert!(compact.meta().deletion_timestamp.is_some());
        assert!(compact.meta().uid.is_none() && compact.meta().labels.is_none());
        assert!(compact.meta_built());
        // A clone (what a store keeps) does not carry it.
        assert!(!compact.clone().meta_built());
    }

    #[test]
    fn a_store_fed_by_kubes_writer_holds_objects_without_metadata() {
        use kube::runtime::reflector::store::Writer;
        use kube::runtime::watcher::Event;
        let mut writer = Writer::<Compact<Ingress>>::new(());
        let store = writer.as_reader();
        // As `Watch::stored_changes` feeds it: an event of a new compact
        // object per change, whose key the writer reads through `meta()`.
        let applied = Event::Apply(Compact::keeping(&leaf("a"), &KEPT));
        writer.apply_watcher_event(&applied);
        let Event::Apply(event_object) = &applied else {
            unreachable!()
        };
        assert!(event_object.meta_built(), "the key was read through meta()");
        for event in [
            Event::Init,
            Event::InitApply(Compact::keeping(&leaf("b"), &KEPT)),
            Event::InitApply(Compact::keeping(&leaf("c"), &KEPT)),
            Event::InitDone,
            Event::Apply(Compact::keeping(&leaf("d"), &KEPT)),
        ] {
            writer.apply_watcher_event(&event);
        }
        let all = store.state();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|o| !o.meta_built()));
        let key = kube::runtime::reflector::ObjectRef::new("d").within("kcp-ingress-cluster-east");
        assert!(store.get(&key).is_some_and(|o| !o.meta_built()));
    }

    #[test]
    fn an_edit_through_meta_mut_is_the_objects_and_is_kept() {
        let mut compact = Compact::new(&leaf("web--shop"));
        compact.meta_mut().name = Some("renamed".into());
        compact.meta_mut().deletion_timestamp = None;
        compact.meta_mut().labels = Some([("a".to_string(), "b".to_string())].into());
        for c in [&compact, &compact.clone()] {
            assert_eq!(c.name(), Some("renamed"));
            assert_eq!(c.namespace(), Some("kcp-ingress-cluster-east"));
            assert_eq!(c.deletion_timestamp(), None);
            assert_eq!(c.meta().name.as_deref(), Some("renamed"));
            assert_eq!(c.labels().get("a").map(String::as_str), Some("b"));
            let typed = c.typed().unwrap();
            assert_eq!(typed.metadata.name.as_deref(), Some("renamed"));
            assert_eq!(typed.metadata.deletion_timestamp, None);
        }
    }

    /// A leaf with the root labels `root` and `root_namespace`, named
    /// `name`, and a label and annotation of its own.
    fn labelled(name: &str, root: &str, root_namespace: &str) -> Ingress {
        let mut leaf = leaf(name);
        leaf.metadata.labels = Some(
            [
                (labels::ROOT_LABEL, root),
                (labels::ROOT_NAMESPACE_LABEL, root_namespace),
                ("app", "web"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        );
        leaf.metadata.annotations = Some([("x".to_string(), "y".to_string())].into());
        leaf
    }

    /// What the compact form reads of `object`'s kept keys, and what the
    /// object's own maps say.
    fn kept_and_labels(object: &Ingress) -> (Vec<Option<String>>, Vec<Option<String>>) {
        let compact = Compact::keeping(object, &KEPT);
        let read = KEPT.map(|k| compact.kept(k).map(str::to_string)).to_vec();
        let own = KEPT
            .map(|k| {
                let (map, key) = match k {
                    Kept::Label(key) => (&object.metadata.labels, key),
                    Kept::Annotation(key) => (&object.metadata.annotations, key),
                };
                map.as_ref()?.get(key).cloned()
            })
            .to_vec();
        (read, own)
    }

    #[test]
    fn a_leaf_named_by_the_controller_keeps_its_root_labels_as_parts_of_its_name() {
        let (_, name) = crate::controller::naming::leaf_key("shop", "web", "east");
        let leaf = labelled(&name, "web", "shop");
        let compact = Compact::keeping(&leaf, &KEPT);
        assert_eq!(compact.kept(Kept::Label(labels::ROOT_LABEL)), Some("web"));
        assert_eq!(
            compact.kept(Kept::Label(labels::ROOT_NAMESPACE_LABEL)),
            Some("shop")
        );
        assert_eq!(
            compact.kept(Kept::Annotation(labels::PLACEMENT_ANNOTATION)),
            None
        );
        // No text kept for them, and they are out of the body too.
        assert!(compact.kept.is_none(), "{compact:?}");
        assert!(
            !compact.body.contains("kcp-ingress.dev/root"),
            "{}",
            compact.body
        );
        assert_eq!(compact.typed().unwrap(), leaf);
        assert_eq!(kept_and_labels(&leaf).0, kept_and_labels(&leaf).1);
    }

    #[test]
    fn an_object_whose_name_does_not_spell_its_labels_keeps_them_as_texts() {
        // A user's object with the labels, named anyhow; an empty value;
        // a placement annotation (never in a name).
        let mut other = labelled("mine", "web", "");
        other
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(labels::PLACEMENT_ANNOTATION.into(), "region=eu".into());
        let compact = Compact::keeping(&other, &KEPT);
        assert_eq!(compact.kept(Kept::Label(labels::ROOT_LABEL)), Some("web"));
        assert_eq!(
            compact.kept(Kept::Label(labels::ROOT_NAMESPACE_LABEL)),
            Some("")
        );
        assert_eq!(
            compact.kept(Kept::Annotation(labels::PLACEMENT_ANNOTATION)),
            Some("region=eu")
        );
        assert_eq!(compact.typed().unwrap(), other);
        assert_eq!(kept_and_labels(&other).0, kept_and_labels(&other).1);
        // Without the labels at all: none, and it reads back whole.
        let mut bare = leaf("web--shop");
        bare.metadata.labels = None;
        let compact = Compact::keeping(&bare, &KEPT);
        assert!(KEPT.iter().all(|k| compact.kept(*k).is_none()));
        assert_eq!(compact.typed().unwrap(), bare);
    }

    #[test]
    fn an_edited_name_does_not_change_the_kept_values() {
        let mut compact = Compact::keeping(&labelled("shop.web--east", "web", "shop"), &KEPT);
        compact.meta_mut().name = Some("x".into());
        assert_eq!(compact.kept(Kept::Label(labels::ROOT_LABEL)), Some("web"));
        assert_eq!(
            compact
                .clone()
                .kept(Kept::Label(labels::ROOT_NAMESPACE_LABEL)),
            Some("shop")
        );
    }

    proptest::proptest! {
        /// Whatever the name and the labels' values, the compact form
        /// reads the labels it replaces and the object reads back whole.
        #[test]
        fn the_kept_values_are_the_labels(
            namespace in "[a-z0-9-]{0,12}",
            root in "[a-z0-9.-]{0,20}",
            cluster in "[a-z0-9]{1,8}",
            spelled in proptest::bool::ANY,
            long in proptest::bool::ANY,
        ) {
            let name = if spelled {
                crate::controller::naming::leaf_key(&namespace, &root, &cluster).1
            } else {
                format!("{cluster}.{namespace}")
            };
            let name = if long { format!("{}{name}", "a".repeat(250)) } else { name };
            let leaf = labelled(&name, &root, &namespace);
            let (read, own) = kept_and_labels(&leaf);
            proptest::prop_assert_eq!(read, own);
            proptest::prop_assert_eq!(Compact::keeping(&leaf, &KEPT).typed().unwrap(), leaf);
        }
    }

    #[test]
    fn a_compact_object_without_a_namespace_has_none() {
        // A cluster-scoped object has no namespace.
        let mut leaf = leaf("web");
        leaf.metadata.namespace = None;
        let compact = Compact::new(&leaf);
        assert_eq!((compact.namespace(), compact.name()), (None, Some("web")));
        assert_eq!(compact.typed().unwrap(), leaf);
    }

    #[test]
    fn it_deserializes_from_the_objects_json() {
        let global = global();
        let text = serde_json::to_string(&global).unwrap();
        let compact: Compact<GlobalIngress> = serde_json::from_str(&text).unwrap();
        assert_same(&compact.typed().unwrap(), &global);
    }
}
