//! The DNS hops (pure): the published records and their ownership, and
//! what the DNS server answers now.

use std::collections::BTreeSet;

use super::common::{condition_text, dns_host, join};
use super::kinds::{Explained, global_of, globals};
use crate::apis::GlobalIngressStatus;
use crate::explain::facts::{Facts, Published};
use crate::explain::report::{Hop, Item, Verdict, hop};
use crate::glbc::records::{DnsName, ownership};
use crate::glbc::status::state;
use crate::labels::conditions;

pub(super) fn dns_records_hop<K: Explained>(root: &K, facts: &Facts<K>) -> Hop {
    let globals = globals(facts);
    let mut items = Vec::new();
    let mut hint = globals
        .first()
        .map(|(ns, name)| format!("kubectl get globalingress -n {ns} {name} -o yaml"));
    match &facts.dns {
        None => items.push(Item::skip(
            "DNS server",
            "not queried: give --dns-server (and --dns-port, --owner-id) to check the records",
        )),
        Some(dns) => {
            if let Some(check) = &dns.key_check {
                items.push(match check {
                    Ok(()) => Item::pass("TSIG key", "accepted (signed zone transfer)"),
                    Err(e) => Item::fail("TSIG key", e.clone()),
                });
            }
            let zones: Vec<DnsName> = dns
                .zones
                .iter()
                .filter_map(|z| DnsName::parse_host(z).ok())
                .collect();
            for Published { host, global } in K::published(root, facts) {
                // The glbc's ownership records name the GlobalIngress.
                let root_ref = format!("{}/{}", global.0, global.1);
                let Ok(parsed) = DnsName::parse_host(&host) else {
                    items.push(Item::fail(host.as_str(), "not a valid DNS name"));
                    continue;
                };
                if !zones.is_empty() && parsed.zone_in(&zones).is_none() {
                    items.push(Item::fail(
                        host.as_str(),
                        format!("outside the zones given ({})", dns.zones.join(", ")),
                    ));
                    continue;
                }
                let owner_name = ownership::name_of(&parsed)
                    .map_or_else(String::new, |n| n.without_dot().to_string());
                let Some(found) = dns.hosts.get(&host) else {
                    continue;
                };
                let item = match &found.ownership {
                    Err(e) => Item::fail(
                        host.as_str(),
                        format!("cannot query its ownership record {owner_name}: {e}"),
                    ),
                    Ok(texts) => {
                        let owners: Vec<ownership::Owner> =
                            texts.iter().filter_map(|t| ownership::parse(t)).collect();
                        let ours = owners
                            .iter()
                            .any(|o| o.owner == dns.owner && o.root == root_ref);
                        let foreign: Vec<&ownership::Owner> = owners
                            .iter()
                            .filter(|o| !(o.owner == dns.owner && o.root == root_ref))
                            .collect();
                        let all_shared = owners.iter().all(|o| o.shared);
                        let shared_with_us = ours && all_shared;
                        if !foreign.is_empty() && !shared_with_us {
                            let who: Vec<String> = foreign
                                .iter()
                                .map(|o| format!("owner={} root={}", o.owner, o.root))
                                .collect();
                            Item::fail(
                                host.as_str(),
                                format!(
                                    "owned by someone else ({}, TXT {owner_name}); the glbc \
                                     never touches it",
                                    who.join("; ")
                                ),
                            )
                        } else if ours {
                            Item::pass(
                                host.as_str(),
                                format!("owned by {} for {root_ref}", dns.owner),
                            )
                        } else if !texts.is_empty() {
                            Item::fail(
                                host.as_str(),
                                format!("TXT {owner_name} holds no kcp-ingress ownership record"),
                            )
                        } else {
                            Item::fail(
                                host.as_str(),
                                format!(
                                    "not published: no ownership record {owner_name} (owner {})",
                                    dns.owner
                                ),
                            )
                        }
                    }
                };
                if item.verdict == Verdict::Fail {
                    hint = Some(format!(
                        "dig @{} -p {} {owner_name} TXT",
                        dns.server.ip(),
                        dns.server.port()
                    ));
                }
                items.push(item);
            }
        }
    }
    for key in &globals {
        let status = global_of(facts, key).and_then(|g| g.status.as_ref());
        let published = status.and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == conditions::DNS_PUBLISHED)
        });
        // The glbc's first verdict on a new root waits for an address.
        let awaited = status.is_some_and(GlobalIngressStatus::awaits_first_address);
        let subject = if globals.len() > 1 {
            format!("{} ({}/{})", conditions::DNS_PUBLISHED, key.0, key.1)
        } else {
            conditions::DNS_PUBLISHED.to_string()
        };
        items.push(match published {
            None if awaited => Item::fail(
                subject,
                "not reported yet: no cluster reports a load-balancer address (the glbc's \
                 first verdict waits for one)",
            ),
            None => Item::fail(
                subject,
                "not reported (is the glbc running, and for this namespace?)",
            ),
            Some(c) if c.status == "True" => Item::pass(subject, condition_text(c)),
            Some(c) => Item::fail(subject, condition_text(c)),
        });
    }
    let hop = Hop::of_items(hop::DNS_RECORDS, "published, every name ours", items);
    match hint {
        Some(hint) => hop.hint(hint),
        None => hop,
    }
}

pub(super) fn dns_answers_hop<K: Explained>(root: &K, facts: &Facts<K>) -> Hop {
    let Some(dns) = &facts.dns else {
        return Hop::single(
            hop::DNS_ANSWERS,
            Verdict::Skip,
            "not queried: give --dns-server",
        );
    };
    let mut items = Vec::new();
    let mut hint = None;
    for Published { host, global } in K::published(root, facts) {
        let records = global_of(facts, &global)
            .and_then(|g| g.status.as_ref())
            .map(|s| s.dns_records.clone())
            .unwrap_or_default();
        if host.starts_with("*.") {
            items.push(Item::skip(
                host.as_str(),
                "a wildcard: query a name under it",
            ));
            continue;
        }
        let Some(found) = dns.hosts.get(&host) else {
            continue;
        };
        let wanted: BTreeSet<String> = records
            .iter()
            .filter(|r| dns_host(&r.name) == dns_host(&host))
            .filter(|r| matches!(r.record_type.as_str(), "A" | "AAAA" | "CNAME"))
            .filter(|r| [state::PUBLISHED, state::RETAINED].contains(&r.state.as_str()))
            .flat_map(|r| r.targets.iter().map(|t| dns_host(t)))
            .collect();
        let item = match &found.answers {
            Err(e) => Item::fail(host.as_str(), format!("the query failed: {e}")),
            Ok(answers) if answers.is_empty() => Item::fail(
                host.as_str(),
                "no answer (NXDOMAIN, or no A, AAAA or CNAME record)",
            ),
            Ok(answers) => {
                let got: BTreeSet<String> = answers.iter().map(|a| dns_host(a)).collect();
                if wanted.is_empty() {
                    Item::skip(
                        host.as_str(),
                        format!(
                            "answers {}; the GlobalIngress lists no record of it as published",
                            join(&got)
                        ),
                    )
                } else if got == wanted {
                    Item::pass(host.as_str(), format!("answers {}", join(&got)))
                } else {
                    Item::fail(
                        host.as_str(),
                        format!(
                            "answers {}, but the GlobalIngress lists {} as published",
                            join(&got),
                            join(&wanted)
                        ),
                    )
                }
            }
        };
        if item.verdict == Verdict::Fail {
            hint.get_or_insert_with(|| {
                format!("dig @{} -p {} {host}", dns.server.ip(), dns.server.port())
            });
        }
        items.push(item);
    }
    let hop = Hop::of_items(hop::DNS_ANSWERS, "every host answers as published", items);
    match hint {
        Some(hint) => hop.hint(hint),
        None => hop,
    }
}
