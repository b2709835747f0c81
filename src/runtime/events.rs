//! The Event recorder every component publishes through. It does what
//! kube's recorder does (a repeat of an Event within six minutes becomes a
//! series on the first: its count and last time are patched), keeping of
//! each Event only what a repeat needs (a hash of what makes it the same
//! Event, its namespace and name, its count and times): kube's recorder
//! keeps every Event it sent for six minutes, about 5 KiB each, and scans
//! them all on every publish, which in a bulk of 10,000 roots is tens of
//! megabytes and a quadratic cost. Event names are `<object>.<nanoseconds
//! in hex>`; for an object whose name is too long for that (at most 253
//! characters), from a shortened prefix, still about the same object.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
pub use kube::runtime::events::{Event, EventType};
use serde_json::json;

/// The longest object name whose Event name can be formed from the whole
/// name: 253, less a dot and 16 hex digits.
const LONGEST_NAME: usize = 253 - 17;

/// How long a sent Event can become a series (as kube's recorder).
const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);

/// Publishes Events as one component.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    sent: Arc<Mutex<Sent>>,
}

/// A recorder reporting as `manager` (and the pod, where `HOSTNAME` says).
pub fn recorder(client: &kube::Client, manager: &str) -> Recorder {
    let reporter = Reporter {
        controller: manager.into(),
        instance: std::env::var("HOSTNAME").ok(),
    };
    Recorder {
        client: client.clone(),
        reporter,
        sent: Arc::default(),
    }
}

impl Recorder {
    /// Publishes `event` about the object `regarding`: a new Event, or the
    /// next of the series of the same Event sent within six minutes.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = event_key(event, regarding);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api = Api::<K8sEvent>::namespaced(self.client.clone(), namespace);
        let repeat = self
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .repeat(key, now);
        if let Some((name, count)) = repeat {
            let series = EventSeries {
                count,
                last_observed_time: MicroTime(now),
            };
            let patch = json!({ "series": series });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Deleted meanwhile: a new Event instead.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(err) => return Err(err),
            }
        }
        let name = regarding
            .name
            .as_deref()
            .unwrap_or(&self.reporter.controller);
        let k8s_event = K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            metadata: ObjectMeta {
                namespace: Some(namespace.to_string()),
                name: Some(event_name(name, now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            ..K8sEvent::default()
        };
        let created = api.create(&PostParams::default(), &k8s_event).await?;
        let name = created.metadata.name.or(k8s_event.metadata.name);
        if let Some(name) = name {
            self.sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sent(key, name, now);
        }
        Ok(())
    }
}

/// What makes two Events the same (kube's recorder's key, less the
/// reporter, which is the recorder's own): a hash of their type, action,
/// reason and the objects they are about.
fn event_key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = DefaultHasher::new();
    let type_ = match event.type_ {
        EventType::Normal => 0u8,
        EventType::Warning => 1,
    };
    (type_, &event.action, &event.reason).hash(&mut h);
    for reference in std::iter::once(Some(regarding)).chain([event.secondary.as_ref()]) {
        reference
            .map(|r| {
                (
                    &r.api_version,
                    &r.kind,
                    &r.namespace,
                    &r.name,
                    &r.uid,
                    &r.field_path,
                )
            })
            .hash(&mut h);
    }
    h.finish()
}

/// An Event sent: its name, how many times it was published, and when last.
#[derive(Debug)]
struct SentEvent {
    name: Box<str>,
    count: i32,
    last: Timestamp,
}

/// The Events sent within [`SERIES_TTL`], by [`event_key`] (pure).
#[derive(Debug, Default)]
struct Sent {
    by_key: HashMap<u64, SentEvent>,
    /// When expired entries were last dropped.
    swept: Option<Timestamp>,
}

impl Sent {
    /// The name and next count of the Event `key` if it was sent within
    /// [`SERIES_TTL`] (counted as published again now); `None` for a new
    /// Event.
    fn repeat(&mut self, key: u64, now: Timestamp) -> Option<(String, i32)> {
        self.sweep(now);
        let sent = self.by_key.get_mut(&key)?;
        if sent.last + SERIES_TTL <= now {
            self.by_key.remove(&key);
            return None;
        }
        sent.count += 1;
        sent.last = now;
        Some((sent.name.to_string(), sent.count))
    }

    /// The Event `key` was created as `name`.
    fn sent(&mut self, key: u64, name: String, now: Timestamp) {
        self.by_key.insert(
            key,
            SentEvent {
                name: name.into_boxed_str(),
                count: 1,
                last: now,
            },
        );
    }

    /// Drops the Events that can no longer become a series, at most once a
    /// minute (not on every publish).
    fn sweep(&mut self, now: Timestamp) {
        if self
            .swept
            .is_some_and(|t| t + SignedDuration::from_mins(1) > now)
        {
            return;
        }
        self.swept = Some(now);
        self.by_key.retain(|_, sent| sent.last + SERIES_TTL > now);
        self.by_key.shrink_to_fit();
    }
}

/// `<prefix of the object's name>.<nanoseconds in hex>`: a valid name of at
/// most 253 characters (the prefix ends in a letter or digit).
fn event_name(object: &str, nanos: i128) -> String {
    if object.len() <= LONGEST_NAME {
        return format!("{object}.{nanos:x}");
    }
    let cut = object.len().min(LONGEST_NAME);
    let prefix = object[..cut].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}.{nanos:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_give_valid_event_names() {
        let nanos = 1_795_000_000_123_456_789_i128;
        let long = format!("{}-{}", "a".repeat(235), "b".repeat(20));
        let name = event_name(&long, nanos);
        assert!(name.len() <= 253, "{} characters", name.len());
        // Cut right after the '-', which must not end the prefix.
        assert!(name.starts_with(&"a".repeat(235)));
        assert_eq!(name, format!("{}.{nanos:x}", "a".repeat(235)));
        let dotted = format!("{}.{}", "x".repeat(236), "y".repeat(30));
        assert!(!event_name(&dotted, nanos).contains(".."));
        assert_eq!(event_name("web", nanos), format!("web.{nanos:x}"));
    }

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("networking.k8s.io/v1".into()),
            kind: Some("Ingress".into()),
            namespace: Some("default".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn event(reason: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some("a note".into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    #[test]
    fn the_same_event_about_the_same_object_has_the_same_key() {
        let a = event_key(&event("Placed"), &reference("web"));
        assert_eq!(a, event_key(&event("Placed"), &reference("web")));
        // The note is not part of it (as in kube's recorder).
        let mut other_note = event("Placed");
        other_note.note = Some("another note".into());
        assert_eq!(a, event_key(&other_note, &reference("web")));
        assert_ne!(a, event_key(&event("Moved"), &reference("web")));
        assert_ne!(a, event_key(&event("Placed"), &reference("api")));
        let mut warning = event("Placed");
        warning.type_ = EventType::Warning;
        assert_ne!(a, event_key(&warning, &reference("web")));
        let mut related = event("Placed");
        related.secondary = Some(reference("api"));
        assert_ne!(a, event_key(&related, &reference("web")));
    }

    #[test]
    fn a_repeat_within_six_minutes_continues_the_series() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let mut sent = Sent::default();
        assert_eq!(sent.repeat(1, t0), None);
        sent.sent(1, "web.1".into(), t0);
        let t1 = t0 + SignedDuration::from_mins(5);
        assert_eq!(sent.repeat(1, t1), Some(("web.1".into(), 2)));
        // Six minutes after the last one, not the first.
        let t2 = t1 + SignedDuration::from_mins(5);
        assert_eq!(sent.repeat(1, t2), Some(("web.1".into(), 3)));
        assert_eq!(sent.repeat(2, t2), None);
        let t3 = t2 + SERIES_TTL;
        assert_eq!(sent.repeat(1, t3), None);
        assert!(sent.by_key.is_empty());
    }

    #[test]
    fn expired_events_are_dropped() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let mut sent = Sent::default();
        for key in 0..100 {
            sent.sent(key, format!("e.{key}"), t0);
        }
        sent.sent(1000, "late".into(), t0 + SignedDuration::from_mins(4));
        assert_eq!(sent.repeat(5000, t0 + SignedDuration::from_mins(7)), None);
        assert_eq!(sent.by_key.len(), 1);
        assert!(sent.by_key.contains_key(&1000));
    }
}
