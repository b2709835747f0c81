//! The scale model (pure arithmetic, no I/O): each process's peak RSS as
//! `base + per_root × roots + per_cluster × clusters`, fitted to three
//! measured runs, and what it predicts for a larger fleet (issue #16: 100
//! clusters × 10,000 roots), with the fleet size at which each process
//! reaches its limit.

/// One measured figure of a process: `value` with `roots` roots on
/// `clusters` physical clusters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub clusters: f64,
    pub roots: f64,
    pub value: f64,
}

/// `value = base + per_root × roots + per_cluster × clusters`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Linear {
    pub base: f64,
    pub per_root: f64,
    pub per_cluster: f64,
}

impl Linear {
    /// The plane through three samples; `None` when they do not determine
    /// it (two at the same point, or all at one cluster count or root count).
    pub fn fit(s: [Sample; 3]) -> Option<Self> {
        // Cramer's rule on [1 roots clusters] · [base per_root per_cluster] = value.
        let det3 = |m: [[f64; 3]; 3]| {
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        };
        let rows = s.map(|x| [1.0, x.roots, x.clusters]);
        let d = det3(rows);
        if d.abs() < 1e-9 {
            return None;
        }
        let with = |col: usize| {
            let mut m = rows;
            for (row, x) in m.iter_mut().zip(&s) {
                row[col] = x.value;
            }
            det3(m) / d
        };
        Some(Self {
            base: with(0),
            per_root: with(1),
            per_cluster: with(2),
        })
    }

    pub fn at(&self, roots: f64, clusters: f64) -> f64 {
        self.base + self.per_root * roots + self.per_cluster * clusters
    }
}

/// `value = base + slope × x` through two samples `(x, value)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub base: f64,
    pub slope: f64,
}

impl Line {
    /// `None` when both samples are at the same `x`.
    pub fn fit(a: (f64, f64), b: (f64, f64)) -> Option<Self> {
        if (b.0 - a.0).abs() < 1e-9 {
            return None;
        }
        let slope = (b.1 - a.1) / (b.0 - a.0);
        Some(Self {
            base: a.1 - slope * a.0,
            slope,
        })
    }
}

/// The measured inputs, peak RSS in MiB. `controller` ... `etcd` are fitted
/// to the same three runs; `cluster_apiserver` is one cluster's apiserver
/// by the number of copies it holds.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    /// The controller process with one push-mode syncer per cluster.
    pub controller: Linear,
    pub glbc: Linear,
    pub control_plane: Linear,
    /// The benchmark's one etcd serves every apiserver (clusters' copies too).
    pub etcd: Linear,
    pub cluster_apiserver: Line,
    /// Clusters each root was placed on in the measured runs.
    pub placements: f64,
}

/// The fleet to predict for.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub roots: f64,
    pub clusters: f64,
    /// Clusters each root is placed on.
    pub placements: f64,
}

/// One process of the prediction: its RSS is `fixed + per_root × roots`
/// (MiB, at the target's cluster count), `instances` of it run.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub process: &'static str,
    pub instances: f64,
    pub fixed: f64,
    pub per_root: f64,
    /// The goal or limit it is held to (MiB), if any.
    pub limit: Option<f64>,
    /// How the row is derived from the inputs.
    pub basis: &'static str,
}

impl Row {
    /// Its RSS (MiB, each instance) at `roots` roots.
    pub fn at(&self, roots: f64) -> f64 {
        self.fixed + self.per_root * roots
    }

    /// The number of roots (at the target's cluster count) at which it
    /// reaches its limit: 0 when it does already without roots, `None`
    /// without a limit or if it never does.
    pub fn roots_at_limit(&self) -> Option<f64> {
        let limit = self.limit?;
        if self.fixed >= limit {
            return Some(0.0);
        }
        (self.per_root > 0.0).then(|| (limit - self.fixed) / self.per_root)
    }
}

/// 150 MB (issue #16's goal for every kcp-ingress process), in MiB.
pub const GOAL_MIB: f64 = 150e6 / 1_048_576.0;

/// The per-process prediction for `target`. The pull-mode syncer and the
/// controller without push-mode syncers are not measured on their own:
/// the syncer gets the controller's per-cluster cost, its fixed cost (the
/// fit's base: a process's runtime and clients) and the controller's cost
/// per placement (its per-root cost over the placements per root); the
/// controller keeps all of its per-root cost. Both are upper bounds (the
/// controller's per-root cost includes its syncers' caches).
pub fn plan(inputs: &Inputs, target: &Target) -> Vec<Row> {
    let c = target.clusters;
    let ctl = inputs.controller;
    // Copies (placements) per cluster grow with roots × placements / clusters.
    let per_copy_share = target.placements / c.max(1.0);
    vec![
        Row {
            process: "controller with a push-mode syncer per cluster",
            instances: 1.0,
            fixed: ctl.base + ctl.per_cluster * c,
            per_root: ctl.per_root * target.placements / inputs.placements,
            limit: Some(GOAL_MIB),
            basis: "controller fit",
        },
        Row {
            process: "controller, pull-mode syncers (upper bound)",
            instances: 1.0,
            fixed: ctl.base,
            per_root: ctl.per_root * target.placements / inputs.placements,
            limit: Some(GOAL_MIB),
            basis: "controller fit without its per-cluster cost",
        },
        Row {
            process: "pull-mode syncer, each (upper bound)",
            instances: c,
            fixed: ctl.base.max(0.0) + ctl.per_cluster,
            per_root: ctl.per_root / inputs.placements * per_copy_share,
            limit: Some(GOAL_MIB),
            basis: "controller's base + per cluster + per root ÷ placements per copy",
        },
        Row {
            process: "glbc",
            instances: 1.0,
            fixed: inputs.glbc.base + inputs.glbc.per_cluster * c,
            per_root: inputs.glbc.per_root,
            limit: Some(GOAL_MIB),
            basis: "glbc fit",
        },
        Row {
            process: "control-plane kube-apiserver",
            instances: 1.0,
            fixed: inputs.control_plane.base + inputs.control_plane.per_cluster * c,
            per_root: inputs.control_plane.per_root * target.placements / inputs.placements,
            limit: None,
            basis: "control-plane apiserver fit",
        },
        Row {
            process: "etcd (shared by every apiserver, as in the bench)",
            instances: 1.0,
            fixed: inputs.etcd.base + inputs.etcd.per_cluster * c,
            per_root: inputs.etcd.per_root * target.placements / inputs.placements,
            limit: None,
            basis: "etcd fit",
        },
        Row {
            process: "cluster kube-apiserver, each",
            instances: c,
            fixed: inputs.cluster_apiserver.base,
            per_root: inputs.cluster_apiserver.slope * per_copy_share,
            limit: None,
            basis: "cluster apiserver by copies held",
        },
    ]
}

/// The row that reaches its limit at the fewest roots, and that number.
pub fn first_limit(rows: &[Row]) -> Option<(&Row, f64)> {
    rows.iter()
        .filter_map(|r| r.roots_at_limit().map(|n| (r, n)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Unit tests of the arithmetic, run by `cargo test --bench bench -- --unit-tests`.
pub mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * (1.0 + a.abs().max(b.abs()))
    }

    fn truth() -> Linear {
        Linear {
            base: 30.0,
            per_root: 0.05,
            per_cluster: 2.5,
        }
    }

    fn sample(l: &Linear, clusters: f64, roots: f64) -> Sample {
        Sample {
            clusters,
            roots,
            value: l.at(roots, clusters),
        }
    }

    pub fn fit_recovers_a_plane() -> Result<(), String> {
        let t = truth();
        // The bench's three runs: 20 clusters at N and 2N roots, 3 at N.
        let got = Linear::fit([
            sample(&t, 20.0, 2000.0),
            sample(&t, 20.0, 4000.0),
            sample(&t, 3.0, 2000.0),
        ])
        .ok_or("no fit")?;
        if !(close(got.base, t.base)
            && close(got.per_root, t.per_root)
            && close(got.per_cluster, t.per_cluster))
        {
            return Err(format!("fitted {got:?}, wanted {t:?}"));
        }
        Ok(())
    }

    pub fn fit_refuses_undetermined_samples() -> Result<(), String> {
        let t = truth();
        // All at 20 clusters: the per-cluster cost is not measured.
        let same_clusters = Linear::fit([
            sample(&t, 20.0, 100.0),
            sample(&t, 20.0, 200.0),
            sample(&t, 20.0, 300.0),
        ]);
        let repeated = Line::fit((5.0, 1.0), (5.0, 2.0));
        match (same_clusters, repeated) {
            (None, None) => Ok(()),
            other => Err(format!("expected no fit, got {other:?}")),
        }
    }

    pub fn plan_predicts_each_process() -> Result<(), String> {
        let flat = |base| Linear {
            base,
            per_root: 0.0,
            per_cluster: 0.0,
        };
        let inputs = Inputs {
            controller: truth(),
            glbc: Linear {
                base: 20.0,
                per_root: 0.01,
                per_cluster: 0.1,
            },
            control_plane: flat(300.0),
            etcd: flat(100.0),
            cluster_apiserver: Line {
                base: 200.0,
                slope: 0.02,
            },
            placements: 3.0,
        };
        let target = Target {
            roots: 10_000.0,
            clusters: 100.0,
            placements: 3.0,
        };
        let rows = plan(&inputs, &target);
        let at = |name: &str| {
            rows.iter()
                .find(|r| r.process.starts_with(name))
                .map(|r| (r.at(target.roots), r.instances))
                .ok_or(format!("no row {name}"))
        };
        // 30 + 2.5 × 100 + 0.05 × 10,000 = 780.
        let checks = [
            ("controller with", 780.0, 1.0),
            // Pull mode: 30 + 0.05 × 10,000.
            ("controller, pull", 530.0, 1.0),
            // 30 + 2.5 + 0.05 / 3 per copy × 300 copies.
            ("pull-mode syncer", 37.5, 100.0),
            ("glbc", 20.0 + 10.0 + 100.0, 1.0),
            ("control-plane", 300.0, 1.0),
            // 200 + 0.02 × 300 copies.
            ("cluster kube-apiserver", 206.0, 100.0),
        ];
        for (name, mib, instances) in checks {
            let (got, n) = at(name)?;
            if !close(got, mib) || n != instances {
                return Err(format!(
                    "{name}: {got} MiB × {n}, wanted {mib} × {instances}"
                ));
            }
        }
        let (row, roots) = first_limit(&rows).ok_or("no limit")?;
        // The controller with 100 push syncers is over 143 MiB without roots.
        if !row.process.starts_with("controller with") || roots != 0.0 {
            return Err(format!("first limit {} at {roots}", row.process));
        }
        // The glbc reaches 150 MB at (143.05 − 30) / 0.01 roots.
        let glbc = rows.iter().find(|r| r.process == "glbc").ok_or("glbc")?;
        let want = (GOAL_MIB - 30.0) / 0.01;
        match glbc.roots_at_limit() {
            Some(n) if close(n, want) => Ok(()),
            other => Err(format!(
                "glbc at its limit at {other:?} roots, wanted {want}"
            )),
        }
    }

    /// A unit test: `Err` says what went wrong.
    pub type Test = fn() -> Result<(), String>;

    /// Every test, by name.
    pub fn all() -> Vec<(&'static str, Test)> {
        vec![
            ("model::fit_recovers_a_plane", fit_recovers_a_plane),
            (
                "model::fit_refuses_undetermined_samples",
                fit_refuses_undetermined_samples,
            ),
            (
                "model::plan_predicts_each_process",
                plan_predicts_each_process,
            ),
        ]
    }
}
