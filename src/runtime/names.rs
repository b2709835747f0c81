//! An object's namespace and name as one text (issue #16, memory): the
//! forms a store keeps an object in ([`super::compact::Compact`], the
//! syncer's `CopyRecord`) keep them as `<namespace><name>` in one
//! allocation, not two boxed strings (session 13: 16 bytes inline and
//! one allocation, 16 bytes of malloc's header and the rounding of a
//! short text, less per object), with a [`Layout`] that says where the
//! name starts.

/// How a `names` text splits: the namespace's length in the low 30 bits,
/// whether there is a namespace and whether there is a name in the two
/// high bits (4 bytes beside the text's 16). A namespace of 1 GiB or more
/// cannot come from the API (its objects are a few MiB at most): it would
/// read as none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout(u32);

impl Layout {
    const HAS_NAMESPACE: u32 = 1 << 30;
    const HAS_NAME: u32 = 1 << 31;
    const LEN: u32 = Self::HAS_NAMESPACE - 1;

    /// The text and its layout for `namespace` and `name`.
    pub fn join(namespace: Option<&str>, name: Option<&str>) -> (Box<str>, Self) {
        let namespace = namespace.filter(|ns| ns.len() <= Self::LEN as usize);
        let mut text =
            String::with_capacity(namespace.map_or(0, str::len) + name.map_or(0, str::len));
        let mut layout = 0;
        if let Some(ns) = namespace {
            text.push_str(ns);
            // At most `LEN` (filtered above).
            layout |= Self::HAS_NAMESPACE | u32::try_from(ns.len()).unwrap_or(0);
        }
        if let Some(name) = name {
            text.push_str(name);
            layout |= Self::HAS_NAME;
        }
        (text.into_boxed_str(), Self(layout))
    }

    /// The namespace and the name in `text`.
    pub fn split(self, text: &str) -> (Option<&str>, Option<&str>) {
        let at = (self.0 & Self::LEN) as usize;
        let (namespace, name) = text.split_at_checked(at).unwrap_or((text, ""));
        (
            (self.0 & Self::HAS_NAMESPACE != 0).then_some(namespace),
            (self.0 & Self::HAS_NAME != 0).then_some(name),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_splits_back_into_namespace_and_name() {
        for (namespace, name) in [
            (None, None),
            (Some("shop"), None),
            (None, Some("web")),
            (Some(""), Some("")),
            (Some("shop"), Some("")),
            (Some("é"), Some("ü.x")),
            (Some("kcp-ingress-cluster-east"), Some("shop.web--east")),
        ] {
            let (text, layout) = Layout::join(namespace, name);
            assert_eq!(layout.split(&text), (namespace, name));
            assert_eq!(
                &*text,
                format!("{}{}", namespace.unwrap_or(""), name.unwrap_or(""))
            );
        }
        // A layout that does not fit its text (it cannot happen) reads
        // the whole text as the namespace, without a panic.
        assert_eq!(
            Layout(Layout::HAS_NAMESPACE | 9).split("ab"),
            (Some("ab"), None)
        );
    }
}
