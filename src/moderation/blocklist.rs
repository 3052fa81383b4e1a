//! The per-server block-list: images a server's moderators removed or rejected, remembered by
//! a perceptual hash so the same picture re-encoded, resized, slightly cropped or stripped of
//! its metadata is refused at upload, while different pictures pass.
//!
//! # Hash and threshold
//!
//! [`hash`] is `image_hasher`'s DCT mean hash (pHash): 8×8 = 64 bits of the lowest
//! frequencies of the image's [`Thumbnail`], the ≤ 32×32 grey grid the pipeline's bounded
//! decode check averages from the first frame (so the check costs no second decode). Two
//! images are "the same picture" when their hashes differ in at most [`THRESHOLD`] bits. The
//! threshold comes from a measurement (run
//! `cargo test --lib moderation::blocklist::tests::rates -- --nocapture`): 40 natural-looking
//! 512-px scenes (gradients, shapes, noise), each turned into 10 variants — JPEG quality
//! 60–90, resized 50–200 %, cropped 2–5 % — hashed through the same decode check as an
//! upload, against the 780 pairs of different scenes:
//!
//! | threshold (bits) | variants caught | unrelated pairs blocked |
//! | --- | --- | --- |
//! | 1 | 95.0 % | 0 % |
//! | **2** | **98.2 %** | **0 %** |
//! | 3 | 99.2 % | 0.26 % (2 pairs) |
//! | 4 | 99.8 % | 2.56 % |

use image_hasher::{HashAlg, Hasher, HasherConfig, ImageHash};

use crate::db::{Db, DbError};
use crate::metrics::Metrics;
use crate::portrait::inspect::{self, InspectLimits, Rejection, Thumbnail};

/// Hashes at most this many bits apart are the same picture. Measured (module docs): at 2
/// bits 98.2 % of the variants are caught and none of the 780 unrelated pairs; at 3, 99.2 %
/// and 0.26 % (two pairs). Refusing an innocent player's picture is worse than a re-upload a
/// moderator removes again, so the threshold is the largest with no false positive measured.
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

fn hasher() -> Hasher {
    HasherConfig::new()
        .hash_alg(HashAlg::Mean)
        .hash_size(8, 8)
        .preproc_dct()
        .to_hasher()
}

/// The perceptual hash of an image's thumbnail, as the base64 text stored in the block-list.
/// Cheap (the thumbnail is at most 32×32): fine on the async threads.
pub fn hash(thumbnail: &Thumbnail) -> String {
    hasher().hash_image(&thumbnail.to_image()).to_base64()
}

/// The perceptual hash of an encoded image, through the pipeline's bounded decode check
/// ([`inspect::inspect_with_thumbnail`]), so it is the hash an upload of the same bytes gets.
/// Decodes the whole image: call it off the async threads, behind the decode semaphore.
pub fn perceptual_hash(bytes: &[u8], limits: &InspectLimits) -> Result<String, Rejection> {
    inspect::inspect_with_thumbnail(bytes, limits).map(|(_, thumbnail)| hash(&thumbnail))
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
/// the thumbnail the pipeline's decode check made of the bytes about to be stored, before
/// storing them.
///
/// A server with an empty block-list costs one indexed query. Only a database fault lets the
/// upload through (with a warning): the check cannot run, and the database write that
/// follows would fail anyway if the fault lasts. An image that decoded always has a thumbnail
/// and so is always checked.
pub async fn check(
    db: &Db,
    metrics: &Metrics,
    guild_id: u64,
    thumbnail: &Thumbnail,
) -> Result<(), Blocked> {
    match find_match(db, guild_id, thumbnail).await {
        Ok(None) => Ok(()),
        Ok(Some(blocked)) => {
            metrics
                .moderation_actions_total
                .with_label_values(&["blocked_upload"])
                .inc();
            Err(blocked)
        }
        Err(err) => {
            tracing::warn!(guild_id, error = %err, "could not read the block-list; letting the upload through");
            Ok(())
        }
    }
}

async fn find_match(
    db: &Db,
    guild_id: u64,
    thumbnail: &Thumbnail,
) -> Result<Option<Blocked>, DbError> {
    if !db.has_blocked_images(guild_id).await? {
        return Ok(None);
    }
    let hash = hash(thumbnail);
    let entries = db.blocked_images(guild_id).await?;
    Ok(
        closest(&hash, entries.iter().map(|e| (e.id, e.phash.as_str())))
            .map(|(entry_id, distance)| Blocked { entry_id, distance }),
    )
}

#[cfg(test)]
mod tests;
