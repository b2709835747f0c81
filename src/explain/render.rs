//! A report as text (pure): a tree for people (colour only when asked,
//! i.e. on a terminal), or JSON and YAML in the report's stable schema.

use std::fmt::Write;

use super::report::{Report, Verdict};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A tree: one line per hop, its items below it.
    Tree,
    /// The report as JSON.
    Json,
    /// The report as YAML.
    Yaml,
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// `report` in `format`; `color` adds ANSI colours to the tree.
pub fn render(report: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            text.push('\n');
            text
        }
        Format::Yaml => {
            serde_yaml::to_string(report).unwrap_or_else(|e| format!("error: \"{e}\"\n"))
        }
        Format::Tree => tree(report, color),
    }
}

fn mark(verdict: Verdict, color: bool) -> String {
    let (symbol, colour) = match verdict {
        Verdict::Pass => ("ok  ", GREEN),
        Verdict::Fail => ("FAIL", RED),
        Verdict::Skip => ("--  ", DIM),
    };
    if color {
        format!("{colour}{symbol}{RESET}")
    } else {
        symbol.to_string()
    }
}

fn tree(report: &Report, color: bool) -> String {
    let mut out = String::new();
    let root = &report.root;
    let bold = |s: &str| {
        if color {
            format!("{BOLD}{s}{RESET}")
        } else {
            s.to_string()
        }
    };
    let _ = writeln!(
        out,
        "{} {}/{}",
        bold(&root.kind),
        root.namespace,
        bold(&root.name)
    );
    let width = report.hops.iter().map(|h| h.name.len()).max().unwrap_or(0);
    for hop in &report.hops {
        let _ = writeln!(
            out,
            "{} {:width$}  {}",
            mark(hop.verdict, color),
            hop.name,
            hop.summary
        );
        let count = hop.items.len();
        for (i, item) in hop.items.iter().enumerate() {
            let branch = if i + 1 == count { "└─" } else { "├─" };
            let _ = writeln!(
                out,
                "     {branch} {} {}: {}",
                mark(item.verdict, color),
                item.subject,
                item.message
            );
        }
    }
    match &report.first_failure {
        None => {
            let _ = writeln!(out, "every hop holds");
        }
        Some(first) => {
            let _ = writeln!(
                out,
                "first hop that does not hold: {}: {}",
                bold(&first.hop),
                first.message
            );
            if let Some(hint) = &first.hint {
                let _ = writeln!(out, "look further: {hint}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::report::{Hop, Item, RootRef, hop};

    fn report() -> Report {
        Report::new(
            RootRef {
                kind: "Ingress".into(),
                namespace: "shop".into(),
                name: "web".into(),
            },
            vec![
                Hop::of_items(
                    hop::ROOT,
                    "valid",
                    vec![Item::pass("Ingress shop/web", "a root")],
                ),
                Hop::of_items(
                    hop::PLACEMENT,
                    "ok",
                    vec![Item::fail("selector", "does not parse")],
                )
                .hint("kubectl get clusters --show-labels"),
            ],
        )
    }

    #[test]
    fn the_tree_names_the_first_failing_hop_and_has_no_colour_unless_asked() {
        let text = render(&report(), Format::Tree, false);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.contains("FAIL placement  selector: does not parse"),
            "{text}"
        );
        assert!(text.contains("└─ ok   Ingress shop/web: a root"), "{text}");
        assert!(
            text.contains("first hop that does not hold: placement"),
            "{text}"
        );
        assert!(text.contains("look further: kubectl get clusters --show-labels"));
        assert!(render(&report(), Format::Tree, true).contains(RED));
    }

    #[test]
    fn json_and_yaml_carry_the_same_report() {
        let json: serde_json::Value =
            serde_json::from_str(&render(&report(), Format::Json, true)).unwrap();
        let yaml: serde_json::Value =
            serde_yaml::from_str(&render(&report(), Format::Yaml, true)).unwrap();
        assert_eq!(json, yaml);
        assert_eq!(json["firstFailure"]["hop"], "placement");
    }
}
