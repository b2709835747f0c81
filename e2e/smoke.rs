//! Smoke tests: every server of the test environment is real and usable.

use anyhow::{Context, ensure};

use k8s_openapi::api::networking::v1::Ingress;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use kcp_ingress::apis::{Cluster, ClusterStatus, GlobalIngress, GlobalIngressSpec};
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
