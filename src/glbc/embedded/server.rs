//! The embedded server's I/O: UDP and TCP on one address through
//! hickory-server (its catalog answers REFUSED for names outside every
//! zone), and NOTIFY to the secondaries when a zone changes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::{DNSClass, LowerName, Record, RecordType};
use hickory_server::Server;
use hickory_server::zone_handler::{Catalog, ZoneHandler};
use tokio::net::{TcpListener, UdpSocket};
use tracing::{debug, info, warn};

use super::zone::EmbeddedZone;
use crate::runtime::CancellationToken;

/// How long a TCP client may stay idle before it is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How long a secondary has to acknowledge a NOTIFY, and how many tries.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);
const NOTIFY_TRIES: u32 = 3;

/// Serves `zones` on `listen` (UDP and TCP) until `shutdown`; NOTIFY goes
/// to `secondaries` whenever a zone changes. Errors only if a socket
/// cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    zones: &[Arc<EmbeddedZone>],
    secondaries: &[SocketAddr],
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    let mut catalog = Catalog::new();
    for zone in zones {
        let handler: Arc<dyn ZoneHandler> = zone.clone();
        catalog.upsert(LowerName::new(zone.name()), vec![handler]);
    }
    let udp = UdpSocket::bind(listen).await?;
    let tcp = TcpListener::bind(listen).await?;
    let mut server = Server::new(catalog);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE, 32);
    info!(%listen, zones = zones.len(), "embedded DNS server listening (UDP and TCP)");
    let token = shutdown.clone();
    tokio::spawn(async move {
        token.cancelled().await;
        if let Err(err) = server.shutdown_gracefully().await {
            warn!(%err, "embedded DNS server stopped with an error");
        }
    });
    if !secondaries.is_empty() {
        for zone in zones {
            tokio::spawn(notify_loop(
                zone.clone(),
                secondaries.to_vec(),
                shutdown.clone(),
            ));
        }
    }
    Ok(())
}

/// On every change of `zone`, NOTIFY each secondary (RFC 1996), a few
/// tries each; a secondary also polls the SOA on its refresh schedule.
async fn notify_loop(
    zone: Arc<EmbeddedZone>,
    secondaries: Vec<SocketAddr>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = zone.changed.notified() => {}
        }
        let soa = zone.soa().await;
        let serial = match &soa.data {
            hickory_proto::rr::RData::SOA(soa) => soa.serial,
            _ => 0,
        };
        for secondary in &secondaries {
            match notify(&zone, &soa, *secondary).await {
                Ok(()) => debug!(zone = %zone.name(), %secondary, serial, "NOTIFY acknowledged"),
                Err(err) => {
                    warn!(zone = %zone.name(), %secondary, serial, %err, "NOTIFY not acknowledged; the secondary will poll on its refresh schedule")
                }
            }
        }
    }
}

/// One NOTIFY, the zone's SOA in its answer section (RFC 1996 3.7).
async fn notify(zone: &EmbeddedZone, soa: &Record, secondary: SocketAddr) -> Result<(), String> {
    let bind: SocketAddr = if secondary.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|e| format!("{e}"))?;
    let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    let mut last = String::new();
    for _ in 0..NOTIFY_TRIES {
        let id: u16 = rand_id();
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.op_code = OpCode::Notify;
        message.metadata.authoritative = true;
        message.metadata.recursion_desired = false;
        let mut query = Query::new();
        query
            .set_name(zone.name().clone())
            .set_query_class(DNSClass::IN)
            .set_query_type(RecordType::SOA);
        message.add_query(query);
        message.add_answer(soa.clone());
        let bytes = message.to_vec().map_err(|e| e.to_string())?;
        socket
            .send_to(&bytes, secondary)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        match tokio::time::timeout(NOTIFY_TIMEOUT, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => match Message::from_vec(&buf[..n]) {
                Ok(reply) if reply.metadata.id == id => return Ok(()),
                Ok(_) => last = "a reply to another message".into(),
                Err(e) => last = e.to_string(),
            },
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "no reply".into(),
        }
    }
    Err(last)
}

fn rand_id() -> u16 {
    let state = std::hash::BuildHasher::hash_one(
        &std::collections::hash_map::RandomState::new(),
        std::time::Instant::now(),
    );
    (crate::glbc::traffic::splitmix64(state) & 0xFFFF) as u16
}
