//! What a syncer does with its copies in the physical cluster when its
//! Cluster object goes (pure). The copies are deleted only when this
//! syncer saw the Cluster and then saw it go (a Cluster that was never
//! there may be a control plane being set up or restored: its copies stay)
//! and it has a client for the physical cluster; whether that cluster
//! answers is found out by trying.

use super::source::ClientState;

/// What to do with the copies of a Cluster that is gone.
pub enum Departure {
    /// Delete them, through this client.
    DeleteCopies(kube::Client),
    /// Keep them; the reason says why, for the log and the Event.
    KeepCopies(String),
}

/// The departure of a Cluster that is gone: `seen` says whether this
/// syncer saw it (present and not being deleted) before it went; `client`
/// is the downstream client as it is now.
pub fn departure(seen: bool, client: &ClientState) -> Departure {
    if !seen {
        return Departure::KeepCopies(
            "this syncer never saw the Cluster, so it did not see it deleted".into(),
        );
    }
    match client {
        ClientState::Ready { client, .. } => Departure::DeleteCopies(client.clone()),
        ClientState::Pending => {
            Departure::KeepCopies("there is no client for the physical cluster yet".into())
        }
        ClientState::Failed { message, .. } => Departure::KeepCopies(format!(
            "there is no usable client for the physical cluster: {message}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_stay_unless_the_deletion_was_seen_and_a_client_is_there() {
        let failed = ClientState::Failed {
            reason: "KubeconfigSecretNotFound",
            message: "the kubeconfig Secret x/y does not exist".into(),
        };
        let Departure::KeepCopies(why) = departure(true, &failed) else {
            panic!("deleted without a client");
        };
        assert!(why.contains("does not exist"), "{why}");
        assert!(matches!(
            departure(true, &ClientState::Pending),
            Departure::KeepCopies(_)
        ));
        let Departure::KeepCopies(why) = departure(false, &failed) else {
            panic!("deleted for a Cluster never seen");
        };
        assert!(why.contains("never saw"), "{why}");
    }

    #[tokio::test]
    async fn copies_go_when_the_deletion_was_seen_and_a_client_is_there() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let ready = ClientState::Ready {
            client,
            generation: 1,
        };
        assert!(matches!(
            departure(true, &ready),
            Departure::DeleteCopies(_)
        ));
        assert!(matches!(departure(false, &ready), Departure::KeepCopies(_)));
    }
}
