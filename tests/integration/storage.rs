//! The object store, against s3s-fs (a real S3 server with SigV4) and against a local folder.
//!
//! Behaviour both backends promise is written once and run on each by `on_both_backends!`,
//! giving tests named `storage::<sentence>::on_r2` and `storage::<sentence>::on_local`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use portrait_bot::storage::{
    ascii_safe, decode_ascii_safe, R2Settings, StorageError, Store, CACHE_CONTROL,
};

use testkit::s3::{self, S3ErrorCode, TestS3, MISSING_BUCKET, PUBLIC_URL, SECRET_KEY};

use crate::support::r2::{store_with, R2Access};

const LOCAL_PUBLIC_URL: &str = "http://127.0.0.1:9091/objects";
const KEY: &str = "dev/portraits/2026/11/0123456789abcdef_zoe-the-bold.png";

/// Generates `mod $name { on_r2, on_local }`, each running `$body(store)` on a fresh store.
macro_rules! on_both_backends {
    ($($name:ident => $body:ident;)*) => {$(
        mod $name {
            #[tokio::test]
            async fn on_r2() {
                use crate::support::r2::R2Access;
                let s3 = testkit::s3::TestS3::start().await;
                super::$body(s3.store()).await;
            }

            #[tokio::test]
            async fn on_local() {
                let dir = tempfile::tempdir().unwrap();
                super::$body(super::local_store(dir.path())).await;
            }
        }
    )*};
}

on_both_backends! {
    an_uploaded_object_keeps_its_bytes_content_type_cache_control_and_metadata => upload_keeps_everything;
    a_missing_object_heads_as_none_gets_as_not_found_and_deletes_quietly => missing_object;
    a_deleted_object_is_gone_from_head_get_and_listings => delete_removes;
    listing_a_prefix_follows_pages_past_a_thousand_objects_and_delete_prefix_removes_them_in_batches => list_and_delete_many;
    a_listing_returns_only_keys_under_the_prefix_in_key_order_with_sizes => list_is_scoped_and_sorted;
    a_copied_object_keeps_its_bytes_content_type_cache_control_and_metadata => copy_keeps_everything;
    copying_a_missing_object_is_not_found => copy_missing;
    the_round_trip_check_passes_and_leaves_nothing_behind => round_trip_check_passes;
    a_healthy_store_answers_ping => ping_ok;
    metadata_over_eight_kib_is_refused_and_nothing_is_stored => oversized_metadata;
    uploading_the_same_key_again_replaces_the_object => overwrite;
}

pub(crate) fn local_store(dir: &Path) -> Store {
    Store::local(dir.join("objects"), LOCAL_PUBLIC_URL.to_owned()).unwrap()
}

/// Some bytes that are not valid UTF-8, so nothing "helpfully" transcodes them.
fn png_like(len: usize, seed: u8) -> Bytes {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    Bytes::from(v)
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Fails the test instead of hanging if storage never answers. Not a performance assertion:
/// the expected time is a few seconds, the guard is far above it.
async fn within_a_minute<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("storage call hung for a minute")
}

async fn upload_keeps_everything(store: Store) {
    let body = png_like(70_000, 7);
    store
        .put(
            KEY,
            body.clone(),
            "image/png",
            &[
                ("uploader-id", "1234"),
                ("character-name", "Zoë the Bold"),
                ("Note", "  100% spaced  "),
            ],
        )
        .await
        .unwrap();

    let expected_meta = meta(&[
        ("uploader-id", "1234"),
        ("character-name", "Zo%C3%AB the Bold"),
        ("note", "%20%20100%25 spaced%20%20"),
    ]);
    let got = store.get(KEY).await.unwrap();
    assert_eq!(got.bytes, body, "the exact uploaded bytes come back");
    assert_eq!(got.info.content_type.as_deref(), Some("image/png"));
    assert_eq!(got.info.cache_control.as_deref(), Some(CACHE_CONTROL));
    assert_eq!(
        got.info.cache_control.as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(got.info.metadata, expected_meta);
    assert_eq!(got.info.size, body.len() as u64);
    assert!(got.info.last_modified.is_some());
    assert_eq!(
        decode_ascii_safe(&got.info.metadata["character-name"]),
        "Zoë the Bold"
    );
    assert_eq!(
        decode_ascii_safe(&got.info.metadata["note"]),
        "  100% spaced  "
    );

    let head = store
        .head(KEY)
        .await
        .unwrap()
        .expect("head finds the object");
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(head.content_type.as_deref(), Some("image/png"));
    assert_eq!(head.cache_control.as_deref(), Some(CACHE_CONTROL));
    assert_eq!(head.metadata, expected_meta);
    assert!(store.exists(KEY).await.unwrap());
}

async fn missing_object(store: Store) {
    let key = "dev/portraits/2026/11/ffffffffffffffff_nobody.png";
    assert_eq!(store.head(key).await.unwrap(), None);
    assert!(!store.exists(key).await.unwrap());
    match store.get(key).await {
        Err(StorageError::NotFound { key: k }) => assert_eq!(k, key),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let err = store.get(key).await.unwrap_err();
    assert_eq!(err.kind(), "not_found");
    assert!(!err.is_transient());
    assert!(err.to_string().contains(key), "{err}");
    store.delete(key).await.expect("deleting nothing is fine");
}

async fn delete_removes(store: Store) {
    store
        .put(KEY, png_like(100, 1), "image/png", &[("uploader-id", "1")])
        .await
        .unwrap();
    store.delete(KEY).await.unwrap();
    assert_eq!(store.head(KEY).await.unwrap(), None);
    assert_eq!(store.get(KEY).await.unwrap_err().kind(), "not_found");
    assert!(store.list_prefix("dev/").await.unwrap().is_empty());
    // A second delete of the same key is still fine.
    store.delete(KEY).await.unwrap();
}

async fn put_many(store: &Store, keys: &[String]) {
    stream::iter(keys.iter().cloned())
        .map(|key| {
            let store = store.clone();
            async move {
                store
                    .put(&key, Bytes::from(key.clone()), "image/png", &[])
                    .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

async fn list_and_delete_many(store: Store) {
    // S3, R2 and s3s-fs return at most 1000 keys a page, so 1005 keys can only all come back
    // if the store followed a continuation token, and deleting them takes two DeleteObjects.
    let many: Vec<String> = (0..1005)
        .map(|i| format!("dev/portraits/2026/11/{i:016x}_char-{i}.png"))
        .collect();
    let others = [
        "dev/portraits/2026/12/aaaaaaaaaaaaaaaa_later.png".to_owned(),
        "prod/portraits/2026/11/bbbbbbbbbbbbbbbb_prod.png".to_owned(),
    ];
    put_many(&store, &many).await;
    put_many(&store, &others).await;

    let listed = store.list_prefix("dev/portraits/2026/11/").await.unwrap();
    assert_eq!(listed.len(), 1005, "every object, across the page boundary");
    let listed_keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let mut expected = many.clone();
    expected.sort();
    assert_eq!(listed_keys, expected);
    assert!(listed.iter().all(|o| o.size == o.key.len() as u64));

    assert_eq!(
        store.delete_prefix("dev/portraits/2026/11/").await.unwrap(),
        1005
    );
    assert!(store
        .list_prefix("dev/portraits/2026/11/")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.head(&many[0]).await.unwrap(), None);
    assert_eq!(store.head(&many[1004]).await.unwrap(), None);
    // Objects outside the prefix are untouched.
    for key in &others {
        assert!(store.exists(key).await.unwrap(), "{key} survived");
    }
    assert_eq!(
        store.delete_prefix("dev/portraits/2026/11/").await.unwrap(),
        0
    );
    // An empty prefix would wipe everything; it is refused and deletes nothing.
    assert_eq!(store.delete_prefix("").await.unwrap_err().kind(), "other");
    assert_eq!(store.list_prefix("").await.unwrap().len(), others.len());
}

async fn list_is_scoped_and_sorted(store: Store) {
    let keys = [
        "dev/portraits/2026/11/b_two.png",
        "dev/portraits/2026/11/a_one.png",
        "dev/portraits/2026/1/c_january.png",
        "dev/portraits/2026/10/d_october.png",
        "dev/other/e.png",
        "prod/portraits/2026/11/f.png",
    ];
    for (i, key) in keys.iter().enumerate() {
        store
            .put(key, png_like(10 * i, 0), "image/png", &[])
            .await
            .unwrap();
    }
    let keys_of = |listed: Vec<portrait_bot::storage::ListedObject>| {
        listed.into_iter().map(|o| o.key).collect::<Vec<_>>()
    };

    assert_eq!(
        keys_of(store.list_prefix("dev/portraits/2026/11/").await.unwrap()),
        [
            "dev/portraits/2026/11/a_one.png",
            "dev/portraits/2026/11/b_two.png"
        ]
    );
    // A prefix need not end at a `/`: `2026/1` matches the `1`, `10` and `11` folders.
    assert_eq!(
        keys_of(store.list_prefix("dev/portraits/2026/1").await.unwrap()),
        [
            "dev/portraits/2026/1/c_january.png",
            "dev/portraits/2026/10/d_october.png",
            "dev/portraits/2026/11/a_one.png",
            "dev/portraits/2026/11/b_two.png",
        ]
    );
    assert_eq!(store.list_prefix("").await.unwrap().len(), keys.len());
    assert!(store.list_prefix("nothing/here/").await.unwrap().is_empty());

    let listed = store.list_prefix("dev/portraits/2026/11/b").await.unwrap();
    assert_eq!(listed.len(), 1);
    // `b_two.png` was the first put, with `png_like(0, 0)`.
    assert_eq!(listed[0].size, png_like(0, 0).len() as u64);
    assert!(listed[0].last_modified.is_some());
}

async fn copy_keeps_everything(store: Store) {
    let body = png_like(5000, 3);
    store
        .put(
            KEY,
            body.clone(),
            "image/webp",
            &[("uploader-id", "42"), ("character-name", "Zoë")],
        )
        .await
        .unwrap();
    // A destination (and source) with a space and non-ASCII exercises copy-source encoding.
    let to = "prod/portraits/2026/11/0123456789abcdef_Zoë the bold.webp";
    store.copy(KEY, to).await.unwrap();
    store
        .copy(to, "prod/backup/copy of Zoë.webp")
        .await
        .unwrap();

    for key in [KEY, to, "prod/backup/copy of Zoë.webp"] {
        let got = store.get(key).await.unwrap();
        assert_eq!(got.bytes, body, "{key}");
        assert_eq!(
            got.info.content_type.as_deref(),
            Some("image/webp"),
            "{key}"
        );
        assert_eq!(
            got.info.cache_control.as_deref(),
            Some(CACHE_CONTROL),
            "{key}"
        );
        assert_eq!(
            got.info.metadata,
            meta(&[("uploader-id", "42"), ("character-name", "Zo%C3%AB")]),
            "{key}"
        );
    }
    // Copying onto itself is a harmless no-op.
    store.copy(KEY, KEY).await.unwrap();
    assert_eq!(store.get(KEY).await.unwrap().bytes, body);
}

async fn copy_missing(store: Store) {
    let err = store
        .copy("dev/portraits/none.png", "dev/portraits/copy.png")
        .await
        .unwrap_err();
    match &err {
        StorageError::NotFound { key } => assert_eq!(key, "dev/portraits/none.png"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.head("dev/portraits/copy.png").await.unwrap(), None);
}

async fn round_trip_check_passes(store: Store) {
    store.round_trip_check("dev/checks").await.unwrap();
    store.round_trip_check("dev/checks/").await.unwrap();
    assert!(store.list_prefix("").await.unwrap().is_empty());
}

async fn ping_ok(store: Store) {
    store.ping().await.unwrap();
}

async fn oversized_metadata(store: Store) {
    let long = "x".repeat(9000);
    let err = store
        .put(
            KEY,
            png_like(10, 0),
            "image/png",
            &[("note", long.as_str())],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "other");
    assert!(err.to_string().contains("8192"), "{err}");
    assert_eq!(store.head(KEY).await.unwrap(), None);
}

async fn overwrite(store: Store) {
    store
        .put(KEY, png_like(300, 1), "image/png", &[("v", "1")])
        .await
        .unwrap();
    store
        .put(KEY, png_like(200, 2), "image/jpeg", &[("v", "2")])
        .await
        .unwrap();
    let got = store.get(KEY).await.unwrap();
    assert_eq!(got.bytes, png_like(200, 2));
    assert_eq!(got.info.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(got.info.metadata, meta(&[("v", "2")]));
    assert_eq!(store.list_prefix("").await.unwrap().len(), 1);
}

// ----- R2 only: credentials, buckets and outages -----

fn assert_no_credentials(text: &str) {
    assert!(!text.contains(SECRET_KEY), "secret leaked: {text}");
    assert!(
        !text.contains("definitely-not-the-secret"),
        "secret leaked: {text}"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_access_denied_naming_r2_secret_access_key() {
    let s3 = TestS3::start().await;
    // Something to read, so a refusal cannot be mistaken for "not found".
    s3.store()
        .put(KEY, png_like(10, 0), "image/png", &[])
        .await
        .unwrap();
    let store = store_with(s3.settings_with_wrong_secret());

    let put = store
        .put(KEY, png_like(10, 0), "image/png", &[])
        .await
        .unwrap_err();
    let results = [
        ("put", put),
        ("get", store.get(KEY).await.unwrap_err()),
        ("head", store.head(KEY).await.unwrap_err()),
        ("list", store.list_prefix("dev/").await.unwrap_err()),
        ("ping", store.ping().await.unwrap_err()),
        ("delete", store.delete(KEY).await.unwrap_err()),
        (
            "check",
            store.round_trip_check("dev/checks").await.unwrap_err(),
        ),
    ];
    for (op, err) in &results {
        assert!(
            matches!(err, StorageError::AccessDenied { .. }),
            "{op}: expected AccessDenied, got {err:?}"
        );
        assert_eq!(err.kind(), "access_denied");
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(text.contains("R2_SECRET_ACCESS_KEY"), "{op}: {text}");
        assert!(text.contains("R2_ACCESS_KEY_ID"), "{op}: {text}");
        assert!(text.contains(s3.bucket()), "{op}: {text}");
        assert_no_credentials(&text);
        assert_no_credentials(&format!("{err:?}"));
    }
    // Requests with a body name the S3 error code (HEAD answers have no body to carry one).
    assert!(
        results[0].1.to_string().contains("SignatureDoesNotMatch"),
        "{}",
        results[0].1
    );
    // And the object is untouched.
    assert_eq!(s3.store().get(KEY).await.unwrap().bytes, png_like(10, 0));
}

#[tokio::test]
async fn a_missing_bucket_is_bucket_missing_naming_the_bucket_and_r2_bucket_name() {
    let s3 = TestS3::start().await;
    let store = store_with(s3.settings_with_missing_bucket());
    // s3s-fs creates a missing bucket's folder on PUT (real S3/R2 answer NoSuchBucket), so
    // this checks the operations that must not write: ping, listing, the round-trip check
    // (which pings first) and delete_prefix.
    let results = [
        ("ping", store.ping().await.unwrap_err()),
        ("list", store.list_prefix("dev/").await.unwrap_err()),
        (
            "check",
            store.round_trip_check("dev/checks").await.unwrap_err(),
        ),
        (
            "delete_prefix",
            store.delete_prefix("dev/").await.unwrap_err(),
        ),
    ];
    for (op, err) in &results {
        match err {
            StorageError::BucketMissing { bucket, .. } => assert_eq!(bucket, MISSING_BUCKET),
            other => panic!("{op}: expected BucketMissing, got {other:?}"),
        }
        assert_eq!(err.kind(), "bucket_missing");
        let text = err.to_string();
        assert!(text.contains(MISSING_BUCKET), "{op}: {text}");
        assert!(text.contains("R2_BUCKET_NAME"), "{op}: {text}");
    }
    assert!(
        results[1].1.to_string().contains("NoSuchBucket"),
        "{}",
        results[1].1
    );
}

#[tokio::test]
async fn a_stopped_store_is_transient_naming_r2_endpoint() {
    let mut s3 = TestS3::start().await;
    let store = s3.store();
    // A first request leaves a pooled keep-alive connection that stopping must break too.
    store
        .put(KEY, png_like(10, 0), "image/png", &[])
        .await
        .unwrap();
    s3.stop().await;
    assert!(s3.is_stopped());

    let results = [
        (
            "put",
            within_a_minute(store.put(KEY, png_like(10, 0), "image/png", &[]))
                .await
                .unwrap_err(),
        ),
        ("get", within_a_minute(store.get(KEY)).await.unwrap_err()),
        ("ping", within_a_minute(store.ping()).await.unwrap_err()),
    ];
    for (op, err) in &results {
        assert!(
            matches!(err, StorageError::Transient { .. }),
            "{op}: expected Transient, got {err:?}"
        );
        assert!(err.is_transient());
        assert_eq!(err.kind(), "transient");
        let text = err.to_string();
        assert!(text.contains("R2_ENDPOINT"), "{op}: {text}");
        assert!(text.contains(s3.endpoint()), "{op}: {text}");
        assert_no_credentials(&text);
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient_and_fails_fast() {
    let settings = R2Settings {
        endpoint: s3::unreachable_endpoint().await,
        ..TestS3::start().await.settings()
    };
    let store = store_with(settings);
    let started = std::time::Instant::now();
    let err = within_a_minute(store.ping()).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("R2_ENDPOINT"), "{err}");
    // Reported, not asserted (DESIGN: no timed assertions): retries of a refused connection
    // back off for at most 0.2 + 0.4 + 0.8 s, so this is about a second.
    eprintln!(
        "unreachable endpoint reported after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn r2_listing_and_prefix_deletion_really_cross_the_thousand_key_page_boundary() {
    let s3 = TestS3::start().await;
    let store = s3.store();
    let keys: Vec<String> = (0..2001)
        .map(|i| format!("dev/portraits/2026/11/{i:016x}_c.png"))
        .collect();
    put_many(&store, &keys).await;
    s3.clear_request_log();

    assert_eq!(store.list_prefix("dev/").await.unwrap().len(), 2001);
    assert_eq!(s3.requests("ListObjectsV2"), 3, "{:?}", s3.request_log());

    s3.clear_request_log();
    assert_eq!(store.delete_prefix("dev/").await.unwrap(), 2001);
    // Pages of 1000, 1000 and 1: one DeleteObjects for each, never more than 1000 keys.
    assert_eq!(s3.requests("DeleteObjects"), 3, "{:?}", s3.request_log());
    assert_eq!(s3.requests("DeleteObject"), 0);
    assert!(store.list_prefix("dev/").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_batch_delete_the_server_refuses_falls_back_to_deleting_one_by_one() {
    // Newer SDKs always send a CRC32 header with DeleteObjects; some S3-compatible servers
    // answer NotImplemented to that.
    let s3 = TestS3::start().await;
    let store = s3.store();
    let keys: Vec<String> = (0..5).map(|i| format!("dev/old/{i}.png")).collect();
    put_many(&store, &keys).await;
    s3.fail("DeleteObjects", S3ErrorCode::NotImplemented, None);
    s3.clear_request_log();

    assert_eq!(store.delete_prefix("dev/old/").await.unwrap(), 5);
    assert_eq!(s3.requests("DeleteObjects"), 1);
    assert_eq!(s3.requests("DeleteObject"), 5);
    assert!(store.list_prefix("dev/old/").await.unwrap().is_empty());
}

#[tokio::test]
async fn an_upload_that_meets_two_503s_is_retried_and_stored() {
    let s3 = TestS3::start().await;
    let store = s3.store();
    s3.fail("PutObject", S3ErrorCode::ServiceUnavailable, Some(2));
    store
        .put(KEY, png_like(100, 4), "image/png", &[])
        .await
        .unwrap();
    assert_eq!(s3.requests("PutObject"), 3);
    assert_eq!(store.get(KEY).await.unwrap().bytes, png_like(100, 4));
}

#[tokio::test]
async fn an_upload_that_keeps_meeting_503s_gives_up_after_four_attempts_as_transient() {
    let s3 = TestS3::start().await;
    let store = s3.store();
    s3.fail("PutObject", S3ErrorCode::SlowDown, None);
    let err = within_a_minute(store.put(KEY, png_like(100, 4), "image/png", &[]))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("SlowDown"), "{text}");
    assert!(text.contains("HTTP 503"), "{text}");
    assert_eq!(s3.requests("PutObject"), 4);
    assert_eq!(store.head(KEY).await.unwrap(), None);
}

#[tokio::test]
async fn an_upload_refused_with_access_denied_is_not_retried() {
    let s3 = TestS3::start().await;
    let store = s3.store();
    s3.fail("PutObject", S3ErrorCode::AccessDenied, None);
    let err = store
        .put(KEY, png_like(100, 4), "image/png", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "access_denied", "{err:?}");
    assert_eq!(s3.requests("PutObject"), 1);
    // Reads are not affected by a fault set for writes.
    store.ping().await.unwrap();
}

#[tokio::test]
async fn the_r2_store_describes_itself_and_builds_public_urls_without_credentials() {
    let s3 = TestS3::start().await;
    let settings = s3.settings();
    assert_no_credentials(&format!("{settings:?}"));
    let store = s3.store();
    assert_eq!(
        store.describe(),
        format!("R2 bucket `{}` at {}", s3.bucket(), s3.endpoint())
    );
    assert_no_credentials(&store.describe());
    assert_no_credentials(&format!("{store:?}"));
    assert!(!store.describe().contains(s3.access_key()));
    assert_eq!(store.public_url(KEY), format!("{PUBLIC_URL}/{KEY}"));
    assert_eq!(
        store.public_url("dev/portraits/a b/Zoë.png"),
        format!("{PUBLIC_URL}/dev/portraits/a%20b/Zo%C3%AB.png")
    );
}

#[tokio::test]
async fn objects_reach_the_s3_servers_disk_with_the_exact_bytes() {
    let s3 = TestS3::start().await;
    let body = png_like(1234, 9);
    s3.store()
        .put(KEY, body.clone(), "image/png", &[])
        .await
        .unwrap();
    assert_eq!(std::fs::read(s3.object_file(KEY)).unwrap(), body);
}

#[tokio::test]
async fn incomplete_or_malformed_r2_settings_are_refused_before_any_request() {
    let s3 = TestS3::start().await;
    for (settings, names) in [
        (
            R2Settings {
                endpoint: "not a url".into(),
                ..s3.settings()
            },
            "R2_ENDPOINT",
        ),
        (
            R2Settings {
                bucket: " ".into(),
                ..s3.settings()
            },
            "R2_BUCKET_NAME",
        ),
        (
            R2Settings {
                secret_access_key: portrait_bot::secret::Secret::new(""),
                ..s3.settings()
            },
            "R2_SECRET_ACCESS_KEY",
        ),
    ] {
        let err = Store::r2(settings).unwrap_err();
        assert!(err.to_string().contains(names), "{err}");
    }
}

// ----- Local only: the folder itself -----

/// Every file under `root`, relative, with `/` separators, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(root).unwrap().to_owned();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn local_keys_that_could_escape_the_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    for key in [
        "../escaped.png",
        "dev/../../escaped.png",
        "/tmp/escaped.png",
        "dev\\..\\escaped.png",
        ".portrait-meta/dev/x.png.json",
        "dev/.tmp-1234",
    ] {
        let err = store
            .put(key, png_like(10, 0), "image/png", &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "other", "{key}: {err:?}");
        assert!(err.to_string().contains("not allowed"), "{key}: {err}");
        assert!(store.get(key).await.is_err(), "{key}");
        assert!(store.head(key).await.is_err(), "{key}");
        assert!(store.delete(key).await.is_err(), "{key}");
    }
    assert!(store.check_key("../escaped.png").is_err());
    assert!(store.check_key(KEY).is_ok());
    assert!(store.list_prefix("../").await.is_err());
    assert!(store.delete_prefix("/").await.is_err());
    assert!(store.copy(KEY, "../escaped.png").await.is_err());
    // Nothing was written anywhere: not in the store, not beside it.
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_local_put_leaves_only_the_object_and_its_metadata_and_never_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let root = dir.path().join("objects");
    let body = png_like(3 * 1024 * 1024, 5);
    // Concurrent writes of the same key each go through their own temp file.
    let puts = (0..8).map(|_| store.put(KEY, body.clone(), "image/png", &[("uploader-id", "1")]));
    for result in futures::future::join_all(puts).await {
        result.unwrap();
    }
    assert_eq!(std::fs::read(root.join(KEY)).unwrap(), body);
    assert_eq!(
        files_under(&root),
        [format!(".portrait-meta/{KEY}.json"), KEY.to_owned()]
    );

    // A write that cannot complete (a folder stands where the file would go) leaves no temp
    // file and no object behind.
    let blocked = "dev/portraits/2026";
    let err = store
        .put(blocked, png_like(10, 0), "image/png", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "other", "{err:?}");
    assert_eq!(store.head(blocked).await.unwrap(), None);
    assert_eq!(
        files_under(&root),
        [format!(".portrait-meta/{KEY}.json"), KEY.to_owned()],
        "no temp file and no orphan metadata"
    );
    assert_eq!(store.get(KEY).await.unwrap().bytes, body);
    let listed = store.list_prefix("").await.unwrap();
    assert_eq!(listed.len(), 1, "sidecars are never listed: {listed:?}");
}

#[tokio::test]
async fn the_local_store_creates_its_folder_and_describes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/objects");
    let store = Store::local(root.clone(), format!("{LOCAL_PUBLIC_URL}/")).unwrap();
    assert!(root.is_dir());
    let canonical = root.canonicalize().unwrap();
    assert_eq!(
        store.describe(),
        format!("local folder {}", canonical.display())
    );
    store.ping().await.unwrap();
    assert_eq!(store.public_url(KEY), format!("{LOCAL_PUBLIC_URL}/{KEY}"));
}

#[tokio::test]
async fn a_local_folder_removed_under_the_running_bot_fails_ping_naming_local_storage_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let store = Store::local(root.clone(), LOCAL_PUBLIC_URL.to_owned()).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    let err = store.ping().await.unwrap_err();
    assert_eq!(err.kind(), "bucket_missing", "{err:?}");
    assert!(err.to_string().contains("LOCAL_STORAGE_DIR"), "{err}");
}

#[tokio::test]
async fn a_local_object_written_without_metadata_still_reads_and_lists() {
    // e.g. a file an admin dropped into the folder by hand.
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let path = dir.path().join("objects").join(KEY);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"hand made").unwrap();
    let got = store.get(KEY).await.unwrap();
    assert_eq!(&got.bytes[..], b"hand made");
    assert_eq!(got.info.content_type, None);
    assert!(got.info.metadata.is_empty());
    assert_eq!(store.list_prefix("dev/").await.unwrap().len(), 1);
    store.copy(KEY, "dev/copy.png").await.unwrap();
    assert_eq!(
        &store.get("dev/copy.png").await.unwrap().bytes[..],
        b"hand made"
    );
}

#[test]
fn ascii_safe_is_what_callers_see_in_stored_metadata() {
    assert_eq!(ascii_safe("Zoë the Bold"), "Zo%C3%AB the Bold");
}
