//! The block-list's hash against the changes an upload goes through on its way back (re-
//! encoding, resizing, cropping) and against unrelated pictures; `rates` prints the measured
//! true- and false-positive rates per threshold.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

use super::*;

/// Through the pipeline's decode check, as an upload is hashed.
fn perceptual_hash(bytes: &[u8]) -> Result<String, Rejection> {
    super::perceptual_hash(bytes, &InspectLimits::default())
}

const SCENES: u64 = 40;
const SIDE: u32 = 512;

/// A small deterministic generator (xorshift64*), so every run measures the same images.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }

    fn colour(&mut self) -> [u8; 3] {
        [
            self.below(256) as u8,
            self.below(256) as u8,
            self.below(256) as u8,
        ]
    }
}

/// A natural-looking picture: a two-colour gradient at a random angle, 4–11 filled circles and
/// rectangles, and grain.
fn scene(seed: u64) -> RgbImage {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (from, to) = (rng.colour(), rng.colour());
    let angle = f64::from(rng.below(360)).to_radians();
    let (dx, dy) = (angle.cos(), angle.sin());
    let mut image = RgbImage::from_fn(SIDE, SIDE, |x, y| {
        let t =
            ((f64::from(x) * dx + f64::from(y) * dy) / f64::from(SIDE) / 1.5 + 0.5).clamp(0.0, 1.0);
        let mix = |a: u8, b: u8| (f64::from(a) * (1.0 - t) + f64::from(b) * t) as u8;
        Rgb([
            mix(from[0], to[0]),
            mix(from[1], to[1]),
            mix(from[2], to[2]),
        ])
    });
    for _ in 0..4 + rng.below(8) {
        let colour = Rgb(rng.colour());
        let (cx, cy) = (rng.below(SIDE) as i64, rng.below(SIDE) as i64);
        let size = 30 + rng.below(160) as i64;
        let circle = rng.below(2) == 0;
        for y in (cy - size).max(0)..(cy + size).min(SIDE as i64) {
            for x in (cx - size).max(0)..(cx + size).min(SIDE as i64) {
                let inside = if circle {
                    (x - cx).pow(2) + (y - cy).pow(2) <= size * size
                } else {
                    (x - cx).abs() <= size && (y - cy).abs() <= size / 2
                };
                if inside {
                    image.put_pixel(x as u32, y as u32, colour);
                }
            }
        }
    }
    for pixel in image.pixels_mut() {
        let grain = rng.below(25) as i16 - 12;
        for channel in pixel.0.iter_mut() {
            *channel = (i16::from(*channel) + grain).clamp(0, 255) as u8;
        }
    }
    image
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn jpeg(image: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .expect("encode JPEG");
    out
}

fn resized(image: &DynamicImage, percent: u32) -> DynamicImage {
    let side = image.width() * percent / 100;
    image.resize_exact(side, side, FilterType::Triangle)
}

fn cropped(image: &DynamicImage, percent: u32) -> DynamicImage {
    let cut = image.width() * percent / 100;
    image.crop_imm(cut / 2, cut / 2, image.width() - cut, image.height() - cut)
}

/// What a blocked picture may come back as, each a file a player could upload.
fn variants(original: &DynamicImage) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("jpeg q60", jpeg(original, 60)),
        ("jpeg q75", jpeg(original, 75)),
        ("jpeg q90", jpeg(original, 90)),
        (
            "resize 50%",
            encode(&resized(original, 50), ImageFormat::Png),
        ),
        (
            "resize 75%",
            encode(&resized(original, 75), ImageFormat::Png),
        ),
        (
            "resize 150%",
            encode(&resized(original, 150), ImageFormat::Png),
        ),
        ("resize 200%", jpeg(&resized(original, 200), 85)),
        ("crop 2%", encode(&cropped(original, 2), ImageFormat::Png)),
        ("crop 5%", jpeg(&cropped(original, 5), 80)),
        ("resize 50% + jpeg q70", jpeg(&resized(original, 50), 70)),
    ]
}

struct Measurement {
    /// Distance between each original and each of its variants.
    same: Vec<u32>,
    /// Distance between each pair of different originals.
    different: Vec<u32>,
}

fn measure() -> Measurement {
    let originals: Vec<(DynamicImage, String)> = (0..SCENES)
        .map(|seed| {
            let image = DynamicImage::ImageRgb8(scene(seed));
            let hash = perceptual_hash(&encode(&image, ImageFormat::Png)).expect("hash");
            (image, hash)
        })
        .collect();
    let mut same = Vec::new();
    for (image, hash) in &originals {
        for (_, bytes) in variants(image) {
            let variant = perceptual_hash(&bytes).expect("hash");
            same.push(distance(hash, &variant).expect("same hash size"));
        }
    }
    let mut different = Vec::new();
    for (i, (_, a)) in originals.iter().enumerate() {
        for (_, b) in &originals[i + 1..] {
            different.push(distance(a, b).expect("same hash size"));
        }
    }
    Measurement { same, different }
}

fn rate(distances: &[u32], threshold: u32) -> f64 {
    distances.iter().filter(|d| **d <= threshold).count() as f64 / distances.len() as f64
}

#[test]
fn rates() {
    let m = measure();
    println!(
        "block-list hash: {} variant pairs, {} unrelated pairs \
         (cargo test --lib moderation::blocklist::tests::rates -- --nocapture)",
        m.same.len(),
        m.different.len()
    );
    println!("| threshold (bits) | true positives | false positives |");
    println!("| --- | --- | --- |");
    for threshold in 0..=20 {
        println!(
            "| {threshold} | {:.1} % | {:.2} % |",
            rate(&m.same, threshold) * 100.0,
            rate(&m.different, threshold) * 100.0
        );
    }
    let tp = rate(&m.same, THRESHOLD);
    let fp = rate(&m.different, THRESHOLD);
    println!("chosen threshold {THRESHOLD}: true positives {tp:.3}, false positives {fp:.4}");
    assert!(
        tp >= 0.95,
        "the chosen threshold catches {tp:.3} of the variants"
    );
    assert!(
        fp <= 0.005,
        "the chosen threshold blocks {fp:.4} of unrelated pairs"
    );
}

#[test]
fn an_identical_image_is_at_distance_zero_and_hashes_round_trip() {
    let bytes = encode(&DynamicImage::ImageRgb8(scene(1)), ImageFormat::Png);
    let hash = perceptual_hash(&bytes).unwrap();
    assert_eq!(distance(&hash, &hash), Some(0));
    assert_eq!(distance(&hash, "not base64 at all!"), None);
}

#[test]
fn the_closest_entry_within_the_threshold_is_the_match() {
    let original = DynamicImage::ImageRgb8(scene(3));
    let blocked = perceptual_hash(&encode(&original, ImageFormat::Png)).unwrap();
    let other = perceptual_hash(&encode(
        &DynamicImage::ImageRgb8(scene(4)),
        ImageFormat::Png,
    ))
    .unwrap();
    let upload = perceptual_hash(&jpeg(&resized(&original, 75), 70)).unwrap();
    assert_eq!(
        closest(&upload, [(1, other.as_str()), (2, blocked.as_str())]).map(|(id, _)| id),
        Some(2)
    );
    assert_eq!(closest(&upload, [(1, other.as_str())]), None);
}

#[test]
fn the_refusal_says_the_moderators_removed_the_image() {
    let blocked = Blocked {
        entry_id: 1,
        distance: 0,
    };
    assert_eq!(
        blocked.to_string(),
        "This image was removed by this server's moderators."
    );
}

/// The block-list's memory on the largest photo the defaults admit (40 MP): the hash now comes
/// from the thumbnail the pipeline's bounded decode check makes, where the check used to
/// decode the whole image a second time to full colour, outside the decode permit.
#[test]
fn checking_a_large_upload_needs_no_memory_beyond_the_decode_check() {
    use testkit::allocation_meter::thread_peak_during;
    const MIB: f64 = 1024.0 * 1024.0;

    // The file weighs more than the default 10 MiB upload cap; the pixels are what matter here.
    let limits = InspectLimits {
        max_bytes: 32 * 1024 * 1024,
        ..InspectLimits::default()
    };
    let photo = testkit::images::photo_jpeg(8000, 5000, 3, 90);
    let info = inspect::inspect_header(&photo, &limits).expect("within the limits");
    let (thumbnail, decode_peak) =
        thread_peak_during(|| inspect::verify_decodes(&photo, &info, &limits));
    let thumbnail = thumbnail.expect("decodes");
    let (now, hash_peak) = thread_peak_during(|| hash(&thumbnail));
    // The former check, for comparison: a full decode, then the hash of the whole image.
    let (before, before_peak) = thread_peak_during(|| {
        image::load_from_memory(&photo).map(|image| hasher().hash_image(&image).to_base64())
    });
    let before = before.expect("decodes");
    println!(
        "40 MP JPEG ({:.1} MiB): decode check {:.1} MiB (estimate {:.1} MiB); block-list hash \
         now {:.1} KiB from the {}×{} thumbnail; before, a second decode of {:.1} MiB \
         (cargo test --lib moderation::blocklist::tests::checking_a_large -- --nocapture)",
        photo.len() as f64 / MIB,
        decode_peak as f64 / MIB,
        info.decode_memory as f64 / MIB,
        hash_peak as f64 / 1024.0,
        thumbnail.width(),
        thumbnail.height(),
        before_peak as f64 / MIB,
    );
    assert!(
        decode_peak <= info.decode_memory,
        "the thumbnail fits the estimate"
    );
    assert!(
        hash_peak < 256 * 1024,
        "hashing the thumbnail took {hash_peak} bytes"
    );
    assert!(
        distance(&now, &before).is_some_and(|d| d <= THRESHOLD),
        "the thumbnail's hash is the picture's"
    );
}
