//! The TSIG key: where its secret comes from, and the providers built from
//! it. The secret is read at start and again whenever the DNS server
//! rejects the key, so that a rotated secret is picked up.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use tracing::{info, warn};

use super::dns::{DnsError, DnsProvider};
use super::records::DnsName;

/// Errors of naming or reading the TSIG secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid --tsig-secret-ref: {reference:?} is not NAMESPACE/NAME[/KEY]")]
    InvalidRef { reference: String },
    #[error("cannot read the TSIG secret from {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the TSIG secret from Secret {namespace}/{name}: {source}")]
    SecretRead {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("Secret {namespace}/{name} has no key {key:?} (or it is not UTF-8)")]
    SecretKey {
        namespace: String,
        name: String,
        key: String,
    },
}

/// Where the TSIG secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Secret {
        namespace: String,
        name: String,
        key: String,
    },
}

/// Key of a `--tsig-secret-ref` Secret's data when none is given.
const DEFAULT_SECRET_KEY: &str = "secret";

impl KeySource {
    /// From `--tsig-secret-file` (preferred when given) or
    /// `--tsig-secret-ref NAMESPACE/NAME[/KEY]`.
    pub fn from_flags(file: Option<&PathBuf>, reference: Option<&str>) -> Result<Self, KeyError> {
        if let Some(path) = file {
            return Ok(Self::File(path.clone()));
        }
        let reference = reference.unwrap_or_default();
        let parts: Vec<&str> = reference.split('/').collect();
        match parts.as_slice() {
            [ns, name] if !ns.is_empty() && !name.is_empty() => Ok(Self::Secret {
                namespace: ns.to_string(),
                name: name.to_string(),
                key: DEFAULT_SECRET_KEY.into(),
            }),
            [ns, name, key] if !ns.is_empty() && !name.is_empty() && !key.is_empty() => {
                Ok(Self::Secret {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    key: key.to_string(),
                })
            }
            _ => Err(KeyError::InvalidRef {
                reference: reference.to_string(),
            }),
        }
    }

    /// The secret, base64 as in BIND's `key` clause, trimmed.
    pub async fn load(&self, client: &Client) -> Result<String, KeyError> {
        match self {
            Self::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(|s| s.trim().to_string())
                .map_err(|source| KeyError::SecretFile {
                    path: path.clone(),
                    source,
                }),
            Self::Secret {
                namespace,
                name,
                key,
            } => {
                let secret = Api::<Secret>::namespaced(client.clone(), namespace)
                    .get(name)
                    .await
                    .map_err(|source| KeyError::SecretRead {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        source,
                    })?;
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .and_then(|v| String::from_utf8(v.0.clone()).ok())
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| KeyError::SecretKey {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        key: key.clone(),
                    })
            }
        }
    }
}

/// Builds the provider of a zone from a TSIG secret (base64).
pub type ProviderFactory =
    Box<dyn Fn(&DnsName, &str) -> Result<Box<dyn DnsProvider>, DnsError> + Send + Sync>;

/// The key in use: where it comes from, the secret last read, and how to
/// build a zone's provider from it.
pub struct Keys {
    source: KeySource,
    client: Client,
    secret: String,
    factory: ProviderFactory,
}

impl Keys {
    pub fn new(
        source: KeySource,
        client: Client,
        secret: String,
        factory: ProviderFactory,
    ) -> Self {
        Self {
            source,
            client,
            secret,
            factory,
        }
    }

    /// The provider of `zone` with the secret in use.
    pub fn provider(&self, zone: &DnsName) -> Result<Box<dyn DnsProvider>, DnsError> {
        (self.factory)(zone, &self.secret)
    }

    /// After the server rejected the key: reads the secret again (a rotated
    /// Secret or file) and, if it changed and works for every zone, switches
    /// to it and returns the new providers of `zones`, in order.
    pub async fn reload(&mut self, zones: &[&DnsName]) -> Option<Vec<Box<dyn DnsProvider>>> {
        let secret = match self.source.load(&self.client).await {
            Ok(secret) => secret,
            Err(err) => {
                warn!(%err, "cannot read the TSIG secret again");
                return None;
            }
        };
        if secret == self.secret {
            return None;
        }
        let mut rebuilt = Vec::new();
        for zone in zones {
            match (self.factory)(zone, &secret) {
                Ok(provider) => rebuilt.push(provider),
                Err(err) => {
                    warn!(%err, "the new TSIG secret is not usable; keeping the old one");
                    return None;
                }
            }
        }
        info!("the TSIG secret changed; using the new one");
        self.secret = secret;
        Some(rebuilt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(reference: &str) -> Result<KeySource, KeyError> {
        KeySource::from_flags(None, Some(reference))
    }

    #[test]
    fn secret_references_parse() {
        assert_eq!(
            parse("dns/tsig").unwrap(),
            KeySource::Secret {
                namespace: "dns".into(),
                name: "tsig".into(),
                key: "secret".into()
            }
        );
        assert!(matches!(parse("dns/tsig/key"), Ok(KeySource::Secret { key, .. }) if key == "key"));
        for bad in ["dns", "dns/", "/x", "a/b/c/d"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            KeySource::from_flags(Some(&"/run/tsig".into()), None).unwrap(),
            KeySource::File("/run/tsig".into())
        );
    }
}
