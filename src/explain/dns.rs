//! Asking the DNS server (I/O): the ownership TXT record of each host and
//! what an ordinary query answers, and, when a TSIG key is given, whether
//! the server accepts it. The key is read the way the glbc reads it and
//! never shown.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use kube::Client;

use super::facts::{DnsFacts, HostFacts};
use crate::cli::ExplainArgs;
use crate::glbc::dns::TsigKey;
use crate::glbc::dns::rfc2136::{Rfc2136Client, fqdn, query};
use crate::glbc::keys::KeySource;
use crate::glbc::records::{self, DnsName, ownership};

/// What the DNS server of `args` shows for `hosts`; `None` without `--dns-server`.
pub async fn facts(client: &Client, args: &ExplainArgs, hosts: &[String]) -> Option<DnsFacts> {
    let server = SocketAddr::new(args.dns_server?, args.dns_port);
    let timeout = args.dns_timeout;
    let mut found = BTreeMap::new();
    for host in hosts {
        found.insert(host.clone(), host_facts(server, host, timeout).await);
    }
    let key_check = match &args.tsig_key_name {
        None => None,
        Some(key_name) => Some(check_key(client, args, server, key_name).await),
    };
    Some(DnsFacts {
        server,
        owner: args.owner_id.clone(),
        zones: args.zones.clone(),
        key_check,
        hosts: found,
    })
}

async fn host_facts(server: SocketAddr, host: &str, timeout: Duration) -> HostFacts {
    let Ok(name) = DnsName::parse_host(host) else {
        let why = format!("{host:?} is not a DNS name");
        return HostFacts {
            ownership: Err(why.clone()),
            answers: Err(why),
        };
    };
    let ownership = match ownership::name_of(&name) {
        None => Err("its ownership name would be too long".to_string()),
        Some(owner_name) => ask(server, owner_name.as_str(), RecordType::TXT, timeout).await,
    };
    let answers = if host.starts_with("*.") {
        Ok(BTreeSet::new())
    } else {
        let mut answers = BTreeSet::new();
        let mut failure = None;
        for record_type in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
            match ask(server, name.as_str(), record_type, timeout).await {
                Ok(found) => answers.extend(found),
                Err(e) => failure = Some(e),
            }
            if !answers.is_empty() {
                break;
            }
        }
        match failure {
            Some(e) if answers.is_empty() => Err(e),
            _ => Ok(answers.into_iter().collect()),
        }
    };
    HostFacts { ownership, answers }
}

/// The records of `record_type` at `name`, in the glbc's canonical text.
async fn ask(
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let fq = fqdn(name).map_err(|e| e.to_string())?;
    let (rcode, answers) = query(server, &fq, record_type, timeout)
        .await
        .map_err(|e| e.to_string())?;
    match rcode {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(answers
            .iter()
            .filter(|r| r.record_type() == record_type && r.name == fq)
            .filter_map(|r| match &r.data {
                RData::CNAME(_) | RData::A(_) | RData::AAAA(_) | RData::TXT(_) => {
                    records::rdata_text(&r.data)
                }
                _ => None,
            })
            .collect()),
        rcode => Err(format!("the server answered {rcode}")),
    }
}

/// Whether the server accepts the TSIG key: a signed zone transfer of the
/// first `--zone` (which changes nothing).
async fn check_key(
    client: &Client,
    args: &ExplainArgs,
    server: SocketAddr,
    key_name: &str,
) -> Result<(), String> {
    let zone = args
        .zones
        .first()
        .ok_or("give --zone to check the TSIG key against it")?;
    let source = KeySource::from_flags(
        args.tsig_secret_file.as_ref(),
        args.tsig_secret_ref.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let secret = source.load(client).await.map_err(|e| e.to_string())?;
    let algorithm = args
        .tsig_algorithm
        .parse()
        .map_err(|e: crate::glbc::dns::DnsError| e.to_string())?;
    let key = TsigKey::from_base64(key_name, algorithm, &secret).map_err(|e| e.to_string())?;
    let client =
        Rfc2136Client::new(server, zone, &key, args.dns_timeout).map_err(|e| e.to_string())?;
    client
        .transfer_zone()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
