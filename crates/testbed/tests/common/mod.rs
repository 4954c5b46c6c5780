//! One object_store workout shared by the Azurite and S3 tests, so both backends are
//! held to the same behaviour.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutPayload};

/// put, head, get (whole and ranged), list, copy, conditional create, multipart upload,
/// delete: everything offsite's backends lean on.
pub async fn exercise(store: Arc<dyn ObjectStore>) {
    let original = Path::from("snapshots/one");
    let copy = Path::from("snapshots/two");
    let elsewhere = Path::from("packs/aa/0001");
    let data = Bytes::from_static(b"hello from offsite");

    store.put(&original, PutPayload::from(data.clone())).await.expect("put");
    store.put(&elsewhere, PutPayload::from_static(b"pack")).await.expect("put second object");

    let meta = store.head(&original).await.expect("head");
    assert_eq!(meta.size, data.len() as u64);

    let got = store.get(&original).await.expect("get").bytes().await.expect("get body");
    assert_eq!(got, data);
    let range = store.get_range(&original, 6..10).await.expect("get_range");
    assert_eq!(&range[..], b"from");

    store.copy(&original, &copy).await.expect("copy");
    let got = store.get(&copy).await.expect("get copy").bytes().await;
    assert_eq!(got.expect("get copy body"), data);

    let mut listed: Vec<String> = store
        .list(Some(&Path::from("snapshots")))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list");
    listed.sort();
    assert_eq!(listed, ["snapshots/one", "snapshots/two"]);

    let top = store.list_with_delimiter(None).await.expect("list_with_delimiter");
    let mut prefixes: Vec<String> = top.common_prefixes.iter().map(|p| p.to_string()).collect();
    prefixes.sort();
    assert_eq!(prefixes, ["packs", "snapshots"]);

    // Create-only puts are how a writer claims a name without overwriting another's.
    let lock = Path::from("locks/writer");
    store.put_opts(&lock, PutPayload::from_static(b"a"), PutMode::Create.into()).await.expect("first create-only put");
    let second = store.put_opts(&lock, PutPayload::from_static(b"b"), PutMode::Create.into()).await;
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "second create-only put should fail with AlreadyExists, got {second:?}"
    );

    // Multipart: two 5 MiB parts (S3's minimum for all but the last) and a short tail.
    let big = Path::from("packs/big");
    let part = vec![7u8; 5 * 1024 * 1024];
    let mut upload = store.put_multipart(&big).await.expect("put_multipart");
    upload.put_part(part.clone().into()).await.expect("part 1");
    upload.put_part(part.into()).await.expect("part 2");
    upload.put_part(PutPayload::from_static(b"tail")).await.expect("part 3");
    upload.complete().await.expect("complete multipart");
    let meta = store.head(&big).await.expect("head multipart object");
    assert_eq!(meta.size, 10 * 1024 * 1024 + 4);

    for path in [&original, &copy, &elsewhere, &lock, &big] {
        store.delete(path).await.expect("delete");
    }
    let gone = store.get(&original).await;
    assert!(
        matches!(gone, Err(object_store::Error::NotFound { .. })),
        "deleted object should be NotFound, got {gone:?}"
    );
    let left: Vec<_> = store.list(None).try_collect().await.expect("list after delete");
    assert!(left.is_empty(), "objects left after delete: {left:?}");
}
