//! Orphan GlobalIngresses (pure): a GlobalIngress that no existing root
//! controls. The controller is the only garbage collector a bare
//! kube-apiserver has for them; the glbc refuses to publish one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

use super::kind::RootKind;
use crate::apis::GlobalIngress;

/// Why `global` is an orphan, or `None` when a live root controls it, when
/// it has no controller at all but a live root of its name is there to
/// adopt it (a GlobalIngress written before owner references were set, or
/// by hand for that root), or when it is already being deleted. `root` looks up the root-kind object of a name
/// in the GlobalIngress's namespace.
///
/// The controller sets its owner reference in the same apply that creates a
/// root's GlobalIngress, and it only does so for a root its cache holds, so
/// a GlobalIngress it just created is never judged an orphan.
pub fn orphan_reason<K: RootKind>(
    global: &GlobalIngress,
    root: &dyn Fn(&str) -> Option<std::sync::Arc<K>>,
) -> Option<String> {
    if global.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let kind = K::kind(&());
    let any_controller = global
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true));
    let Some(owner) = controller_of::<K>(global) else {
        // Another kind's, judged by that kind; or, without any controller,
        // the kind that adopts those judges it.
        if any_controller || !K::ADOPTS_UNCONTROLLED {
            return None;
        }
        // The live root of its name adopts it (its reconcile sets the
        // owner reference): deleting it would withdraw that root's DNS.
        let adopter = root(&global.name_any())
            .filter(|r| K::is_root(r) && r.meta().deletion_timestamp.is_none());
        if adopter.is_some() {
            return None;
        }
        return Some(format!(
            "it has no controller owner reference to a {kind}, and no {kind} of its name adopts it"
        ));
    };
    let Some(found) = root(&owner.name) else {
        return Some(format!("its {kind} {} does not exist", owner.name));
    };
    if !K::is_root(&found) {
        return Some(format!(
            "{kind} {} is a leaf, not a root (the user's object)",
            owner.name
        ));
    }
    if found.uid().as_deref() != Some(owner.uid.as_str()) {
        return Some(format!(
            "its {kind} {} was deleted (the one of that name now has another uid)",
            owner.name
        ));
    }
    None
}

/// The controller owner reference of `global` that points at a root kind `K`.
fn controller_of<K: RootKind>(global: &GlobalIngress) -> Option<&OwnerReference> {
    global.owner_references().iter().find(|o| {
        o.controller == Some(true) && o.kind == K::kind(&()) && o.api_version == K::api_version(&())
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use k8s_openapi::api::networking::v1::Ingress;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use kube::Resource;
    use serde_json::json;

    use super::*;

    fn ingress(name: &str, uid: &str) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "apps", "uid": uid},
            "spec": {"rules": [{"host": "a.example.test"}]}
        }))
        .unwrap()
    }

    fn global(owner: Option<&Ingress>) -> GlobalIngress {
        let mut g = GlobalIngress::new("shop", Default::default());
        g.metadata.namespace = Some("apps".into());
        g.metadata.owner_references = owner.map(|o| vec![o.controller_owner_ref(&()).unwrap()]);
        g
    }

    fn judge(g: &GlobalIngress, objects: &[Ingress]) -> Option<String> {
        let by_name: HashMap<String, Arc<Ingress>> = objects
            .iter()
            .map(|o| (o.name_any(), Arc::new(o.clone())))
            .collect();
        orphan_reason::<Ingress>(g, &|n: &str| by_name.get(n).cloned())
    }

    #[test]
    fn a_global_ingress_of_a_live_root_is_not_an_orphan() {
        let shop = ingress("shop", "u-1");
        assert_eq!(
            judge(&global(Some(&shop)), std::slice::from_ref(&shop)),
            None
        );
    }

    #[test]
    fn without_a_live_controlling_root_it_is_an_orphan() {
        let shop = ingress("shop", "u-1");
        let why = judge(&global(None), &[ingress("other", "u-9")]).unwrap();
        assert!(why.contains("no controller owner reference"), "{why}");
        let why = judge(&global(Some(&shop)), &[]).unwrap();
        assert!(why.contains("does not exist"), "{why}");
        let recreated = ingress("shop", "u-2");
        let why = judge(&global(Some(&shop)), &[recreated]).unwrap();
        assert!(why.contains("another uid"), "{why}");
        // An owner reference that is not the controller's does not count
        // (here, with the owner living under another name).
        let main = ingress("main", "u-1");
        let mut loose = global(Some(&main));
        loose.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        let why = judge(&loose, std::slice::from_ref(&main)).unwrap();
        assert!(why.contains("no controller owner reference"), "{why}");
        // One controlled by another kind is that kind's to judge.
        let mut other = global(Some(&main));
        other.metadata.owner_references.as_mut().unwrap()[0].kind = "Gateway".into();
        assert_eq!(judge(&other, &[main]), None);
    }

    #[test]
    fn one_without_a_controller_is_adopted_by_the_live_root_of_its_name() {
        let shop = ingress("shop", "u-1");
        assert_eq!(judge(&global(None), std::slice::from_ref(&shop)), None);
        let mut leaving = shop.clone();
        leaving.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert!(judge(&global(None), &[leaving]).is_some());
        let leaf = crate::controller::decide::test_leaf(&ingress("main", "u-2"), "east");
        let mut named_like_a_leaf = global(None);
        named_like_a_leaf.metadata.name = leaf.metadata.name.clone();
        assert!(judge(&named_like_a_leaf, &[leaf]).is_some());
    }

    #[test]
    fn a_leaf_does_not_control_a_global_ingress() {
        let shop = ingress("shop", "u-1");
        let mut leaf = crate::controller::decide::test_leaf(&shop, "east");
        leaf.metadata.uid = Some("u-3".into());
        let g = global(Some(&leaf));
        let why = judge(&g, &[leaf]).unwrap();
        assert!(why.contains("is a leaf"), "{why}");
    }

    #[test]
    fn one_being_deleted_is_left_to_its_finalizers() {
        let mut g = global(None);
        g.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert_eq!(judge(&g, &[]), None);
    }
}
