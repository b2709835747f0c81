//! DNS providers. [`rfc2136`] writes to any server that accepts dynamic
//! updates signed with TSIG (BIND 9, Knot, PowerDNS, ...).

pub mod rfc2136;

use std::fmt;
use std::str::FromStr;

use futures::future::BoxFuture;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{Name, Record};

use self::rfc2136::{Rfc2136Client, RrsetChange};

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

/// The TSIG algorithms kcp-ingress signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    /// Every supported algorithm, by its BIND name.
    pub const ALL: [TsigAlgorithm; 3] = [Self::HmacSha256, Self::HmacSha384, Self::HmacSha512];

    /// The name BIND and RFC 8945 use.
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }
}

impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TsigAlgorithm {
    type Err = DnsError;
    fn from_str(s: &str) -> Result<Self, DnsError> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| DnsError::UnknownAlgorithm(s.to_string()))
    }
}

/// A TSIG key: its name (as the server knows it), algorithm and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TsigKey {
    /// A key whose secret is given in base64, as in BIND's `key` clause.
    pub fn from_base64(
        name: &str,
        algorithm: TsigAlgorithm,
        secret: &str,
    ) -> Result<Self, DnsError> {
        let secret = data_encoding::BASE64
            .decode(secret.trim().as_bytes())
            .map_err(|e| DnsError::InvalidSecret(e.to_string()))?;
        if secret.is_empty() {
            return Err(DnsError::InvalidSecret("the secret is empty".into()));
        }
        Ok(Self {
            name: name.to_string(),
            algorithm,
            secret,
        })
    }
}

/// Errors of the DNS providers.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("unknown TSIG algorithm {0:?} (supported: hmac-sha256, hmac-sha384, hmac-sha512)")]
    UnknownAlgorithm(String),
    #[error("invalid TSIG secret: {0}")]
    InvalidSecret(String),
    #[error("invalid DNS name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("{name} is not inside zone {zone}")]
    OutsideZone { name: String, zone: String },
    #[error("cannot reach DNS server {server}: {source}")]
    Unreachable {
        server: std::net::SocketAddr,
        source: Box<hickory_net::NetError>,
    },
    #[error(
        "DNS server {server} rejected the TSIG signature of key {key:?} \
         (answer {rcode}, TSIG error {}): check the key name, algorithm and secret",
        tsig_error_name(*.tsig_error)
    )]
    TsigRejected {
        server: std::net::SocketAddr,
        key: String,
        rcode: ResponseCode,
        tsig_error: Option<TsigError>,
    },
    #[error(
        "DNS server {server} refused an update of zone {zone}: {rcode} (a prerequisite \
         failed: a name is not as the zone was last read; someone else changed it)"
    )]
    PrerequisiteFailed {
        server: std::net::SocketAddr,
        zone: String,
        rcode: ResponseCode,
    },
    #[error("DNS server {server} refused the {operation} for zone {zone}: {rcode}")]
    Refused {
        server: std::net::SocketAddr,
        operation: &'static str,
        zone: String,
        rcode: ResponseCode,
    },
    #[error("DNS exchange with {server} failed: {source}")]
    Exchange {
        server: std::net::SocketAddr,
        source: Box<hickory_net::NetError>,
    },
}

/// The RFC 8945 name of a TSIG error.
fn tsig_error_name(error: Option<TsigError>) -> String {
    match error {
        None => "none".into(),
        Some(TsigError::BadSig) => "BADSIG (wrong secret or algorithm)".into(),
        Some(TsigError::BadKey) => "BADKEY (the server does not know the key)".into(),
        Some(TsigError::BadTime) => "BADTIME (clocks differ too much)".into(),
        Some(TsigError::BadTrunc) => "BADTRUNC".into(),
        Some(TsigError::Unknown(code)) => format!("{code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_parse_by_bind_name() {
        for a in TsigAlgorithm::ALL {
            assert_eq!(a.name().parse::<TsigAlgorithm>().unwrap(), a);
        }
        assert_eq!(
            "HMAC-SHA512".parse::<TsigAlgorithm>().unwrap(),
            TsigAlgorithm::HmacSha512
        );
        assert!("hmac-md5".parse::<TsigAlgorithm>().is_err());
    }

    #[test]
    fn key_secret_is_base64_and_never_printed() {
        let key = TsigKey::from_base64("k", TsigAlgorithm::HmacSha256, "c2VjcmV0").unwrap();
        assert_eq!(key.secret, b"secret");
        let printed = format!("{key:?}");
        assert!(
            !printed.contains("secret") && !printed.contains("c2VjcmV0"),
            "{printed}"
        );
        assert!(TsigKey::from_base64("k", TsigAlgorithm::HmacSha256, "not base64!").is_err());
        assert!(TsigKey::from_base64("k", TsigAlgorithm::HmacSha256, "").is_err());
    }
}
