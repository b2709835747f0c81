//! Errors of the DNS providers.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::tsig::TsigError;

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
