//! The Event recorder every component publishes through: kube's recorder
//! (which folds repeats into a series), except for objects whose names are
//! too long for its Event names (`<object>.<nanoseconds in hex>`, at most
//! 253 characters), whose Events it would lose: those get an Event named
//! from a shortened prefix, still about the same object.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
pub use kube::runtime::events::{Event, EventType};
use kube::runtime::events::{Recorder as KubeRecorder, Reporter};

/// The longest object name whose Event name kube's recorder can form:
/// 253, less a dot and 16 hex digits.
const LONGEST_NAME: usize = 253 - 17;

/// Publishes Events as one component.
#[derive(Clone)]
pub struct Recorder {
    inner: KubeRecorder,
    client: kube::Client,
    reporter: Reporter,
}

/// A recorder reporting as `manager` (and the pod, where `HOSTNAME` says).
pub fn recorder(client: &kube::Client, manager: &str) -> Recorder {
    let reporter = Reporter {
        controller: manager.into(),
        instance: std::env::var("HOSTNAME").ok(),
    };
    Recorder {
        inner: KubeRecorder::new(client.clone(), reporter.clone()),
        client: client.clone(),
        reporter,
    }
}

impl Recorder {
    /// Publishes `event` about the object `regarding`.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let name = regarding.name.as_deref().unwrap_or_default();
        if name.len() <= LONGEST_NAME {
            return self.inner.publish(event, regarding).await;
        }
        let now = Timestamp::now();
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
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
        Api::<K8sEvent>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &k8s_event)
            .await
            .map(|_| ())
    }
}

/// `<prefix of the object's name>.<nanoseconds in hex>`: a valid name of at
/// most 253 characters (the prefix ends in a letter or digit).
fn event_name(object: &str, nanos: i128) -> String {
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
    }
}
