//! TSIG keys (RFC 8945): algorithm and secret, never printed.

use std::fmt;
use std::str::FromStr;

use super::error::DnsError;

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
