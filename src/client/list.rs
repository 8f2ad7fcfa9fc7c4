//! Listing the cluster's live keys (PROTOCOL.md version 2 `list`): a page
//! at a time, or every page in turn.

use ringkv_actors::wire::client::{map_field, ClientOp};
use rmpv::Value;

use super::{Client, Error, KeyPage};

impl Client {
    /// One page of the cluster's live keys, in ring order (PROTOCOL.md
    /// version 2 `list`): from `cursor` (`None`: the first page), at most
    /// `limit` keys (`None`: the node's default, 100; the node refuses
    /// anything outside 1..=1000). A page may hold fewer keys, even none,
    /// and still have a next page; [`KeyPage::cursor`] is `None` only on
    /// the last one.
    pub async fn list_page(
        &self,
        cursor: Option<&[u8]>,
        limit: Option<usize>,
    ) -> Result<KeyPage, Error> {
        let op = ClientOp::List {
            cursor: cursor.map(<[u8]>::to_vec),
            limit,
        };
        let body = self.call(op, None).await?;
        let keys = match map_field(&body, "keys") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Binary(b) => Ok(b.clone()),
                    _ => Err(Error::Protocol("a listed key is not bin".into())),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(Error::Protocol("list answer has no `keys` array".into())),
        };
        let cursor = match map_field(&body, "cursor") {
            None | Some(Value::Nil) => None,
            Some(Value::Binary(b)) => Some(b.clone()),
            Some(_) => return Err(Error::Protocol("`cursor` is not bin".into())),
        };
        Ok(KeyPage { keys, cursor })
    }

    /// Walks every page of a listing from the start, `limit` keys per page,
    /// handing each page's keys to `each` in ring order; answers how many
    /// keys there were. Memory stays at one page. A failed page stops the
    /// walk with its error (the pages before it were handed over).
    pub async fn list_all(
        &self,
        limit: Option<usize>,
        mut each: impl FnMut(Vec<u8>),
    ) -> Result<u64, Error> {
        let (mut cursor, mut count) = (None::<Vec<u8>>, 0u64);
        loop {
            let page = self.list_page(cursor.as_deref(), limit).await?;
            count += page.keys.len() as u64;
            page.keys.into_iter().for_each(&mut each);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(count),
            }
        }
    }
}
