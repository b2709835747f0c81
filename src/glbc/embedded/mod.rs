//! The embedded authoritative DNS server (`--dns-provider embedded`),
//! built on hickory-server: every glbc replica serves the zones itself,
//! from the plan of its own passes.
//!
//! - [`store`] (pure): a zone's records, how an UPDATE changes them, SOA/NS;
//! - [`zone`]: a zone as hickory-server answers it (weighted first answer
//!   per query, AXFR only signed with the TSIG key), and the glbc's
//!   provider for it;
//! - [`server`]: the sockets, and NOTIFY to the secondaries.
//!
//! What is answered is decided by the same plan as with an RFC 2136
//! server (ownership records, fail open, priority groups and weight 0 in
//! [`super::traffic`]); the weights of the first answer are the one thing
//! only this provider can express.

pub mod server;
pub mod store;
pub mod zone;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;

use self::store::ZoneStore;
use self::zone::{EmbeddedProvider, EmbeddedZone, Weights};
use super::dns::rfc2136::tsig_signer;
use super::dns::{DnsError, TsigKey};
use super::records::DnsName;
use crate::runtime::CancellationToken;

/// The zones one glbc replica serves.
pub struct Embedded {
    zones: Vec<Arc<EmbeddedZone>>,
    weights: Arc<Weights>,
    listen: SocketAddr,
}

impl Embedded {
    /// Empty `zones`, each with the NS records `nameservers` (a name
    /// relative to nothing: fully qualified; none given: `ns.<zone>`).
    pub fn new(
        zones: &[DnsName],
        nameservers: &[DnsName],
        key: &TsigKey,
        listen: SocketAddr,
        ttl: u32,
    ) -> Result<Self, DnsError> {
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| (d.as_secs() & 0xFFFF_FFFF) as u32)
            .unwrap_or(1);
        let weights = Arc::new(Weights::default());
        let signer = tsig_signer(key)?;
        let mut out = Vec::new();
        for zone in zones {
            let origin = zone.to_name()?;
            let ns: Vec<Name> = if nameservers.is_empty() {
                vec![DnsName::new_unchecked(&format!("ns.{}", zone.as_str())).to_name()?]
            } else {
                nameservers
                    .iter()
                    .map(DnsName::to_name)
                    .collect::<Result<_, _>>()?
            };
            let store = ZoneStore::new(origin, ns, serial, ttl.min(300));
            out.push(EmbeddedZone::new(
                store,
                weights.clone(),
                signer.clone(),
                listen,
            ));
        }
        Ok(Self {
            zones: out,
            weights,
            listen,
        })
    }

    /// The provider the glbc writes `zone` through.
    pub fn provider(&self, zone: &DnsName) -> Option<EmbeddedProvider> {
        let name = zone.to_name().ok()?;
        self.zones
            .iter()
            .find(|z| z.name() == &name)
            .map(|z| EmbeddedProvider(z.clone()))
    }

    /// The weight of each address, from the last pass.
    pub fn set_weights(&self, weights: BTreeMap<IpAddr, u32>) {
        self.weights.set(weights);
    }

    /// Starts answering on the listen address, until `shutdown`.
    pub async fn serve(
        &self,
        secondaries: &[SocketAddr],
        shutdown: &CancellationToken,
    ) -> std::io::Result<()> {
        server::serve(self.listen, &self.zones, secondaries, shutdown).await
    }
}
