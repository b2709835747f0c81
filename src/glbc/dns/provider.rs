//! The provider interface the glbc reads and writes zones through, and the
//! dry-run wrapper.

use futures::future::BoxFuture;
use hickory_proto::rr::{Name, Record};

use super::error::DnsError;
use super::rfc2136::{Rfc2136Client, RrsetChange};

/// Where the glbc reads and writes one zone.
pub trait DnsProvider: Send + Sync {
    /// The zone.
    fn zone(&self) -> &Name;
    /// Every record of the zone.
    fn transfer_zone(&self) -> BoxFuture<'_, Result<Vec<Record>, DnsError>>;
    /// Replaces the given RRsets in one atomic step (no data: delete the RRset).
    fn replace_rrsets<'a>(
        &'a self,
        changes: &'a [RrsetChange],
    ) -> BoxFuture<'a, Result<(), DnsError>>;
}

impl DnsProvider for Rfc2136Client {
    fn zone(&self) -> &Name {
        Rfc2136Client::zone(self)
    }

    fn transfer_zone(&self) -> BoxFuture<'_, Result<Vec<Record>, DnsError>> {
        Box::pin(Rfc2136Client::transfer_zone(self))
    }

    fn replace_rrsets<'a>(
        &'a self,
        changes: &'a [RrsetChange],
    ) -> BoxFuture<'a, Result<(), DnsError>> {
        Box::pin(Rfc2136Client::replace_rrsets(self, changes))
    }
}

/// Reads through `inner`, writes nothing: every change is logged instead,
/// and reported as applied (`--dry-run`).
pub struct DryRun<P>(pub P);

impl<P: DnsProvider> DnsProvider for DryRun<P> {
    fn zone(&self) -> &Name {
        self.0.zone()
    }

    fn transfer_zone(&self) -> BoxFuture<'_, Result<Vec<Record>, DnsError>> {
        self.0.transfer_zone()
    }

    fn replace_rrsets<'a>(
        &'a self,
        changes: &'a [RrsetChange],
    ) -> BoxFuture<'a, Result<(), DnsError>> {
        Box::pin(async move {
            for change in changes {
                let data: Vec<String> = change.data.iter().map(ToString::to_string).collect();
                if data.is_empty() {
                    tracing::info!(
                        zone = %self.zone(),
                        name = %change.name,
                        record_type = %change.record_type,
                        "dry run: would delete the RRset"
                    );
                } else {
                    tracing::info!(
                        zone = %self.zone(),
                        name = %change.name,
                        record_type = %change.record_type,
                        ttl = change.ttl,
                        data = ?data,
                        "dry run: would replace the RRset"
                    );
                }
            }
            Ok(())
        })
    }
}
