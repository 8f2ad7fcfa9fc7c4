//! ringkv: a Dynamo-style distributed key-value store.
