//! Smoke tests: every server of the test environment is real and usable.

use anyhow::{Context, ensure};

use k8s_openapi::api::networking::v1::Ingress;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kcp_ingress::apis::{Cluster, ClusterStatus, GlobalIngress, GlobalIngressSpec};
use kcp_ingress::gateway_api::gateway::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutes,
    GatewayListenersAllowedRoutesNamespaces, GatewayListenersAllowedRoutesNamespacesFrom,
    GatewaySpec, GatewayStatus, GatewayStatusAddresses,
};
use kcp_ingress::gateway_api::http_route::{
    HttpRoute, HttpRouteParentRefs, HttpRouteSpec, HttpRouteStatus, HttpRouteStatusParents,
    HttpRouteStatusParentsParentRef,
};
use kcp_ingress::glbc::dns::rfc2136::{
    Prerequisite, RecordChange, Rfc2136Client, RrsetChange, Update, fqdn, query,
};
use kcp_ingress::glbc::dns::{DnsError, TsigKey};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;

use crate::env::TestEnv;

fn sample_ingress(name: &str, host: &str) -> anyhow::Result<Ingress> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": { "name": name },
        "spec": { "rules": [{ "host": host, "http": { "paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": { "service": { "name": "web", "port": { "number": 80 } } }
        }]}}]}
    }))?)
}

/// kube-rs creates, reads and deletes an Ingress in every apiserver.
pub async fn ingress_round_trip_in_every_apiserver(env: &TestEnv) -> anyhow::Result<()> {
    for server in env.apiservers() {
        let client = env.client(&server).await?;
        let ingresses: Api<Ingress> = Api::namespaced(client, "default");
        let host = format!("{server}.smoke.kcp-ingress.test");
        let created = ingresses
            .create(&PostParams::default(), &sample_ingress("smoke", &host)?)
            .await
            .with_context(|| format!("creating an Ingress in {server}"))?;
        let read = ingresses.get("smoke").await?;
        ensure!(
            read.metadata.uid == created.metadata.uid,
            "{server}: read back a different object"
        );
        let rules = read.spec.and_then(|s| s.rules).unwrap_or_default();
        ensure!(
            rules.len() == 1 && rules[0].host.as_deref() == Some(host.as_str()),
            "{server}: the Ingress read back has rules {rules:?}"
        );
        ingresses.delete("smoke", &DeleteParams::default()).await?;
        ensure!(
            ingresses.get_opt("smoke").await?.is_none(),
            "{server}: the Ingress is still there after delete"
        );
    }
    Ok(())
}

/// The control plane serves Cluster and GlobalIngress, status subresource included.
pub async fn control_plane_serves_both_crds(env: &TestEnv) -> anyhow::Result<()> {
    let client = env.client("control-plane").await?;

    let clusters: Api<Cluster> = Api::all(client.clone());
    let mut cluster = Cluster::new("smoke-east", Default::default());
    cluster.spec.weight = Some(3);
    clusters.create(&PostParams::default(), &cluster).await?;
    let status = serde_json::json!({
        "apiVersion": "kcp-ingress.dev/v1alpha1",
        "kind": "Cluster",
        "status": ClusterStatus { last_heartbeat_time: None, ..Default::default() },
    });
    clusters
        .patch_status(
            "smoke-east",
            &PatchParams::apply("e2e-smoke").force(),
            &Patch::Apply(&status),
        )
        .await
        .context("writing Cluster status")?;
    let read = clusters.get("smoke-east").await?;
    ensure!(
        read.spec.weight == Some(3),
        "Cluster spec was not stored: {read:?}"
    );
    clusters
        .delete("smoke-east", &DeleteParams::default())
        .await?;

    let globals: Api<GlobalIngress> = Api::namespaced(client, "default");
    let global = GlobalIngress {
        metadata: ObjectMeta {
            name: Some("smoke".into()),
            ..Default::default()
        },
        spec: GlobalIngressSpec {
            hosts: vec!["a.kcp-ingress.test".into()],
            root: None,
        },
        status: None,
    };
    globals.create(&PostParams::default(), &global).await?;
    let read = globals.get("smoke").await?;
    ensure!(
        read.spec.hosts == ["a.kcp-ingress.test"],
        "GlobalIngress spec was not stored: {read:?}"
    );
    globals.delete("smoke", &DeleteParams::default()).await?;
    Ok(())
}

fn condition(type_: &str, reason: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: "True".into(),
        reason: reason.into(),
        message: String::new(),
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
        observed_generation: Some(1),
    }
}

/// The generated Gateway API types round-trip through the control plane
/// and every cluster: a Gateway and an HTTPRoute attached to it are
/// created, read back and given a status through the status subresource,
/// the way an implementation reports it.
pub async fn gateway_and_httproute_round_trip(env: &TestEnv) -> anyhow::Result<()> {
    for server in env.apiservers() {
        let client = env.client(&server).await?;
        let gateways: Api<Gateway> = Api::namespaced(client.clone(), "default");
        let routes: Api<HttpRoute> = Api::namespaced(client, "default");
        let gateway = Gateway::new(
            "smoke-gw",
            GatewaySpec {
                gateway_class_name: "smoke".into(),
                listeners: vec![GatewayListeners {
                    name: "web".into(),
                    port: 80,
                    protocol: "HTTP".into(),
                    hostname: Some("*.smoke.kcp-ingress.test".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        let created = gateways
            .create(&PostParams::default(), &gateway)
            .await
            .with_context(|| format!("creating a Gateway in {server}"))?;
        let read = gateways.get("smoke-gw").await?;
        // What was sent, plus the defaults the CRD declares.
        let mut expected = gateway.spec.clone();
        expected.listeners[0].allowed_routes = Some(GatewayListenersAllowedRoutes {
            namespaces: Some(GatewayListenersAllowedRoutesNamespaces {
                from: Some(GatewayListenersAllowedRoutesNamespacesFrom::Same),
                selector: None,
            }),
            kinds: None,
        });
        ensure!(
            read.metadata.uid == created.metadata.uid && read.spec == expected,
            "{server}: the Gateway read back differs: {read:?}"
        );

        let status = GatewayStatus {
            addresses: Some(vec![GatewayStatusAddresses {
                r#type: Some("IPAddress".into()),
                value: "127.0.1.1".into(),
            }]),
            conditions: Some(vec![
                condition("Accepted", "Accepted"),
                condition("Programmed", "Programmed"),
            ]),
            listeners: None,
        };
        let patch = serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "status": status,
        });
        gateways
            .patch_status(
                "smoke-gw",
                &PatchParams::apply("e2e-smoke").force(),
                &Patch::Apply(&patch),
            )
            .await
            .with_context(|| format!("{server}: writing Gateway status"))?;
        let read = gateways.get_status("smoke-gw").await?;
        let got = read.status.unwrap_or_default();
        ensure!(
            got.addresses == status.addresses
                && got
                    .conditions
                    .iter()
                    .flatten()
                    .map(|c| &c.type_)
                    .collect::<Vec<_>>()
                    == ["Accepted", "Programmed"],
            "{server}: the Gateway status read back differs: {got:?}"
        );

        let route = HttpRoute::new(
            "smoke-route",
            HttpRouteSpec {
                hostnames: Some(vec!["a.smoke.kcp-ingress.test".into()]),
                parent_refs: Some(vec![HttpRouteParentRefs {
                    name: "smoke-gw".into(),
                    section_name: Some("web".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        );
        routes
            .create(&PostParams::default(), &route)
            .await
            .with_context(|| format!("creating an HTTPRoute in {server}"))?;
        let read = routes.get("smoke-route").await?;
        let parents = read.spec.parent_refs.clone().unwrap_or_default();
        // The server fills in the defaults the CRD declares.
        ensure!(
            read.spec.hostnames == route.spec.hostnames
                && parents.len() == 1
                && parents[0].name == "smoke-gw"
                && parents[0].group.as_deref() == Some("gateway.networking.k8s.io")
                && parents[0].kind.as_deref() == Some("Gateway"),
            "{server}: the HTTPRoute read back differs: {read:?}"
        );
        let status = HttpRouteStatus {
            parents: vec![HttpRouteStatusParents {
                controller_name: "kcp-ingress.dev/e2e-smoke".into(),
                parent_ref: HttpRouteStatusParentsParentRef {
                    name: "smoke-gw".into(),
                    section_name: Some("web".into()),
                    ..Default::default()
                },
                conditions: vec![
                    condition("Accepted", "Accepted"),
                    condition("ResolvedRefs", "ResolvedRefs"),
                ],
            }],
        };
        let patch = serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "status": status,
        });
        routes
            .patch_status(
                "smoke-route",
                &PatchParams::apply("e2e-smoke").force(),
                &Patch::Apply(&patch),
            )
            .await
            .with_context(|| format!("{server}: writing HTTPRoute status"))?;
        let read = routes.get_status("smoke-route").await?;
        let got = read.status.map(|s| s.parents).unwrap_or_default();
        ensure!(
            got.len() == 1
                && got[0].controller_name == "kcp-ingress.dev/e2e-smoke"
                && got[0].parent_ref.name == "smoke-gw"
                && got[0].conditions.len() == 2,
            "{server}: the HTTPRoute status read back differs: {got:?}"
        );

        routes
            .delete("smoke-route", &DeleteParams::default())
            .await?;
        gateways
            .delete("smoke-gw", &DeleteParams::default())
            .await?;
        ensure!(
            routes.get_opt("smoke-route").await?.is_none()
                && gateways.get_opt("smoke-gw").await?.is_none(),
            "{server}: the Gateway or HTTPRoute is still there after delete"
        );
    }
    Ok(())
}

/// The DNS server, zone and key of the environment, from `dns.env`.
fn dns_client(env: &TestEnv, secret: &str) -> anyhow::Result<(Rfc2136Client, SocketAddr)> {
    let server: SocketAddr =
        format!("{}:{}", env.dns("DNS_SERVER"), env.dns("DNS_PORT")).parse()?;
    let key = TsigKey::from_base64(
        env.dns("DNS_TSIG_KEY_NAME"),
        env.dns("DNS_TSIG_ALGORITHM").parse()?,
        secret,
    )?;
    let client = Rfc2136Client::new(server, env.dns("DNS_ZONE"), &key, DNS_TIMEOUT)?;
    Ok((client, server))
}

const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// One RFC 2136 update signed with TSIG is answered NOERROR; a following
/// query returns the records with their TTL, and a signed zone transfer
/// lists them.
pub async fn tsig_signed_update_is_applied_and_answered(env: &TestEnv) -> anyhow::Result<()> {
    let (client, server) = dns_client(env, env.dns("DNS_TSIG_SECRET"))?;
    let name = fqdn(&format!("signed.{}", env.dns("DNS_ZONE")))?;
    let v4 = [Ipv4Addr::new(127, 0, 1, 1), Ipv4Addr::new(127, 0, 1, 2)];
    let v6 = Ipv6Addr::LOCALHOST;
    client
        .replace_rrsets(&[
            RrsetChange {
                name: name.clone(),
                record_type: RecordType::A,
                ttl: 42,
                data: v4.iter().map(|ip| RData::A(A(*ip))).collect(),
            },
            RrsetChange {
                name: name.clone(),
                record_type: RecordType::AAAA,
                ttl: 42,
                data: vec![RData::AAAA(AAAA(v6))],
            },
        ])
        .await
        .context("signed update")?;

    let (rcode, answers) = query(server, &name, RecordType::A, DNS_TIMEOUT).await?;
    ensure!(
        rcode == ResponseCode::NoError,
        "query for {name} answered {rcode}"
    );
    let mut got: Vec<(u32, String)> = answers
        .iter()
        .map(|r| (r.ttl, r.data.to_string()))
        .collect();
    got.sort();
    ensure!(
        got == [(42, "127.0.1.1".to_string()), (42, "127.0.1.2".to_string())],
        "A answers for {name}: {got:?}"
    );
    let (_, answers) = query(server, &name, RecordType::AAAA, DNS_TIMEOUT).await?;
    ensure!(
        answers.len() == 1 && answers[0].data == RData::AAAA(AAAA(v6)),
        "AAAA answers for {name}: {answers:?}"
    );

    let zone = client
        .transfer_zone()
        .await
        .context("signed zone transfer")?;
    let transferred = zone.iter().filter(|r| r.name == name).count();
    ensure!(
        transferred == 3,
        "the zone transfer holds {transferred} records of {name}: {zone:?}"
    );
    Ok(())
}

/// The same update signed with a wrong secret is refused by the server
/// (NOTAUTH, TSIG error BADSIG) and changes nothing.
pub async fn update_with_wrong_tsig_secret_is_refused(env: &TestEnv) -> anyhow::Result<()> {
    let wrong = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=";
    ensure!(
        wrong != env.dns("DNS_TSIG_SECRET"),
        "the environment's secret is the wrong one"
    );
    let (client, server) = dns_client(env, wrong)?;
    let name = fqdn(&format!("forged.{}", env.dns("DNS_ZONE")))?;
    let result = client
        .replace_rrsets(&[RrsetChange {
            name: name.clone(),
            record_type: RecordType::A,
            ttl: 42,
            data: vec![RData::A(A(Ipv4Addr::new(127, 0, 1, 66)))],
        }])
        .await;
    match result {
        Err(DnsError::TsigRejected {
            rcode: ResponseCode::NotAuth,
            tsig_error: Some(TsigError::BadSig),
            ..
        }) => {}
        other => anyhow::bail!("expected NOTAUTH with BADSIG, got {other:?}"),
    }
    let (rcode, answers) = query(server, &name, RecordType::A, DNS_TIMEOUT).await?;
    ensure!(
        rcode == ResponseCode::NXDomain && answers.is_empty(),
        "the forged record was published: {rcode} {answers:?}"
    );
    Ok(())
}

/// RFC 2136 prerequisites are enforced by the server: a claim that expects
/// a free name is refused (YXRRSET) when someone wrote there first, and
/// changes nothing; a change that expects our ownership TXT with exactly
/// our value is refused (NXRRSET) when the TXT says otherwise; single
/// records are added to and removed from an RRset without touching the
/// others in it.
pub async fn prerequisites_guard_updates_and_records_change_one_by_one(
    env: &TestEnv,
) -> anyhow::Result<()> {
    let (client, server) = dns_client(env, env.dns("DNS_TSIG_SECRET"))?;
    let zone = env.dns("DNS_ZONE");
    let host = fqdn(&format!("taken.{zone}"))?;
    let owner = fqdn(&format!("_kcp-ingress.taken.{zone}"))?;
    let ip = |last: u8| RData::A(A(Ipv4Addr::new(127, 0, 1, last)));
    let txt = |text: &str| RData::TXT(TXT::new(vec![text.to_string()]));
    let answers = |name: Name, record_type: RecordType| async move {
        let (_, records) = query(server, &name, record_type, DNS_TIMEOUT).await?;
        let mut data: Vec<String> = records.iter().map(|r| r.data.to_string()).collect();
        data.sort();
        anyhow::Ok(data)
    };

    // Someone else's record, written without any ownership TXT.
    client
        .replace_rrsets(&[RrsetChange {
            name: host.clone(),
            record_type: RecordType::A,
            ttl: 30,
            data: vec![ip(99)],
        }])
        .await?;
    let claim = Update {
        prerequisites: vec![
            Prerequisite::Absent {
                name: host.clone(),
                record_type: RecordType::A,
            },
            Prerequisite::Absent {
                name: owner.clone(),
                record_type: RecordType::TXT,
            },
        ],
        rrsets: vec![
            RrsetChange {
                name: host.clone(),
                record_type: RecordType::A,
                ttl: 30,
                data: vec![ip(1)],
            },
            RrsetChange {
                name: owner.clone(),
                record_type: RecordType::TXT,
                ttl: 30,
                data: vec![txt("heritage=kcp-ingress,owner=a")],
            },
        ],
        records: vec![],
    };
    match client.update(&claim).await {
        Err(DnsError::PrerequisiteFailed {
            rcode: ResponseCode::YXRRSet,
            ..
        }) => {}
        other => anyhow::bail!("a claim of a taken name: expected YXRRSET, got {other:?}"),
    }
    ensure!(answers(host.clone(), RecordType::A).await? == ["127.0.1.99"]);
    ensure!(answers(owner.clone(), RecordType::TXT).await?.is_empty());

    // The name freed, the same claim goes through.
    client
        .replace_rrsets(&[RrsetChange {
            name: host.clone(),
            record_type: RecordType::A,
            ttl: 0,
            data: vec![],
        }])
        .await?;
    client
        .update(&claim)
        .await
        .context("claim of a free name")?;
    ensure!(answers(host.clone(), RecordType::A).await? == ["127.0.1.1"]);

    // A change guarded by another owner's TXT value is refused.
    let guarded = |value: &str, records: Vec<RecordChange>| Update {
        prerequisites: vec![Prerequisite::Exactly {
            name: owner.clone(),
            record_type: RecordType::TXT,
            data: vec![txt(value)],
        }],
        rrsets: vec![],
        records,
    };
    let add = RecordChange::Add {
        name: host.clone(),
        ttl: 30,
        data: vec![ip(2)],
    };
    match client
        .update(&guarded("heritage=kcp-ingress,owner=b", vec![add.clone()]))
        .await
    {
        Err(DnsError::PrerequisiteFailed {
            rcode: ResponseCode::NXRRSet,
            ..
        }) => {}
        other => {
            anyhow::bail!("a change under another owner's TXT: expected NXRRSET, got {other:?}")
        }
    }
    ensure!(answers(host.clone(), RecordType::A).await? == ["127.0.1.1"]);

    // Under our own TXT: one record added, then the first one removed.
    client
        .update(&guarded("heritage=kcp-ingress,owner=a", vec![add]))
        .await
        .context("adding a record under our TXT")?;
    ensure!(answers(host.clone(), RecordType::A).await? == ["127.0.1.1", "127.0.1.2"]);
    client
        .update(&guarded(
            "heritage=kcp-ingress,owner=a",
            vec![RecordChange::Remove {
                name: host.clone(),
                data: vec![ip(1)],
            }],
        ))
        .await
        .context("removing a record under our TXT")?;
    ensure!(answers(host.clone(), RecordType::A).await? == ["127.0.1.2"]);
    Ok(())
}
