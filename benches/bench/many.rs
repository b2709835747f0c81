//! The many-clusters scenario (`--many-clusters`, `make bench MANY=1`):
//! 20 physical clusters (real kube-apiservers sharing the environment's
//! etcd), roots placed on 3 of them each by a `region in (...)` selector,
//! the stand-in data plane, the controller with a push-mode syncer per
//! cluster and the glbc. Three runs give the scale model its slopes: the
//! roots on 20 clusters, as many again in the same environment, and the
//! same roots on 3 clusters (a fresh environment).

use std::fmt::Write as _;
use std::time::Duration;

use crate::env::{DataPlane, Env, Stack};
use crate::model::{self, Inputs, Line, Linear, Sample, Target};
use crate::observe::median;
use crate::scenarios::{self, Batch, Bulk, Spread, Usage};

/// What the scenario runs.
#[derive(Debug, Clone, Copy)]
pub struct ManyPlan {
    pub roots: usize,
    pub clusters: usize,
    /// Clusters each root is placed on.
    pub per_root: usize,
    /// Clusters of the comparison run (the model's per-cluster slope).
    pub small_clusters: usize,
    /// The second batch and the comparison run (the model's slopes).
    pub slopes: bool,
}

/// One measured run.
pub struct Leg {
    pub what: String,
    pub clusters: usize,
    pub per_root: usize,
    /// Roots of this run, and roots in the environment at its end.
    pub roots: usize,
    pub roots_total: usize,
    pub bulk: Bulk,
    /// Every process right after the environment was Ready (first run of
    /// an environment only).
    pub idle: Vec<Usage>,
}

#[derive(Default)]
pub struct ManyResults {
    pub legs: Vec<Leg>,
}

fn snapshot(env: &Env) -> Vec<Usage> {
    env.processes()
        .into_iter()
        .map(|(name, pid)| {
            let (hwm_kib, rss_kib) = crate::env::memory_kib(pid).unwrap_or((0, 0));
            Usage {
                name,
                cpu: crate::env::cpu_seconds(pid).unwrap_or(0.0),
                hwm_kib,
                rss_kib,
            }
        })
        .collect()
}

/// Runs the scenario; every run is recorded as soon as it is done.
pub async fn run(
    plan: &ManyPlan,
    data_plane: DataPlane,
    results: &mut ManyResults,
    versions: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let deadline = Duration::from_secs((plan.roots as u64 / 2).max(600));
    let spread = Spread {
        clusters: plan.clusters,
        per_root: plan.per_root.min(plan.clusters),
    };
    eprintln!(
        "bench: many clusters: {} roots on {} of {} clusters each",
        plan.roots, spread.per_root, plan.clusters
    );
    let mut env = Env::up_sized(
        &format!("many{}", plan.clusters),
        data_plane,
        Stack::KcpIngress,
        plan.clusters,
    )
    .await?;
    *versions = crate::versions_of(&env).await;
    let idle = snapshot(&env);
    let mut batches = vec![("m", "many", "roots at once")];
    if plan.slopes {
        batches.push(("n", "many2", "as many again, same environment"));
    }
    let mut total = 0;
    for (i, (prefix, subdomain, what)) in batches.into_iter().enumerate() {
        let batch = Batch {
            n: plan.roots,
            prefix: prefix.into(),
            subdomain: subdomain.into(),
            spread,
        };
        let (bulk, obs) = scenarios::bulk_of(&env, &batch, deadline).await?;
        drop(obs);
        total += plan.roots;
        report(&bulk, plan.roots, plan.clusters);
        let invalid = bulk.invalid.clone();
        results.legs.push(Leg {
            what: what.into(),
            clusters: plan.clusters,
            per_root: spread.per_root,
            roots: plan.roots,
            roots_total: total,
            bulk,
            idle: if i == 0 { idle.clone() } else { Vec::new() },
        });
        if let Some(why) = invalid {
            anyhow::bail!("many clusters, {total} roots: {why}");
        }
    }
    env.down();
    drop(env);
    if plan.slopes {
        let small = plan.small_clusters;
        eprintln!(
            "bench: many clusters: the same {} roots on {small} clusters",
            plan.roots
        );
        let env = Env::up_sized(
            &format!("many{small}"),
            data_plane,
            Stack::KcpIngress,
            small,
        )
        .await?;
        let idle = snapshot(&env);
        let spread = Spread {
            clusters: small,
            per_root: plan.per_root.min(small),
        };
        let batch = Batch {
            n: plan.roots,
            prefix: "m".into(),
            subdomain: "many".into(),
            spread,
        };
        let (bulk, obs) = scenarios::bulk_of(&env, &batch, deadline).await?;
        drop(obs);
        report(&bulk, plan.roots, small);
        let invalid = bulk.invalid.clone();
        results.legs.push(Leg {
            what: format!("the same roots on {small} clusters"),
            clusters: small,
            per_root: spread.per_root,
            roots: plan.roots,
            roots_total: plan.roots,
            bulk,
            idle,
        });
        if let Some(why) = invalid {
            anyhow::bail!("many clusters, {small} clusters: {why}");
        }
    }
    Ok(())
}

fn report(bulk: &Bulk, roots: usize, clusters: usize) {
    eprintln!(
        "bench: many clusters ({roots} roots, {clusters} clusters): in DNS at {:.1}s; writes per root:\n{}",
        bulk.dns,
        scenarios::per_root(&bulk.writes, roots)
    );
    for u in &bulk.usage {
        eprintln!(
            "bench:   {}: {:.1} CPU-s, peak RSS {} MiB",
            u.name,
            u.cpu,
            u.hwm_kib / 1024
        );
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn secs(s: f64) -> String {
    if s.is_nan() {
        "–".into()
    } else if s < 10.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.1} s")
    }
}

/// The processes of a run, summed by role: cluster apiservers and the
/// stand-ins are listed as one figure each (the apiservers also with
/// their spread). Memory is the peak RSS, or with `current` the RSS now.
fn roles(usage: &[Usage], current: bool) -> Vec<(String, f64, String)> {
    let mut out = Vec::new();
    let mem = |u: &Usage| mib(if current { u.rss_kib } else { u.hwm_kib });
    let pick = |pred: &dyn Fn(&str) -> bool| -> Vec<&Usage> {
        usage.iter().filter(|u| pred(&u.name)).collect()
    };
    for name in [
        "controller",
        "glbc",
        "control-plane apiserver",
        "etcd",
        "BIND",
    ] {
        for u in pick(&|n| n == name) {
            out.push((u.name.clone(), u.cpu, format!("{:.0} MiB", mem(u))));
        }
    }
    let apis = pick(&|n| n.starts_with("cluster-") && n.ends_with(" apiserver"));
    if !apis.is_empty() {
        let hwm: Vec<f64> = apis.iter().map(|u| mem(u)).collect();
        let cpu: Vec<f64> = apis.iter().map(|u| u.cpu).collect();
        let (lo, hi) = (
            hwm.iter().copied().fold(f64::INFINITY, f64::min),
            hwm.iter().copied().fold(0.0, f64::max),
        );
        out.push((
            format!(
                "{} cluster apiservers, summed (each: CPU s {:.1} – {:.1})",
                apis.len(),
                cpu.iter().copied().fold(f64::INFINITY, f64::min),
                cpu.iter().copied().fold(0.0, f64::max)
            ),
            cpu.iter().sum(),
            format!(
                "{:.0} MiB in all; each {:.0} / {:.0} / {:.0} MiB (min / median / max)",
                hwm.iter().sum::<f64>(),
                lo,
                median(&hwm),
                hi
            ),
        ));
    }
    let lbs = pick(&|n| n.starts_with("standin-lb-") || n.starts_with("traefik-"));
    if !lbs.is_empty() {
        out.push((
            format!("{} stand-ins, summed", lbs.len()),
            lbs.iter().map(|u| u.cpu).sum(),
            format!("{:.0} MiB in all", lbs.iter().map(|u| mem(u)).sum::<f64>()),
        ));
    }
    out
}

/// The memory of process `name` (MiB): its peak RSS for kcp-ingress's
/// processes (the goal is about the peak), its RSS at the end of the run
/// for the Go servers (their peak is their start: the CRDs they take in).
fn memory(usage: &[Usage], name: &str) -> Option<f64> {
    let peak = matches!(name, "controller" | "glbc");
    usage
        .iter()
        .find(|u| u.name == name)
        .map(|u| mib(if peak { u.hwm_kib } else { u.rss_kib }))
}

/// The median RSS of the cluster apiservers at the end of a run (MiB).
fn cluster_apiserver_rss(usage: &[Usage]) -> f64 {
    let rss: Vec<f64> = usage
        .iter()
        .filter(|u| u.name.starts_with("cluster-") && u.name.ends_with(" apiserver"))
        .map(|u| mib(u.rss_kib))
        .collect();
    median(&rss)
}

/// The model's inputs from the three runs (20 clusters at N and 2N roots,
/// the comparison at N), if all three are there.
pub fn inputs(r: &ManyResults) -> Option<Inputs> {
    let valid: Vec<&Leg> = r.legs.iter().filter(|l| l.bulk.invalid.is_none()).collect();
    let [a, b, c] = valid.as_slice() else {
        return None;
    };
    let fit = |name: &str| {
        let s = |l: &Leg| {
            Some(Sample {
                clusters: l.clusters as f64,
                roots: l.roots_total as f64,
                value: memory(&l.bulk.usage, name)?,
            })
        };
        Linear::fit([s(a)?, s(b)?, s(c)?])
    };
    let copies = |l: &Leg| (l.roots_total * l.per_root) as f64 / l.clusters as f64;
    Some(Inputs {
        controller: fit("controller")?,
        glbc: fit("glbc")?,
        control_plane: fit("control-plane apiserver")?,
        etcd: fit("etcd")?,
        cluster_apiserver: Line::fit(
            (copies(a), cluster_apiserver_rss(&a.bulk.usage)),
            (copies(b), cluster_apiserver_rss(&b.bulk.usage)),
        )?,
        placements: a.per_root as f64,
    })
}

/// The scenario's table, the per-process table, and the model.
pub fn render(r: &ManyResults, target: &Target) -> String {
    let mut t = String::new();
    if cfg!(debug_assertions) {
        let _ = writeln!(
            t,
            "**Built with the dev profile (unoptimised kcp-ingress): compare within the run only.**\n"
        );
    }
    let _ = writeln!(
        t,
        "| run | roots × clusters (each root on) | created / copies on their clusters / merged / in DNS | roots/s to DNS | API writes per root: control plane / per copy in a cluster | writes per cluster: min / median / max | DNS UPDATEs |"
    );
    let _ = writeln!(t, "| --- | --- | --- | --- | --- | --- | --- |");
    for (i, l) in r.legs.iter().enumerate() {
        let b = &l.bulk;
        let cp = b.writes.first().map_or(0, scenarios::writes_total) as f64 / l.roots as f64;
        let per_cluster: Vec<f64> = b
            .writes
            .iter()
            .skip(1)
            .map(|w| scenarios::writes_total(w) as f64)
            .collect();
        let copies = (l.roots * l.per_root) as f64;
        let lo = per_cluster.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = per_cluster.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            t,
            "| {}. {}{} | {} × {} ({}) | {} / {} / {} / {} | {:.0} | {cp:.1} / {:.1} | {lo:.0} / {:.0} / {hi:.0} | {} |",
            i + 1,
            l.what,
            b.invalid
                .as_deref()
                .map_or(String::new(), |w| format!(" — **invalid**: {w}")),
            l.roots,
            l.clusters,
            l.per_root,
            secs(b.created),
            secs(b.downstream),
            secs(b.merged),
            secs(b.dns),
            l.roots as f64 / b.dns,
            per_cluster.iter().sum::<f64>() / copies,
            median(&per_cluster),
            b.updates
        );
    }
    for (i, l) in r.legs.iter().enumerate() {
        let _ = writeln!(
            t,
            "\nRun {}: CPU seconds during the run and peak RSS, per process ({} roots in the environment at its end)\n",
            i + 1,
            l.roots_total
        );
        let _ = writeln!(
            t,
            "| process | CPU s | peak RSS | RSS when Ready, before the roots |"
        );
        let _ = writeln!(t, "| --- | --- | --- | --- |");
        let idle = roles(&l.idle, true);
        for (name, cpu, rss) in roles(&l.bulk.usage, false) {
            let before = idle
                .iter()
                .find(|(n, _, _)| n == &name)
                .map_or("", |(_, _, r)| r.as_str());
            let _ = writeln!(t, "| {name} | {cpu:.1} | {rss} | {before} |");
        }
    }
    if let Some(first) = r.legs.first() {
        let per: Vec<String> = first
            .bulk
            .writes
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, w)| format!("{k}: {}", scenarios::writes_total(w)))
            .collect();
        let _ = writeln!(
            t,
            "\nRun 1, API writes per cluster (cluster: writes): {}\n",
            per.join(", ")
        );
        let _ = writeln!(
            t,
            "Run 1, writes per root by request:\n\n```\n{}\n```",
            scenarios::per_root(&first.bulk.writes, first.roots)
        );
    }
    t.push_str(&render_model(r, target));
    t
}

fn render_model(r: &ManyResults, target: &Target) -> String {
    let mut t = String::new();
    let Some(inputs) = inputs(r) else {
        let _ = writeln!(
            t,
            "\nNo model: it needs the three runs above, all valid (20 clusters at N and 2N roots, and N roots on fewer clusters)."
        );
        return t;
    };
    let _ = writeln!(
        t,
        "\n**Model: {} clusters × {} roots (each on {})**, from runs 1–3 fitted as base + per root × roots + per cluster × clusters (MiB; the peak RSS of the controller and the glbc, the RSS at the end of the run of the Go servers, whose peak is their start): controller {:.1} + {:.4} × R + {:.2} × C; glbc {:.1} + {:.4} × R + {:.2} × C; control-plane apiserver {:.1} + {:.4} × R + {:.2} × C; etcd {:.1} + {:.4} × R + {:.2} × C; a cluster apiserver {:.1} + {:.4} per copy it holds (runs 1–2).\n",
        target.clusters,
        target.roots,
        target.placements,
        inputs.controller.base,
        inputs.controller.per_root,
        inputs.controller.per_cluster,
        inputs.glbc.base,
        inputs.glbc.per_root,
        inputs.glbc.per_cluster,
        inputs.control_plane.base,
        inputs.control_plane.per_root,
        inputs.control_plane.per_cluster,
        inputs.etcd.base,
        inputs.etcd.per_root,
        inputs.etcd.per_cluster,
        inputs.cluster_apiserver.base,
        inputs.cluster_apiserver.slope,
    );
    let rows = model::plan(&inputs, target);
    let cpu_per_root = |name: &str| -> Option<f64> {
        let l = r.legs.first()?;
        let cpu: f64 = l
            .bulk
            .usage
            .iter()
            .filter(|u| u.name == name)
            .map(|u| u.cpu)
            .sum();
        Some(cpu / l.roots as f64)
    };
    let _ = writeln!(
        t,
        "| process | instances | peak RSS each at {} roots | of which fixed (at {} clusters) / per 1,000 roots | 150 MB reached at (roots) | basis |",
        target.roots, target.clusters
    );
    let _ = writeln!(t, "| --- | --- | --- | --- | --- | --- |");
    for row in &rows {
        let limit = match (row.limit, row.roots_at_limit()) {
            (None, _) => "–".to_string(),
            (Some(_), Some(n)) if n <= 0.0 => "0: its fixed cost is above".to_string(),
            (Some(_), Some(n)) => format!("{n:.0}"),
            (Some(_), None) => "never".to_string(),
        };
        let _ = writeln!(
            t,
            "| {} | {:.0} | {:.0} MiB | {:.0} / {:.1} MiB | {limit} | {} |",
            row.process,
            row.instances,
            row.at(target.roots),
            row.fixed,
            row.per_root * 1000.0,
            row.basis
        );
    }
    if let Some((row, roots)) = model::first_limit(&rows) {
        let _ = writeln!(
            t,
            "\nFirst limit: **{}** reaches 150 MB at {roots:.0} roots on {} clusters (at 0: with no root).",
            row.process, target.clusters
        );
    }
    let cpu: Vec<String> = ["controller", "glbc", "control-plane apiserver", "etcd"]
        .iter()
        .filter_map(|n| cpu_per_root(n).map(|c| format!("{n} {:.0}", c * target.roots)))
        .collect();
    if !cpu.is_empty() {
        let _ = writeln!(
            t,
            "CPU seconds to place {} roots at run 1's cost per root: {} (the control-plane apiserver's CPU bounds the time).",
            target.roots,
            cpu.join(", ")
        );
    }
    t
}

/// Unit tests of the rendering, run by `cargo test --bench bench -- --unit-tests`.
pub mod tests {
    use super::*;
    use crate::observe::Writes;

    /// A run of `roots_total` roots on `clusters` clusters whose processes'
    /// peak RSS follows a known plane.
    fn leg(clusters: usize, roots: usize, roots_total: usize) -> Leg {
        let mib = |base: f64, per_root: f64, per_cluster: f64| {
            ((base + per_root * roots_total as f64 + per_cluster * clusters as f64) * 1024.0) as u64
        };
        let mut usage = vec![
            ("controller".to_string(), mib(30.0, 0.05, 2.5)),
            ("glbc".to_string(), mib(20.0, 0.01, 0.1)),
            ("control-plane apiserver".to_string(), mib(300.0, 0.1, 1.0)),
            ("etcd".to_string(), mib(100.0, 0.05, 0.5)),
        ];
        let copies = roots_total * 3 / clusters;
        for k in 1..=clusters {
            usage.push((
                format!("cluster-{k} apiserver"),
                ((200.0 + 0.02 * copies as f64) * 1024.0) as u64,
            ));
            usage.push((format!("standin-lb-{k}"), 10 * 1024));
        }
        let writes: Vec<Writes> =
            std::iter::once(Writes::from([("POST ingresses".into(), roots as u64)]))
                .chain((0..clusters).map(|_| {
                    Writes::from([("POST ingresses".into(), (roots * 3 / clusters) as u64)])
                }))
                .collect();
        Leg {
            what: "synthetic".into(),
            clusters,
            per_root: 3,
            roots,
            roots_total,
            bulk: Bulk {
                dns: 10.0,
                writes,
                usage: usage
                    .into_iter()
                    .map(|(name, kib)| Usage {
                        name,
                        cpu: 1.0,
                        hwm_kib: kib,
                        rss_kib: kib,
                    })
                    .collect(),
                ..Bulk::default()
            },
            idle: Vec::new(),
        }
    }

    pub fn render_fits_the_three_runs() -> Result<(), String> {
        let r = ManyResults {
            legs: vec![leg(20, 2000, 2000), leg(20, 2000, 4000), leg(3, 2000, 2000)],
        };
        let inputs = inputs(&r).ok_or("no model inputs")?;
        let near = |a: f64, b: f64| (a - b).abs() < 0.01;
        if !(near(inputs.controller.per_root, 0.05)
            && near(inputs.controller.per_cluster, 2.5)
            && near(inputs.cluster_apiserver.slope, 0.02))
        {
            return Err(format!("inputs {inputs:?}"));
        }
        let text = render(
            &r,
            &Target {
                roots: 10_000.0,
                clusters: 100.0,
                placements: 3.0,
            },
        );
        for want in [
            "First limit",
            "20 cluster apiservers, summed",
            "20 stand-ins, summed",
            "| 1. synthetic | 2000 × 20 (3) |",
        ] {
            if !text.contains(want) {
                return Err(format!("no {want:?} in:\n{text}"));
            }
        }
        // Without the third run there is no model, and it says so.
        let partial = ManyResults {
            legs: vec![leg(20, 2000, 2000)],
        };
        let text = render(
            &partial,
            &Target {
                roots: 10_000.0,
                clusters: 100.0,
                placements: 3.0,
            },
        );
        if !text.contains("No model") {
            return Err(format!("a model from one run:\n{text}"));
        }
        Ok(())
    }
}
