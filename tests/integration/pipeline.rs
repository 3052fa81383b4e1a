//! The shared ingest pipeline end to end: simulated CDN → checks → s3s-fs → database.

use bytes::Bytes;
use portrait_bot::moderation::history::Actor;
use portrait_bot::portrait::{IngestError, IngestRequest, PortraitOutcome, PortraitSource, Upload};
use portrait_bot::storage::CACHE_CONTROL;

use crate::on_both_databases;
use crate::support::app::{TestApp, DEFAULT_PORTRAIT_URL, MAX_UPLOAD_BYTES, PLAYER};
use crate::support::r2::R2Access;
use testkit::images::{self, contains};

fn request(character: &portrait_bot::db::Character) -> IngestRequest<'_> {
    IngestRequest {
        character,
        uploader_id: PLAYER,
        source: PortraitSource::SlashCommand,
        legacy_url: None,
        migration_run: None,
    }
}

fn url(url: String) -> Upload {
    Upload::Url {
        url,
        declared_size: None,
    }
}

/// `{env}/portraits/{yyyy}/{mm}/{16 hex}_{slug}.{ext}` for this month.
fn assert_key_shape(key: &str, slug: &str, ext: &str) {
    let now = chrono::Utc::now();
    let prefix = format!("dev/portraits/{}/", now.format("%Y/%m"));
    let rest = key
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{key} should start with {prefix}"));
    let (hash, name) = rest.split_once('_').expect("hash_slug");
    assert_eq!(hash.len(), 16, "{key}");
    assert!(
        hash.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{key}"
    );
    assert_eq!(name, format!("{slug}.{ext}"), "{key}");
}

on_both_databases! {
    async fn an_uploaded_phone_photo_is_stored_without_gps_with_its_sniffed_type_and_headers(t: TestDb) {
        let t = TestApp::start(t).await;
        let zoe = t.create_character("Zoë the Bold").await;
        let original = images::jpeg_with_gps(320, 240);
        // Named .png and declared as a download: the stored type comes from the bytes.
        let link = t.cdn.host("/attachments/1/2/IMG_0001.png", original.clone(), "application/octet-stream");

        let stored = t.app.portraits.ingest(url(link), &request(&zoe)).await.expect("stored");

        let key = &stored.record.storage_key;
        assert_key_shape(key, "zoe-the-bold", "jpg");
        let object = t.s3.store().get(key).await.expect("the object exists");
        let bytes = object.bytes.as_ref();
        assert!(!contains(bytes, images::PLANTED_MAKE.as_bytes()), "camera make removed");
        assert!(!contains(bytes, &images::PLANTED_LATITUDE), "GPS removed");
        assert!(!contains(bytes, images::PLANTED_COMMENT.as_bytes()), "comment removed");
        assert_eq!(images::jpeg_orientation(bytes), Some(6), "orientation kept");
        assert_eq!(images::jpeg_scan(bytes), images::jpeg_scan(&original), "image data unchanged");
        assert_eq!(object.info.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(object.info.cache_control.as_deref(), Some(CACHE_CONTROL));
        assert_eq!(object.info.metadata.get("uploader-id").map(String::as_str), Some("800000000000000002"));
        assert_eq!(object.info.metadata.get("character-name").map(String::as_str), Some("Zo%C3%AB the Bold"));
        assert_eq!(object.info.metadata.get("source").map(String::as_str), Some("slash_command"));

        let public_url = t.s3.store().public_url(key);
        assert_eq!(stored.record.public_url, public_url);
        assert_eq!(stored.record.size_bytes, bytes.len() as u64);
        assert_eq!((stored.record.width, stored.record.height), (320, 240));
        assert_eq!(stored.record.content_type, "image/jpeg");
        assert_eq!(stored.record.sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)));
        assert!(!stored.removed_metadata.is_empty());
        let row = t.reload(&zoe).await;
        assert_eq!(row.portrait_url.as_deref(), Some(public_url.as_str()));
        assert_eq!(row.portrait_id, Some(stored.record.id));
        assert_eq!(t.metric("r2_uploads_total"), 1.0);
    }

    async fn the_same_bytes_uploaded_twice_give_one_key_and_one_object(t: TestDb) {
        let t = TestApp::start(t).await;
        let aria = t.create_character("Aria").await;
        let png = Bytes::from(images::png(64, 48));
        let first = t.app.portraits.ingest(Upload::Bytes(png.clone()), &request(&aria)).await.unwrap();
        let aria = t.reload(&aria).await;
        let second = t.app.portraits.ingest(Upload::Bytes(png), &request(&aria)).await.unwrap();

        assert_eq!(first.record.storage_key, second.record.storage_key);
        assert_eq!(first.record.id, second.record.id);
        assert!(!first.already_stored);
        assert!(second.already_stored, "the second upload writes nothing");
        assert_eq!(t.bucket_keys().await, std::slice::from_ref(&first.record.storage_key));
        assert_eq!(t.metric("r2_uploads_total"), 1.0);
        assert_eq!(t.app.db.stats().await.unwrap().portraits, 1);
    }

    async fn an_svg_named_png_and_declared_png_is_refused_and_changes_nothing(t: TestDb) {
        let t = TestApp::start(t).await;
        let aria = t.create_character("Aria").await;
        let before = t.app.portraits.ingest(Upload::Bytes(images::png(32, 32).into()), &request(&aria)).await.unwrap();
        let aria = t.reload(&aria).await;
        let keys_before = t.bucket_keys().await;

        let link = t.cdn.host("/attachments/1/2/portrait.png", images::SVG, "image/png");
        let err = t.app.portraits.ingest_or_default(url(link), &request(&aria)).await.expect_err("refused");

        assert!(err.is_players_to_fix());
        assert!(err.player_message().contains("SVG"), "{}", err.player_message());
        assert_eq!(t.bucket_keys().await, keys_before, "nothing stored");
        let after = t.reload(&aria).await;
        assert_eq!(after.portrait_id, Some(before.record.id), "the existing portrait stays");
        assert_eq!(after.portrait_url, aria.portrait_url);
        assert!(t.metric(r#"portrait_validation_rejections_total{reason="unsupported_format"}"#) == 1.0
            || t.metric(r#"portrait_validation_rejections_total{reason="not_an_image"}"#) == 1.0,
            "{}", t.app.metrics.render());
    }

    async fn a_file_over_the_limit_is_refused_before_download_when_its_size_is_declared(t: TestDb) {
        let t = TestApp::start(t).await;
        let aria = t.create_character("Aria").await;
        let big = vec![0u8; MAX_UPLOAD_BYTES as usize + 1];
        let link = t.cdn.host("/attachments/1/2/huge.png", big.clone(), "image/png");

        let declared = Upload::Url { url: link.clone(), declared_size: Some(big.len() as u64) };
        let err = t.app.portraits.ingest(declared, &request(&aria)).await.expect_err("too large");
        assert!(err.player_message().contains("2.0 MiB"), "{}", err.player_message());
        assert!(t.cdn.requests().is_empty(), "refused without downloading");

        let undeclared = t.app.portraits.ingest(url(link), &request(&aria)).await.expect_err("too large");
        assert!(matches!(undeclared, IngestError::Rejected(_)), "{undeclared:?}");
        assert!(t.bucket_keys().await.is_empty());
    }

    async fn an_expired_link_asks_the_player_to_upload_again_and_stores_no_error_page(t: TestDb) {
        let t = TestApp::start(t).await;
        let aria = t.create_character("Aria").await;
        let link = t.cdn.expire("/attachments/1/2/old.png");

        let err = t.app.portraits.ingest_or_default(url(link), &request(&aria)).await.expect_err("gone");

        assert!(err.is_players_to_fix());
        assert!(err.player_message().contains("upload the image again"), "{}", err.player_message());
        assert!(t.bucket_keys().await.is_empty());
        assert_eq!(t.reload(&aria).await.portrait_url, None);
    }

    async fn with_storage_down_the_player_keeps_their_portrait_and_is_told_why(t: TestDb) {
        let mut t = TestApp::start(t).await;
        let aria = t.create_character("Aria").await;
        let brom = t.create_character("Brom").await;
        let first = t.app.portraits.ingest(Upload::Bytes(images::png(40, 40).into()), &request(&aria)).await.unwrap();
        let aria = t.reload(&aria).await;

        t.s3.stop().await;
        let outcome = t.app.portraits
            .ingest_or_default(Upload::Bytes(images::png(41, 41).into()), &request(&aria))
            .await
            .expect("our fault is not the player's error");
        let PortraitOutcome::Fallback { shown_url, kept_existing, reason, .. } = outcome else {
            panic!("expected a fallback, got {outcome:?}");
        };
        assert_eq!(shown_url, first.record.public_url, "the existing portrait stays");
        assert!(kept_existing);
        assert!(reason.contains("storage"), "{reason}");
        assert_eq!(t.reload(&aria).await.portrait_id, Some(first.record.id));

        let outcome = t.app.portraits
            .ingest_or_default(Upload::Bytes(images::png(42, 42).into()), &request(&brom))
            .await
            .unwrap();
        let PortraitOutcome::Fallback { shown_url, kept_existing, .. } = outcome else {
            panic!("expected a fallback, got {outcome:?}");
        };
        assert_eq!(shown_url, DEFAULT_PORTRAIT_URL, "no portrait yet: the default");
        assert!(!kept_existing);
        assert_eq!(t.reload(&brom).await.portrait_url, None, "the character is kept, on the default");

        assert_eq!(t.metric(r#"portrait_fallbacks_total{error_type="transient"}"#), 2.0, "{}", t.app.metrics.render());
        assert_eq!(t.metric(r#"r2_upload_errors_total{error_type="transient"}"#), 2.0);
        assert_eq!(t.app.db.stats().await.unwrap().fallbacks, 2);
    }

    async fn a_replaced_or_reset_portrait_object_is_deleted_only_when_nothing_shows_it(t: TestDb) {
        let t = TestApp::start(t).await;
        let aria = t.create_character("Twin").await;
        let png = Bytes::from(images::png(50, 50));
        let shared = t.app.portraits.ingest(Upload::Bytes(png.clone()), &request(&aria)).await.unwrap();
        // A second character of the same name in another guild shares the object.
        let other = t.app.db.create_character(&crate::support::app::new_character(7, PLAYER, "Twin"), None).await.unwrap();
        t.app.portraits.ingest(Upload::Bytes(png), &request(&other)).await.unwrap();

        let aria = t.reload(&aria).await;
        let replacement = t.app.portraits.ingest(Upload::Bytes(images::png(51, 51).into()), &request(&aria)).await.unwrap();
        let key = shared.record.storage_key.clone();
        assert!(t.s3.store().exists(&key).await.unwrap(), "still shown by the other character");

        t.app.portraits.reset_portrait(other.id, Actor::Player(other.owner_id)).await.unwrap();
        assert!(!t.s3.store().exists(&key).await.unwrap(), "deleted once nothing shows it");
        assert_eq!(t.reload(&other).await.portrait_url, None);
        assert_eq!(t.bucket_keys().await, std::slice::from_ref(&replacement.record.storage_key));
    }
}
