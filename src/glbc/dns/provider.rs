//! The provider interface the glbc reads and writes zones through, and the
//! dry-run wrapper.

use futures::future::BoxFuture;
use hickory_proto::rr::{Name, Record, RecordType};

use super::error::DnsError;
use super::rfc2136::{Rfc2136Client, Update};

/// Where the glbc reads and writes one zone.
pub trait DnsProvider: Send + Sync {
    /// The zone.
    fn zone(&self) -> &Name;
    /// Every record of the zone.
    fn transfer_zone(&self) -> BoxFuture<'_, Result<Vec<Record>, DnsError>>;
    /// Sends one atomic UPDATE: all of it applies, or (a prerequisite
    /// failed, or the server refused it) none of it.
    fn update<'a>(&'a self, update: &'a Update) -> BoxFuture<'a, Result<(), DnsError>>;
    /// The records of one type at one name, as the server holds them now
    /// (no records: none of that type, or no such name).
    fn lookup<'a>(
        &'a self,
        name: &'a Name,
        record_type: RecordType,
    ) -> BoxFuture<'a, Result<Vec<Record>, DnsError>>;
}

impl DnsProvider for Rfc2136Client {
    fn zone(&self) -> &Name {
        Rfc2136Client::zone(self)
    }

    fn transfer_zone(&self) -> BoxFuture<'_, Result<Vec<Record>, DnsError>> {
        Box::pin(Rfc2136Client::transfer_zone(self))
    }

    fn update<'a>(&'a self, update: &'a Update) -> BoxFuture<'a, Result<(), DnsError>> {
        Box::pin(Rfc2136Client::update(self, update))
    }

    fn lookup<'a>(
        &'a self,
        name: &'a Name,
        record_type: RecordType,
    ) -> BoxFuture<'a, Result<Vec<Record>, DnsError>> {
        Box::pin(Rfc2136Client::lookup(self, name, record_type))
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

    fn lookup<'a>(
        &'a self,
        name: &'a Name,
        record_type: RecordType,
    ) -> BoxFuture<'a, Result<Vec<Record>, DnsError>> {
        self.0.lookup(name, record_type)
    }

    fn update<'a>(&'a self, update: &'a Update) -> BoxFuture<'a, Result<(), DnsError>> {
        Box::pin(async move {
            for prerequisite in &update.prerequisites {
                tracing::info!(zone = %self.zone(), ?prerequisite, "dry run: would require");
            }
            for change in &update.rrsets {
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
            for change in &update.records {
                tracing::info!(zone = %self.zone(), ?change, "dry run: would change records");
            }
            Ok(())
        })
    }
}
