//! What one root costs the controller process, object by object, as it
//! stores it (issue #16): a counting global allocator, 1,000 objects of
//! each kind built the way the bulk scenario's are (one host, the shared
//! backend Service, 3 clusters), bytes requested and live allocations per
//! object. `cargo run --example mem_per_root`; docs/BENCHMARKS.md
//! ("Memory model") has the figures; since session 11 also the
//! `Compact` form the controller keeps its GlobalIngresses in (and, for
//! comparison, roots and leaves in that form); since session 12 the
//! `Compact` forms and `CopyRecord`s keep no `ObjectMeta` in the store
//! (asserted below) and a last line sums what the controller stores per
//! root. Heap only: glibc adds
//! about 16 bytes per allocation (counted in the last column),
//! fragmentation is not.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

use kcp_ingress::apis::GlobalIngress;
use kcp_ingress::runtime::compact::Compact;
use kcp_ingress::runtime::stored::Stored;
use kcp_ingress::syncer::cached::Cached;
use kcp_ingress::syncer::copy_record::CopyRecord;

struct Counting;
static BYTES: AtomicIsize = AtomicIsize::new(0);
static COUNT: AtomicIsize = AtomicIsize::new(0);
/// The last measurement, per object, with glibc's overhead.
static LAST: AtomicIsize = AtomicIsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        BYTES.fetch_add(l.size() as isize, Relaxed);
        COUNT.fetch_add(1, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        BYTES.fetch_sub(l.size() as isize, Relaxed);
        COUNT.fetch_sub(1, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        BYTES.fetch_add(n as isize - l.size() as isize, Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static A: Counting = Counting;

const N: usize = 1000;

fn measure<T>(what: &str, make: impl FnMut(usize) -> T) -> Vec<T> {
    let (b0, c0) = (BYTES.load(Relaxed), COUNT.load(Relaxed));
    let kept: Vec<T> = (0..N).map(make).collect();
    let (b1, c1) = (BYTES.load(Relaxed), COUNT.load(Relaxed));
    let vec = (N * std::mem::size_of::<T>()) as isize;
    let (b, c) = ((b1 - b0 - vec) / N as isize, (c1 - c0 - 1) / N as isize);
    // glibc: 8 bytes of header per chunk, sizes rounded up to 16 (min 32).
    println!(
        "{what:<58} {b:>6} B requested, {c:>3} allocs (~{:>6} B with malloc overhead)",
        b + c * 16
    );
    LAST.store(b + c * 16, Relaxed);
    kept
}

fn root(i: usize) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
      "metadata": {"name": format!("bulk-{i:05}"), "namespace": "bench",
        "uid": format!("0c9d3f5e-1b7a-4c8e-9a2f-{i:012}"), "resourceVersion": format!("{}", 1000000 + i),
        "generation": 1, "creationTimestamp": "2026-11-27T15:00:00Z",
        "labels": {"bench": "bulk"},
        "finalizers": ["kcp-ingress.dev/cleanup"]},
      "spec": {"rules": [{"host": format!("bulk-{i:05}.bench.example.test"), "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
      "status": {"loadBalancer": {"ingress": [{"ip": "127.0.1.1"}, {"ip": "127.0.1.2"}, {"ip": "127.0.1.3"}]}}})
}

fn leaf(i: usize, c: usize) -> Value {
    let mut v = root(i);
    let m = &mut v["metadata"];
    m["name"] = json!(format!("bulk-{i:05}--bench"));
    m["namespace"] = json!(format!("kcp-ingress-cluster-cluster-{c}"));
    m["uid"] = json!(format!("1c9d3f5e-1b7a-4c8e-9a2f-{i:012}"));
    m["labels"] = json!({"bench": "bulk", "kcp-ingress.dev/root": format!("bulk-{i:05}"),
        "kcp-ingress.dev/root-namespace": "bench"});
    m["finalizers"] = json!([format!("kcp-ingress.dev/syncer-cluster-{c}")]);
    v["status"] = json!({"loadBalancer": {"ingress": [{"ip": format!("127.0.1.{c}")}]}});
    v
}

fn copy(i: usize, c: usize) -> Value {
    let mut v = leaf(i, c);
    let m = &mut v["metadata"];
    m["namespace"] = json!("bench");
    m["name"] = json!(format!("bulk-{i:05}"));
    m["labels"] = json!({"bench": "bulk", "kcp-ingress.dev/syncer": format!("cluster-{c}")});
    m["annotations"] = json!({"kcp-ingress.dev/applied-hash": "0123456789abcdef0123",
        "kcp-ingress.dev/origin": "kcp-ingress-cluster-cluster-1/bulk-00001--bench"});
    m.as_object_mut().unwrap().remove("finalizers");
    v
}

fn global(i: usize) -> Value {
    json!({"apiVersion": "kcp-ingress.dev/v1alpha1", "kind": "GlobalIngress",
      "metadata": {"name": format!("bulk-{i:05}"), "namespace": "bench",
        "uid": format!("2c9d3f5e-1b7a-4c8e-9a2f-{i:012}"), "resourceVersion": format!("{}", 1000000 + i),
        "generation": 1, "creationTimestamp": "2026-11-27T15:00:00Z",
        "finalizers": ["kcp-ingress.dev/dns"],
        "ownerReferences": [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": format!("bulk-{i:05}"),
           "uid": format!("0c9d3f5e-1b7a-4c8e-9a2f-{i:012}"), "controller": true, "blockOwnerDeletion": true}]},
      "spec": {"hosts": [format!("bulk-{i:05}.bench.example.test")],
               "root": {"group": "networking.k8s.io", "kind": "Ingress", "name": format!("bulk-{i:05}")}},
      "status": {"observedGeneration": 1,
        "clusters": (1..=3).map(|c| json!({"cluster": format!("cluster-{c}"), "healthy": true,
            "addresses": [{"ip": format!("127.0.1.{c}")}], "lastChangeTime": "2026-11-27T15:00:01Z"})).collect::<Vec<_>>(),
        "conditions": [
          {"type": "Ready", "status": "True", "reason": "Placed", "message": "placed on 3 clusters: cluster-1, cluster-2, cluster-3", "lastTransitionTime": "2026-11-27T15:00:00Z", "observedGeneration": 1},
          {"type": "Degraded", "status": "False", "reason": "AllClustersHealthy", "message": "", "lastTransitionTime": "2026-11-27T15:00:00Z", "observedGeneration": 1}]}})
}

fn main() {
    let json_len = |v: &Value| v.to_string().len();
    println!(
        "JSON sizes: root {} B, leaf {} B, copy {} B, GlobalIngress {} B",
        json_len(&root(1)),
        json_len(&leaf(1, 1)),
        json_len(&copy(1, 1)),
        json_len(&global(1))
    );
    let srcs: Vec<Value> = (0..N).map(root).collect();
    let _r = measure("typed root Ingress (alone)", |i| {
        serde_json::from_value::<Ingress>(srcs[i].clone()).unwrap()
    });
    let leaves: Vec<Value> = (0..N).map(|i| leaf(i, 1)).collect();
    let _l = measure("typed leaf Ingress (alone)", |i| {
        serde_json::from_value::<Ingress>(leaves[i].clone()).unwrap()
    });
    let mut w: Writer<Ingress> = Writer::new(());
    let _ = measure(
        "typed leaf in a reflector store (object + key + slot)",
        |i| {
            w.apply_watcher_event(&Event::Apply(
                serde_json::from_value::<Ingress>(leaves[i].clone()).unwrap(),
            ));
        },
    );
    let mut w2: Writer<Ingress> = Writer::new(());
    let _ = measure(
        "typed root in a reflector store (object + key + slot)",
        |i| {
            w2.apply_watcher_event(&Event::Apply(
                serde_json::from_value::<Ingress>(srcs[i].clone()).unwrap(),
            ));
        },
    );
    println!(
        "size_of: Ingress {} ObjectMeta {} GlobalIngress {} Cached {} CopyRecord {} Compact {}",
        std::mem::size_of::<Ingress>(),
        std::mem::size_of::<kube::api::ObjectMeta>(),
        std::mem::size_of::<GlobalIngress>(),
        std::mem::size_of::<Cached>(),
        std::mem::size_of::<CopyRecord>(),
        std::mem::size_of::<Compact<GlobalIngress>>()
    );
    let globals: Vec<Value> = (0..N).map(global).collect();
    let mut gw: Writer<GlobalIngress> = Writer::new(());
    let _ = measure("typed GlobalIngress, slimmed, in a store", |i| {
        let mut g: GlobalIngress = serde_json::from_value(globals[i].clone()).unwrap();
        kcp_ingress::controller::slim::global_ingress(&mut g);
        gw.apply_watcher_event(&Event::Apply(g));
    });
    let copies: Vec<Value> = (0..N).map(|i| copy(i, 1)).collect();
    let ar = Arc::new(ApiResource::erase::<Ingress>(&()));
    let mut cw: Writer<Cached> = Writer::new(ar.clone());
    let mut cw2: Writer<Cached> = Writer::new(ar.clone());
    // Session 10's `Cached::slim_copy` (removed since): `slim`, less the
    // type, resourceVersion, creation timestamp and generation.
    let _ = measure("Cached copy (session 10: slim_copy) in a store", |i| {
        let mut c: Cached = serde_json::from_value(copies[i].clone()).unwrap();
        c.types = None;
        c.metadata.resource_version = None;
        c.metadata.creation_timestamp = None;
        c.metadata.generation = None;
        c.slim();
        cw2.apply_watcher_event(&Event::Apply(c));
    });
    // Since session 11: a `CopyRecord`, as listed (with its text, until a
    // sync compares it) and once verified (the steady state).
    let mut rw: Writer<CopyRecord> = Writer::new(ar.clone());
    let _ = measure("CopyRecord as listed (text kept) in a store", |i| {
        let mut c: CopyRecord = serde_json::from_value(copies[i].clone()).unwrap();
        c.forget_version();
        rw.apply_watcher_event(&Event::Apply(c));
    });
    drop(rw);
    let mut vw: Writer<CopyRecord> = Writer::new(ar.clone());
    let reader = vw.as_reader();
    let _ = measure("CopyRecord verified (steady state) in a store", |i| {
        let mut c: CopyRecord = serde_json::from_value(copies[i].clone()).unwrap();
        c.forget_version();
        vw.apply_watcher_event(&Event::Apply(c.clone()));
        if let Some(stored) = reader.get(&kube::runtime::reflector::ObjectRef::from_obj_with(
            &c,
            ar.clone(),
        )) {
            stored.verify(1);
        }
    });
    let copy_record = LAST.load(Relaxed);
    assert!(reader.state().iter().all(|r| !r.meta_built()));
    let _ = measure("Cached copy (session 9: slim) in a store", |i| {
        let mut c: Cached = serde_json::from_value(copies[i].clone()).unwrap();
        c.slim();
        cw.apply_watcher_event(&Event::Apply(c));
    });
    let mem = kcp_ingress::controller::memory::Memory::default();
    let cond = |t: &str, s: &str, r: &str, m: &str| {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: t.into(),
            status: s.into(),
            reason: r.into(),
            message: m.into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }
    };
    let targets: Vec<String> = vec!["cluster-1".into(), "cluster-2".into(), "cluster-3".into()];
    // Session 9's `RootMemory` (the strings themselves), for comparison.
    #[derive(Default)]
    #[allow(dead_code)]
    struct OldRootMemory {
        announced: std::collections::BTreeMap<String, (String, String, String)>,
        placed: Option<Vec<String>>,
        converged: bool,
        failures: u32,
        partial_since: Option<k8s_openapi::jiff::Timestamp>,
    }
    let mut old: std::collections::HashMap<String, OldRootMemory> = Default::default();
    let _ = measure("session 9 RootMemory per root (same content)", |i| {
        let m = old
            .entry(format!("0c9d3f5e-1b7a-4c8e-9a2f-{i:012}"))
            .or_default();
        m.announced.insert(
            "Ready".into(),
            (
                "True".into(),
                "Placed".into(),
                "placed on 3 clusters: cluster-1, cluster-2, cluster-3".into(),
            ),
        );
        m.announced.insert(
            "Degraded".into(),
            ("False".into(), "AllClustersHealthy".into(), String::new()),
        );
        m.placed = Some(targets.clone());
        m.converged = true;
    });
    let _ = measure(
        "controller Memory per root (2 announced, placed, converged)",
        |i| {
            let uid = format!("0c9d3f5e-1b7a-4c8e-9a2f-{i:012}");
            mem.announce(
                &uid,
                &cond(
                    "Ready",
                    "True",
                    "Placed",
                    "placed on 3 clusters: cluster-1, cluster-2, cluster-3",
                ),
            );
            mem.announce(&uid, &cond("Degraded", "False", "AllClustersHealthy", ""));
            mem.moved(&uid, &targets);
            mem.first_convergence(&uid);
        },
    );
    // What a structural change would give: the same objects kept as
    // compact text with their name, namespace and deletion timestamp
    // typed (what `Cached` does for the syncers), for comparison.
    let mut lw: Writer<Cached> = Writer::new(ar.clone());
    let _ = measure("leaf as compact text (Cached::slim) in a store", |i| {
        let mut c: Cached = serde_json::from_value(leaves[i].clone()).unwrap();
        c.slim();
        lw.apply_watcher_event(&Event::Apply(c));
    });
    let gar = Arc::new(ApiResource::erase::<GlobalIngress>(&()));
    let mut gcw: Writer<Cached> = Writer::new(gar);
    let _ = measure(
        "GlobalIngress as compact text (Cached::slim) in a store",
        |i| {
            let mut g: GlobalIngress = serde_json::from_value(globals[i].clone()).unwrap();
            kcp_ingress::controller::slim::global_ingress(&mut g);
            let mut c: Cached = serde_json::from_value(serde_json::to_value(g).unwrap()).unwrap();
            c.slim();
            gcw.apply_watcher_event(&Event::Apply(c));
        },
    );
    // Session 11: the controller's GlobalIngresses as it stores them now
    // (`Compact`: name, namespace, uid, resourceVersion and deletion
    // timestamp typed, the rest as compact JSON without apiVersion and
    // kind), and the same form for the roots and leaves, for comparison.
    let mut kw: Writer<Compact<GlobalIngress>> = Writer::new(());
    let _ = measure("GlobalIngress, slimmed, Compact in a store", |i| {
        let mut g: GlobalIngress = serde_json::from_value(globals[i].clone()).unwrap();
        kcp_ingress::controller::slim::global_ingress(&mut g);
        kw.apply_watcher_event(&Event::Apply(Compact::new(&g)));
    });
    let mut klw: Writer<Compact<Ingress>> = Writer::new(());
    let _ = measure("leaf Ingress, Compact in a store", |i| {
        let l: Ingress = serde_json::from_value(leaves[i].clone()).unwrap();
        klw.apply_watcher_event(&Event::Apply(Compact::new(&l)));
    });
    let mut krw: Writer<Compact<Ingress>> = Writer::new(());
    let _ = measure("root Ingress, Compact in a store", |i| {
        let r: Ingress = serde_json::from_value(srcs[i].clone()).unwrap();
        krw.apply_watcher_event(&Event::Apply(Compact::new(&r)));
    });
    // As the controller stores its roots and leaves since session 11
    // (`RootKind::Stored`): compact, with the root labels and the
    // placement annotation kept typed beside the text.
    let mut slw: Writer<Compact<Ingress>> = Writer::new(());
    let _ = measure("leaf Ingress, as the controller stores it", |i| {
        let l: Ingress = serde_json::from_value(leaves[i].clone()).unwrap();
        slw.apply_watcher_event(&Event::Apply(<Compact<Ingress> as Stored<Ingress>>::store(
            &l,
        )));
    });
    let stored_leaf = LAST.load(Relaxed);
    let mut srw: Writer<Compact<Ingress>> = Writer::new(());
    let _ = measure("root Ingress, as the controller stores it", |i| {
        let r: Ingress = serde_json::from_value(srcs[i].clone()).unwrap();
        srw.apply_watcher_event(&Event::Apply(<Compact<Ingress> as Stored<Ingress>>::store(
            &r,
        )));
    });
    let stored_root = LAST.load(Relaxed);
    // Session 13: the leaves named as the controller names them
    // (`naming::leaf_key`: `<root namespace>.<root>--<cluster>`), whose
    // root labels the compact form reads from the name; the line above
    // names them otherwise (`<root>--bench`, which spells the root label
    // only).
    let named: Vec<Value> = (0..N)
        .map(|i| {
            let mut v = leaf(i, 1);
            v["metadata"]["name"] = json!(format!("bench.bulk-{i:05}--cluster-1"));
            v
        })
        .collect();
    let mut snw: Writer<Compact<Ingress>> = Writer::new(());
    let _ = measure(
        "leaf Ingress, as the controller stores it, named by it",
        |i| {
            let l: Ingress = serde_json::from_value(named[i].clone()).unwrap();
            snw.apply_watcher_event(&Event::Apply(<Compact<Ingress> as Stored<Ingress>>::store(
                &l,
            )));
        },
    );
    let stored_named_leaf = LAST.load(Relaxed);
    // Since session 12 no stored form holds an `ObjectMeta` (the store's
    // key was read from the event's object, which is dropped).
    let kept_none =
        |w: &Writer<Compact<Ingress>>| w.as_reader().state().iter().all(|o| !o.meta_built());
    assert!(kept_none(&slw) && kept_none(&srw) && kept_none(&klw) && kept_none(&krw));
    assert!(kw.as_reader().state().iter().all(|o| !o.meta_built()));
    let mut sgw: Writer<Compact<GlobalIngress>> = Writer::new(());
    let _ = measure("GlobalIngress, as the controller stores it", |i| {
        let mut g: GlobalIngress = serde_json::from_value(globals[i].clone()).unwrap();
        kcp_ingress::controller::slim::global_ingress(&mut g);
        sgw.apply_watcher_event(&Event::Apply(<Compact<GlobalIngress> as Stored<
            GlobalIngress,
        >>::store(&g)));
    });
    let stored_global = LAST.load(Relaxed);
    println!(
        "stored per root (root + 3 leaves + GlobalIngress + 3 verified copies): {} B",
        stored_root + 3 * stored_leaf + stored_global + 3 * copy_record
    );
    println!(
        "stored per root, the leaves named by the controller: {} B",
        stored_root + 3 * stored_named_leaf + stored_global + 3 * copy_record
    );
    // Session 13: what the roots' kube-runtime controller kept per root
    // while every settled reconcile asked for its 10-minute resync
    // (`Action::requeue`; since the resync sweep, `controller::resync`, a
    // settled root schedules nothing): the request (its `ObjectRef`: name
    // and namespace) in the scheduler's map and again in its delay queue.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let mut scheduler = kube::runtime::scheduler(rx);
    {
        use futures::StreamExt;
        let _entered = runtime.enter();
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let at = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
        let _ = measure(
            "root controller's scheduled requeue per root (kube-runtime)",
            |i| {
                let root: Ingress = serde_json::from_value(srcs[i].clone()).unwrap();
                let stored = <Compact<Ingress> as Stored<Ingress>>::store(&root);
                let request = kube::runtime::controller::ReconcileRequest {
                    obj_ref: kube::runtime::reflector::ObjectRef::from_obj(&stored),
                    reason: kube::runtime::controller::ReconcileReason::ReconcilerRequestedRetry,
                };
                tx.unbounded_send(kube::runtime::scheduler::ScheduleRequest {
                    message: request,
                    run_at: at,
                })
                .unwrap();
                // Polled as the controller does: nothing is due yet.
                assert!(scheduler.poll_next_unpin(&mut cx).is_pending());
            },
        );
    }
    drop(tx);
    let index = kcp_ingress::controller::index::Index::default();
    let typed_roots: Vec<Ingress> = (0..N)
        .map(|i| serde_json::from_value(srcs[i].clone()).unwrap())
        .collect();
    let typed_leaves: Vec<Vec<Ingress>> = (0..N)
        .map(|i| {
            (1..=3)
                .map(|c| serde_json::from_value(leaf(i, c)).unwrap())
                .collect()
        })
        .collect();
    let _ = measure(
        "controller Index per root (root + 3 leaves, 1 shared Service)",
        |i| {
            index.upsert(&typed_roots[i], &());
            for l in &typed_leaves[i] {
                index.upsert(l, &());
            }
        },
    );
    // The same, with the leaves named as the controller names them
    // (`naming::leaf_key`: `<namespace>.<root>--<cluster>`, which the
    // index derives instead of keeping since session 12; the leaves above
    // carry names it cannot derive, so it keeps theirs).
    let named_index = kcp_ingress::controller::index::Index::default();
    let named_leaves: Vec<Vec<Ingress>> = (0..N)
        .map(|i| {
            (1..=3)
                .map(|c| {
                    let mut v = leaf(i, c);
                    v["metadata"]["name"] = json!(format!("bench.bulk-{i:05}--cluster-{c}"));
                    serde_json::from_value(v).unwrap()
                })
                .collect()
        })
        .collect();
    let _ = measure(
        "controller Index per root, leaves named by the controller",
        |i| {
            named_index.upsert(&typed_roots[i], &());
            for l in &named_leaves[i] {
                named_index.upsert(l, &());
            }
        },
    );
    let _d = measure("DynamicObject copy (for comparison)", |i| {
        serde_json::from_value::<DynamicObject>(copies[i].clone()).unwrap()
    });
}
