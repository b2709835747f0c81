//! An `ObjectMeta` built only when asked for (issue #16, memory): for the
//! forms a store keeps an object in ([`super::compact::Compact`], the
//! syncer's `CopyRecord`), which keep the few metadata fields they read
//! (name, namespace, deletion timestamp) as fields of their own.
//!
//! They carry a whole `ObjectMeta` (360 bytes inline, nearly all of it
//! empty) only because kube-runtime's store and controller want
//! `Resource`, whose `meta()` hands out a `&ObjectMeta`. Of a stored
//! object kube-runtime reads it once, on the event's object, to make the
//! store's key (`Writer::apply_watcher_event`: `to_object_ref`, then
//! `Arc::new(obj.clone())`), and the controller's `reconcile_on` reads the
//! key, not the object. So the meta is built on the first `meta()` and
//! kept as a cache that a clone leaves behind: the clone the store keeps
//! holds none, and the code over a store reads the fields through
//! inherent accessors, never `meta()`.
//!
//! `meta_mut()` (nothing in kube-runtime's store or controller calls it on
//! a stored form, nor does this crate) builds the meta too, and from then
//! on that meta is what the object's accessors read and what a clone
//! carries: an edit through it is kept, never lost to the fields it was
//! built from.

use std::sync::OnceLock;

use kube::core::ObjectMeta;

/// The built metadata of an object, if any (see the module docs).
#[derive(Default)]
pub struct LazyMeta(OnceLock<Box<Built>>);

struct Built {
    meta: ObjectMeta,
    /// Handed out by `edit`: what the object's accessors read from then on.
    edited: bool,
}

impl LazyMeta {
    /// The metadata, built by `build` on the first call.
    pub fn get_or_build(&self, build: impl FnOnce() -> ObjectMeta) -> &ObjectMeta {
        &self
            .0
            .get_or_init(|| {
                Box::new(Built {
                    meta: build(),
                    edited: false,
                })
            })
            .meta
    }

    /// The metadata to edit, built by `build` when it was not yet; from
    /// now on [`LazyMeta::edited`] hands it out.
    pub fn edit(&mut self, build: impl FnOnce() -> ObjectMeta) -> &mut ObjectMeta {
        self.get_or_build(build);
        match self.0.get_mut() {
            Some(built) => {
                built.edited = true;
                &mut built.meta
            }
            // Built just above, so it cannot be empty (std has no stable
            // `get_mut_or_init`); rather than panic, a detached empty meta.
            None => Box::leak(Box::default()),
        }
    }

    /// The metadata once edited, to edit again (see [`LazyMeta::edit`]).
    pub fn edited_mut(&mut self) -> Option<&mut ObjectMeta> {
        self.0.get_mut().filter(|b| b.edited).map(|b| &mut b.meta)
    }

    /// The metadata once edited ([`LazyMeta::edit`]): then what the
    /// object's accessors read instead of its own fields.
    pub fn edited(&self) -> Option<&ObjectMeta> {
        self.0.get().filter(|b| b.edited).map(|b| &b.meta)
    }

    /// A metadata field as the object reads it: from the edited metadata
    /// if there is one ([`LazyMeta::edit`]), else the object's `own` field.
    pub fn field<'a, T: ?Sized>(
        &'a self,
        own: Option<&'a T>,
        edited: impl FnOnce(&'a ObjectMeta) -> Option<&'a T>,
    ) -> Option<&'a T> {
        match self.edited() {
            Some(meta) => edited(meta),
            None => own,
        }
    }

    /// Whether the metadata was built (for tests and measurements).
    pub fn is_built(&self) -> bool {
        self.0.get().is_some()
    }

    /// Forgets a built metadata that was not edited (the fields it was
    /// built from are about to change).
    pub fn reset(&mut self) {
        if self.0.get().is_some_and(|b| !b.edited) {
            self.0 = OnceLock::new();
        }
    }
}

/// A clone keeps an edited metadata (it is the object's), not a cache.
impl Clone for LazyMeta {
    fn clone(&self) -> Self {
        match self.0.get().filter(|b| b.edited) {
            Some(built) => Self(OnceLock::from(Box::new(Built {
                meta: built.meta.clone(),
                edited: true,
            }))),
            None => Self::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn it_is_built_once_and_a_clone_leaves_it_behind() {
        let lazy = LazyMeta::default();
        assert!(!lazy.is_built());
        assert_eq!(lazy.get_or_build(|| named("a")).name.as_deref(), Some("a"));
        // Built already: the second builder is not called.
        assert_eq!(lazy.get_or_build(|| named("b")).name.as_deref(), Some("a"));
        assert!(lazy.is_built() && lazy.edited().is_none());
        assert!(!lazy.clone().is_built());
        let mut lazy = lazy;
        lazy.reset();
        assert!(!lazy.is_built());
    }

    #[test]
    fn an_edited_one_is_kept_by_clones_and_resets() {
        let mut lazy = LazyMeta::default();
        lazy.get_or_build(|| named("a"));
        lazy.edit(|| named("unused")).namespace = Some("ns".into());
        let mut clone = lazy.clone();
        clone.reset();
        for l in [&lazy, &clone] {
            let edited = l.edited().unwrap();
            assert_eq!(edited.name.as_deref(), Some("a"));
            assert_eq!(edited.namespace.as_deref(), Some("ns"));
        }
        clone.edited_mut().unwrap().name = None;
        assert_eq!(clone.edited().unwrap().name, None);
        // Edited before it was ever built: built by the edit's builder.
        let mut fresh = LazyMeta::default();
        assert!(fresh.edited_mut().is_none());
        assert_eq!(fresh.edit(|| named("c")).name.as_deref(), Some("c"));
    }
}
