//! One 64-bit hash for the memories that only ask "the same as before?"
//! (pure), and the hash maps of the glbc's per-root bookkeeping, both with
//! foldhash's quality hasher. The memories' hasher has a fixed seed:
//! stable within a process, which is all such a memory needs (nothing
//! hashed here is persisted or compared across processes). SipHash, std's
//! default, took about a fifth of a glbc pass at 5,000 roots (its
//! fingerprints and maps are per root, every pass).

use std::hash::{BuildHasher, Hash};

use foldhash::quality::{FixedState, RandomState};

/// The seed of the memories' hasher (any constant).
const SEED: u64 = 0x6b63_702d_696e_6772;

/// The hash of `value`.
pub fn of<T: Hash + ?Sized>(value: &T) -> u64 {
    FixedState::with_seed(SEED).hash_one(value)
}

/// A hasher that gives [`of`]'s hashes, for values hashed in parts.
pub fn hasher() -> impl std::hash::Hasher {
    FixedState::with_seed(SEED).build_hasher()
}

/// A hash map with foldhash's randomly seeded quality hasher.
pub type Map<K, V> = std::collections::HashMap<K, V, RandomState>;

#[cfg(test)]
mod tests {
    use std::hash::{Hash, Hasher};

    #[test]
    fn equal_values_hash_alike_and_others_differ() {
        assert_eq!(super::of("a"), super::of(&"a".to_string()));
        assert_ne!(super::of("a"), super::of("b"));
        assert_eq!(super::of(&("x", 1)), super::of(&("x", 1)));
    }

    #[test]
    fn a_value_hashed_in_parts_hashes_as_a_whole() {
        let mut h = super::hasher();
        "x".hash(&mut h);
        1.hash(&mut h);
        assert_eq!(h.finish(), super::of(&("x", 1)));
    }
}
