//! DNS providers. [`rfc2136`] writes to any server that accepts dynamic
//! updates signed with TSIG (BIND 9, Knot, PowerDNS, ...).

pub mod error;
pub mod provider;
pub mod rfc2136;
pub mod tsig;

pub use self::error::DnsError;
pub use self::provider::{DnsProvider, DryRun};
pub use self::tsig::{TsigAlgorithm, TsigKey};
