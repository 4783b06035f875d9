use super::*;

/// The write-once contract, run against every backend.
async fn objects_are_written_once_and_read_back(store: &BlobStore) {
    let key = "acme/2026/12/06/0190-audit/evidence_package.json";
    let first = store.put_new(key, Bytes::from_static(b"{\"n\":1}")).await.expect("create");
    assert_eq!(first, StoredBlob { key: key.to_owned(), sha256: sha256_hex(b"{\"n\":1}"), size: 7, created: true });
    assert_eq!(store.get(key).await.expect("read"), Bytes::from_static(b"{\"n\":1}"));

    let again = store.put_new(key, Bytes::from_static(b"{\"n\":1}")).await.expect("same content again");
    assert!(!again.created, "an idempotent retry creates nothing");
    let error = store.put_new(key, Bytes::from_static(b"{\"n\":2}")).await.expect_err("different content");
    assert!(matches!(&error, BlobError::Conflict { existing, .. } if *existing == first.sha256), "{error}");
    assert_eq!(store.get(key).await.expect("read"), Bytes::from_static(b"{\"n\":1}"), "never overwritten");

    store.put_new("acme/2026/12/07/x/raw.json", Bytes::from_static(b"[]")).await.expect("second");
    store.put_new("umbrella/2026/12/06/y/raw.json", Bytes::from_static(b"[]")).await.expect("other tenant");
    assert_eq!(
        store.list("acme").await.expect("list"),
        vec![key.to_owned(), "acme/2026/12/07/x/raw.json".to_owned()],
        "listed by folder, without the deployment prefix"
    );
    assert!(matches!(store.get("acme/none.json").await, Err(BlobError::NotFound(_))));
    for bad in ["", "/abs", "a/../b", "folder/"] {
        assert!(matches!(store.put_new(bad, Bytes::new()).await, Err(BlobError::Key { .. })), "{bad:?} refused");
    }
}

#[tokio::test]
async fn local_files_are_written_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(&BlobsConfig::default(), dir.path()).expect("open");
    objects_are_written_once_and_read_back(&store).await;
    assert!(dir.path().join("blobs/acme/2026/12/06/0190-audit/evidence_package.json").is_file(), "under <data_dir>/blobs");
}

#[tokio::test]
async fn local_key_prefix_keeps_deployments_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = BlobsConfig::Local { path: Some(dir.path().join("shared")), key_prefix: "prod".to_owned() };
    let store = BlobStore::open(&config, dir.path()).expect("open");
    store.put_new("a/b.json", Bytes::from_static(b"1")).await.expect("put");
    assert!(dir.path().join("shared/prod/a/b.json").is_file());
    assert_eq!(store.list("a").await.expect("list"), vec!["a/b.json".to_owned()]);
}

/// Against moto's S3 server (`moto[server]` from PyPI, started by `scripts/test`): a local stand-in
/// that speaks the S3 REST protocol (SigV4-signed requests, path-style buckets, conditional
/// `PUT` with `If-None-Match: *` answered 412), not AWS itself.
#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_objects_are_written_once_on_an_s3_server() {
    let Some(endpoint) = aluskort_testkit::s3_test_endpoint() else { return };
    let bucket = format!("aluskort-test-{}", uuid::Uuid::new_v4().simple());
    // object_store does not create buckets: `PUT /{bucket}` (CreateBucket, path style).
    let created = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.expect("create bucket");
    assert!(created.status().is_success(), "CreateBucket answered {}", created.status());
    let config = BlobsConfig::S3(aluskort_config::S3Config {
        bucket,
        region: "us-east-1".to_owned(),
        endpoint: Some(endpoint),
        access_key_id: Some(aluskort_config::SecretString::new("testing".to_owned())),
        secret_access_key: Some(aluskort_config::SecretString::new("testing".to_owned())),
        allow_http: true,
        key_prefix: "deploy-a".to_owned(),
    });
    let store = BlobStore::open(&config, Path::new("/nonexistent")).expect("open");
    assert!(store.location().starts_with("s3://aluskort-test-"), "{}", store.location());
    objects_are_written_once_and_read_back(&store).await;
}
