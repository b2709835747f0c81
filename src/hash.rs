//! One 64-bit hash for the memories that only ask "the same as before?"
//! (pure): std's SipHash with its fixed keys, stable within a process,
//! which is all such a memory needs (nothing hashed here is persisted or
//! compared across processes).

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};

/// The hash of `value`.
pub fn of<T: Hash + ?Sized>(value: &T) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn equal_values_hash_alike_and_others_differ() {
        assert_eq!(super::of("a"), super::of(&"a".to_string()));
        assert_ne!(super::of("a"), super::of("b"));
        assert_eq!(super::of(&("x", 1)), super::of(&("x", 1)));
    }
}
