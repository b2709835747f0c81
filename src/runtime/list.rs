//! Listing every object of a type, page by page, metadata only.

use std::fmt::Debug;

use futures::Stream;
use kube::api::{Api, ListParams, PartialObjectMeta};
use kube::core::Resource;
use serde::de::DeserializeOwned;

/// Every object `api` lists with `params` (set a page size with
/// `.limit(n)`), as its metadata, following continue tokens; the stream
/// ends at the last page, or after the first error.
pub fn all_metadata<K>(
    api: Api<K>,
    params: ListParams,
) -> impl Stream<Item = Result<PartialObjectMeta<K>, kube::Error>>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let pages = futures::stream::try_unfold(Some(params), move |params| {
        let api = api.clone();
        async move {
            let Some(params) = params else {
                return Ok::<_, kube::Error>(None);
            };
            let page = api.list_metadata(&params).await?;
            let next = page
                .metadata
                .continue_
                .clone()
                .filter(|c| !c.is_empty())
                .map(|token| params.clone().continue_token(&token));
            Ok(Some((
                futures::stream::iter(page.items.into_iter().map(Ok)),
                next,
            )))
        }
    });
    futures::TryStreamExt::try_flatten(pages)
}
