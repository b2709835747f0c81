//! Hostname matching between routes and listeners (pure), as the Gateway
//! API specifies it for `HTTPRoute`/`GRPCRoute` `spec.hostnames` and a
//! listener's `hostname`:
//!
//! - a hostname is precise (`foo.example.com`) or a wildcard
//!   (`*.example.com`: the `*` label alone, first);
//! - a wildcard is a suffix match of one or more labels: `*.example.com`
//!   matches `foo.example.com` and `foo.bar.example.com`, never
//!   `example.com`;
//! - a listener without a hostname matches every route hostname, a route
//!   without hostnames takes the listener's;
//! - when both name hosts, the route hostnames that do not intersect the
//!   listener's are ignored, and with none left the route does not attach
//!   to that listener (`Accepted=False`, `NoMatchingListenerHostname`).
//!
//! The intersection of two hostnames is the more specific one when one
//! covers the other (`*.example.com` ∩ `foo.example.com` =
//! `foo.example.com`; `*.example.com` ∩ `*.a.example.com` =
//! `*.a.example.com`), else nothing. Comparison ignores ASCII case and a
//! trailing dot; results are lowercase, without a trailing dot.

use std::collections::BTreeSet;

/// The hostnames a route serves through one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// Neither the route nor the listener names a host: every host (there is
    /// no name to publish).
    Any,
    /// These names (sorted, unique, not empty; wildcards included).
    Names(BTreeSet<String>),
}

/// Why a hostname is not valid for a route or listener.
pub fn invalid_hostname(hostname: &str) -> Option<String> {
    let name = hostname.strip_prefix("*.").unwrap_or(hostname);
    if hostname.len() > 253 {
        return Some(format!("{hostname:?} is longer than 253 characters"));
    }
    if name.is_empty() {
        return Some(format!("{hostname:?} is empty"));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() || name.contains(':') {
        return Some(format!("{hostname:?} is an IP address, not a hostname"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Some(format!(
                "{hostname:?} is not a lowercase RFC 1123 hostname, optionally prefixed with \"*.\""
            ));
        }
    }
    None
}

/// `hostname` in the form it is compared and published in: lowercase,
/// without a trailing dot.
pub fn normalize(hostname: &str) -> String {
    hostname.trim_end_matches('.').to_ascii_lowercase()
}

/// The suffix a wildcard hostname matches (`*.example.com` → `example.com`);
/// `None` for a precise one.
fn wildcard_suffix(hostname: &str) -> Option<&str> {
    hostname.strip_prefix("*.")
}

/// Whether the wildcard of `suffix` matches the precise `name`: `name` ends
/// with `.suffix` after one or more labels.
fn wildcard_matches(suffix: &str, name: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

/// The intersection of two hostnames (a route's and a listener's; the
/// operation is symmetric): the more specific one when one covers the other.
pub fn intersect(a: &str, b: &str) -> Option<String> {
    let (a, b) = (normalize(a), normalize(b));
    match (wildcard_suffix(&a), wildcard_suffix(&b)) {
        (None, None) => (a == b).then_some(a),
        (Some(sa), None) => wildcard_matches(sa, &b).then_some(b),
        (None, Some(sb)) => wildcard_matches(sb, &a).then_some(a),
        // Both wildcards: the one with the longer suffix, if it lies under
        // the other.
        (Some(sa), Some(sb)) => {
            if sa == sb || wildcard_matches(sb, sa) {
                Some(a)
            } else if wildcard_matches(sa, sb) {
                Some(b)
            } else {
                None
            }
        }
    }
}

/// The hostnames a route with `route_hostnames` serves through a listener
/// with `listener_hostname`; `None` when both name hosts and none
/// intersect (the route does not attach to that listener).
pub fn served(route_hostnames: &[String], listener_hostname: Option<&str>) -> Option<Served> {
    let listener = listener_hostname.filter(|h| !h.is_empty());
    match (route_hostnames.is_empty(), listener) {
        (true, None) => Some(Served::Any),
        (true, Some(l)) => Some(Served::Names(BTreeSet::from([normalize(l)]))),
        (false, None) => Some(Served::Names(
            route_hostnames.iter().map(|h| normalize(h)).collect(),
        )),
        (false, Some(l)) => {
            let names: BTreeSet<String> = route_hostnames
                .iter()
                .filter_map(|h| intersect(h, l))
                .collect();
            (!names.is_empty()).then_some(Served::Names(names))
        }
    }
}

/// Whether the precise or wildcard `hostname` would be served for a request
/// to the precise `host` (what the intersection must agree with).
pub fn covers(hostname: &str, host: &str) -> bool {
    let (hostname, host) = (normalize(hostname), normalize(host));
    match wildcard_suffix(&hostname) {
        Some(suffix) => wildcard_matches(suffix, &host),
        None => hostname == host,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn names(list: &[&str]) -> Served {
        Served::Names(list.iter().map(|s| s.to_string()).collect())
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_specs_examples() {
        // A listener with test.example.com matches routes with no hostnames,
        // test.example.com or *.example.com.
        assert_eq!(
            intersect("test.example.com", "test.example.com").as_deref(),
            Some("test.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "test.example.com").as_deref(),
            Some("test.example.com")
        );
        // A listener with *.example.com matches *.example.com,
        // test.example.com and foo.test.example.com, not example.com or
        // test.example.net.
        for route in ["*.example.com", "test.example.com", "foo.test.example.com"] {
            assert_eq!(
                intersect(route, "*.example.com").as_deref(),
                Some(route),
                "{route}"
            );
        }
        for route in ["example.com", "test.example.net"] {
            assert_eq!(intersect(route, "*.example.com"), None, "{route}");
        }
        // Non-matching route hostnames are ignored.
        assert_eq!(
            served(
                &strings(&["test.example.com", "test.example.net"]),
                Some("*.example.com")
            ),
            Some(names(&["test.example.com"]))
        );
    }

    #[test]
    fn the_conformance_tests_cases() {
        // HTTPRouteHostnameIntersection: listeners very.specific.com,
        // *.wildcard.io, *.anotherwildcard.io.
        let listeners = [
            Some("very.specific.com"),
            Some("*.wildcard.io"),
            Some("*.anotherwildcard.io"),
        ];
        let union = |route: &[&str]| -> Option<BTreeSet<String>> {
            let mut all = BTreeSet::new();
            let mut attached = false;
            for l in listeners {
                if let Some(Served::Names(n)) = served(&strings(route), l) {
                    attached = true;
                    all.extend(n);
                }
            }
            attached.then_some(all)
        };
        let set = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            union(&[
                "non.matching.com",
                "*.nonmatchingwildcard.io",
                "very.specific.com"
            ]),
            set(&["very.specific.com"])
        );
        assert_eq!(
            union(&[
                "non.matching.com",
                "wildcard.io",
                "foo.wildcard.io",
                "bar.wildcard.io",
                "foo.bar.wildcard.io"
            ]),
            set(&["bar.wildcard.io", "foo.bar.wildcard.io", "foo.wildcard.io"])
        );
        assert_eq!(
            union(&["non.matching.com", "*.specific.com"]),
            set(&["very.specific.com"])
        );
        assert_eq!(
            union(&["*.anotherwildcard.io"]),
            set(&["*.anotherwildcard.io"])
        );
        assert_eq!(union(&["specific.but.wrong.com", "wildcard.io"]), None);
        // A listener without a hostname: the route's hostnames as they are.
        assert_eq!(
            served(&strings(&["first.com", "sub.first.com"]), None),
            Some(names(&["first.com", "sub.first.com"]))
        );
    }

    #[test]
    fn no_hostname_on_either_side() {
        assert_eq!(served(&[], None), Some(Served::Any));
        assert_eq!(served(&[], Some("")), Some(Served::Any));
        assert_eq!(
            served(&[], Some("*.example.com")),
            Some(names(&["*.example.com"]))
        );
        assert_eq!(
            served(&strings(&["A.Example.COM."]), None),
            Some(names(&["a.example.com"]))
        );
    }

    #[test]
    fn wildcards_on_both_sides() {
        assert_eq!(
            intersect("*.example.com", "*.a.example.com").as_deref(),
            Some("*.a.example.com")
        );
        assert_eq!(
            intersect("*.a.example.com", "*.example.com").as_deref(),
            Some("*.a.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "*.example.com").as_deref(),
            Some("*.example.com")
        );
        assert_eq!(intersect("*.a.example.com", "*.b.example.com"), None);
        // A suffix that only ends alike is not under the other.
        assert_eq!(intersect("*.example.com", "*.anexample.com"), None);
        assert_eq!(intersect("*.example.com", "notexample.com"), None);
    }

    #[test]
    fn validity() {
        for ok in ["example.com", "*.example.com", "a-b.c", "localhost"] {
            assert_eq!(invalid_hostname(ok), None, "{ok}");
        }
        for bad in [
            "",
            "*.",
            "*",
            "a.*.com",
            "Example.com",
            "-a.com",
            "a..com",
            "10.0.0.1",
            "::1",
            "a_b.com",
        ] {
            assert!(invalid_hostname(bad).is_some(), "{bad:?}");
        }
    }

    /// A precise or wildcard hostname over a small alphabet, so that
    /// suffixes meet often.
    fn hostname() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "c"]), 1..4),
        )
            .prop_map(|(wild, labels)| {
                let name = labels.join(".");
                if wild { format!("*.{name}") } else { name }
            })
    }

    /// A precise host over the same alphabet.
    fn host() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "c", "x"]), 1..6)
            .prop_map(|labels| labels.join("."))
    }

    proptest! {
        /// A host is served through the intersection exactly when both
        /// sides would serve it.
        #[test]
        fn intersection_serves_what_both_serve(a in hostname(), b in hostname(), h in host()) {
            let both = covers(&a, &h) && covers(&b, &h);
            let through = intersect(&a, &b).is_some_and(|i| covers(&i, &h));
            prop_assert_eq!(both, through, "{} ∩ {} for {}", a, b, h);
        }

        #[test]
        fn intersection_is_symmetric_and_idempotent(a in hostname(), b in hostname()) {
            prop_assert_eq!(intersect(&a, &b), intersect(&b, &a));
            prop_assert_eq!(intersect(&a, &a), Some(a.clone()));
            if let Some(i) = intersect(&a, &b) {
                prop_assert_eq!(intersect(&i, &a), Some(i.clone()));
            }
        }

        /// Served names always lie within the listener's hostname.
        #[test]
        fn served_names_lie_within_the_listener(
            route in prop::collection::vec(hostname(), 0..5),
            listener in prop::option::of(hostname()),
        ) {
            match served(&route, listener.as_deref()) {
                None => prop_assert!(listener.is_some() && !route.is_empty()),
                Some(Served::Any) => prop_assert!(route.is_empty() && listener.is_none()),
                Some(Served::Names(n)) => {
                    prop_assert!(!n.is_empty());
                    if let Some(l) = &listener {
                        for name in &n {
                            prop_assert_eq!(intersect(name, l), Some(name.clone()));
                        }
                    }
                }
            }
        }

        #[test]
        fn any_text_is_handled(a in ".{0,40}", b in ".{0,40}") {
            let _ = intersect(&a, &b);
            let _ = invalid_hostname(&a);
            let _ = served(std::slice::from_ref(&a), Some(&b));
        }
    }
}
