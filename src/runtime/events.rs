//! The Event recorder every component publishes through.

use kube::runtime::events::{Recorder, Reporter};

/// A recorder reporting as `manager` (and the pod, where `HOSTNAME` says).
pub fn recorder(client: &kube::Client, manager: &str) -> Recorder {
    Recorder::new(
        client.clone(),
        Reporter {
            controller: manager.into(),
            instance: std::env::var("HOSTNAME").ok(),
        },
    )
}
