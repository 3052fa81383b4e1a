//! The per-server block-list: images a server's moderators removed or rejected, remembered by
//! a perceptual hash so the same picture re-encoded, resized, slightly cropped or stripped of
//! its metadata is refused at upload, while different pictures pass.
//!
//! # Hash and threshold
//!
//! [`perceptual_hash`] is `image_hasher`'s DCT mean hash (pHash): 8×8 = 64 bits of the
//! image's lowest frequencies. Two images are "the same picture" when their hashes differ in
//! at most [`THRESHOLD`] bits. The threshold comes from a measurement (run
//! `cargo test --lib moderation::blocklist::tests::rates -- --nocapture`): 40 natural-looking
//! 512-px scenes (gradients, shapes, noise), each turned into variants — JPEG quality 60–90,
//! resized 50–200 %, cropped 2–5 % — against every pair of the scenes themselves; see the
//! README's "Moderation" section for the table.

use bytes::Bytes;
use image_hasher::{HashAlg, Hasher, HasherConfig, ImageHash};

use crate::db::{Db, DbError};
use crate::metrics::Metrics;

/// Hashes at most this many bits apart are the same picture. Measured (module docs): at 2
/// bits 97.0 % of the variants are caught and none of the 780 unrelated pairs; at 3, 98.0 %
/// and 0.13 % (one pair); at 4, 99.5 % and 0.64 %. Refusing an innocent player's picture is
/// worse than a re-upload a moderator removes again, so the threshold is the largest with no
/// false positive measured.
pub const THRESHOLD: u32 = 2;

/// An upload refused because its picture is on the server's block-list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("This image was removed by this server's moderators.")]
pub struct Blocked {
    /// The block-list entry it matched.
    pub entry_id: i64,
    /// How many bits the hashes differ in.
    pub distance: u32,
}

/// The image could not be hashed (it does not decode).
#[derive(Debug, thiserror::Error)]
#[error("could not read the image to compute its perceptual hash: {0}")]
pub struct HashError(#[from] image::ImageError);

fn hasher() -> Hasher {
    HasherConfig::new()
        .hash_alg(HashAlg::Mean)
        .hash_size(8, 8)
        .preproc_dct()
        .to_hasher()
}

/// The perceptual hash of an encoded image, as the base64 text stored in the block-list.
/// Decodes the whole image: call it off the async threads.
pub fn perceptual_hash(bytes: &[u8]) -> Result<String, HashError> {
    let image = image::load_from_memory(bytes)?;
    Ok(hasher().hash_image(&image).to_base64())
}

/// How many bits two stored hashes differ in; `None` when either is not a hash of ours.
pub fn distance(a: &str, b: &str) -> Option<u32> {
    let a = ImageHash::<Box<[u8]>>::from_base64(a).ok()?;
    let b = ImageHash::<Box<[u8]>>::from_base64(b).ok()?;
    (a.as_bytes().len() == b.as_bytes().len()).then(|| a.dist(&b))
}

/// The closest block-list entry within [`THRESHOLD`] of `hash`, as `(entry id, distance)`.
pub fn closest<'a>(
    hash: &str,
    entries: impl IntoIterator<Item = (i64, &'a str)>,
) -> Option<(i64, u32)> {
    entries
        .into_iter()
        .filter_map(|(id, blocked)| Some((id, distance(hash, blocked)?)))
        .filter(|(_, distance)| *distance <= THRESHOLD)
        .min_by_key(|(_, distance)| *distance)
}

/// Refuses an upload whose picture a server's moderators removed or rejected. Call it with
/// the bytes about to be stored, before storing them.
///
/// A server with an empty block-list costs one indexed query and no decoding. When the check
/// itself cannot run (the database is unreachable, the hash cannot be computed), the upload is
/// let through with a warning: the database write that follows would fail in the first case,
/// and the image already passed the pipeline's decode check in the second.
pub async fn check(
    db: &Db,
    metrics: &Metrics,
    guild_id: u64,
    image_bytes: &Bytes,
) -> Result<(), Blocked> {
    match find_match(db, guild_id, image_bytes).await {
        Ok(None) => Ok(()),
        Ok(Some(blocked)) => {
            metrics
                .moderation_actions_total
                .with_label_values(&["blocked_upload"])
                .inc();
            Err(blocked)
        }
        Err(err) => {
            tracing::warn!(guild_id, error = %err, "could not check the block-list; letting the upload through");
            Ok(())
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

async fn find_match(
    db: &Db,
    guild_id: u64,
    image_bytes: &Bytes,
) -> Result<Option<Blocked>, CheckError> {
    if !db.has_blocked_images(guild_id).await? {
        return Ok(None);
    }
    let hash = hash_off_thread(image_bytes.clone()).await?;
    let entries = db.blocked_images(guild_id).await?;
    Ok(
        closest(&hash, entries.iter().map(|e| (e.id, e.phash.as_str())))
            .map(|(entry_id, distance)| Blocked { entry_id, distance }),
    )
}

/// [`perceptual_hash`] on the blocking pool.
pub async fn hash_off_thread(bytes: Bytes) -> Result<String, HashError> {
    match tokio::task::spawn_blocking(move || perceptual_hash(&bytes)).await {
        Ok(result) => result,
        Err(err) => Err(HashError(image::ImageError::IoError(
            std::io::Error::other(err.to_string()),
        ))),
    }
}

#[cfg(test)]
mod tests;
