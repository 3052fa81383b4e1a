//! Seeded mutations (bit flips and truncations) of valid files of every format, through
//! inspection and sanitizing, as the ingest pipeline runs them: nothing panics, and whatever
//! both accept is stored as the same pixels, frame by frame.

use std::io::Cursor;
use std::time::Instant;

use bytes::Bytes;
use image::codecs::gif::GifDecoder;
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, DynamicImage, ImageFormat as Codec, RgbaImage};

use super::strip_metadata;
use super::tests::{exif_block, private_jpeg, segment, with_segments};
use crate::portrait::formats::png::write_chunk;
use crate::portrait::inspect::tests::{
    animated_gif, animated_webp, apng_file, encoded_jpeg, jpeg_file, lossless_webp, png_file,
    riff_chunk, riff_webp, vp8l_payload, vp8x,
};
use crate::portrait::inspect::{inspect, ImageFormat, InspectLimits};

/// xorshift64*: deterministic, so a failure names a case that can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One mutation of `original`: a few bit flips anywhere, a few in the first bytes (where the
/// headers are), or a cut.
fn mutate(original: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match rng.below(3) {
        0 => {
            for _ in 0..=rng.below(3) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let at = rng.below(bytes.len().min(96));
            bytes[at] ^= 1 << rng.below(8);
        }
        _ => bytes.truncate(rng.below(bytes.len())),
    }
    bytes
}

/// Every frame, as RGBA, decoded by the `image` crate (not the decoders inspection drives).
fn frames(bytes: &[u8], format: ImageFormat) -> Result<Vec<RgbaImage>, String> {
    let collect = |frames: image::Frames<'_>| {
        frames
            .map(|frame| frame.map(|frame| frame.into_buffer()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    };
    let still = |image: image::ImageResult<DynamicImage>| {
        image
            .map(|image| vec![image.into_rgba8()])
            .map_err(|e| e.to_string())
    };
    match format {
        ImageFormat::Png => {
            let decoder = PngDecoder::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
            if decoder.is_apng().map_err(|e| e.to_string())? {
                collect(decoder.apng().map_err(|e| e.to_string())?.into_frames())
            } else {
                still(DynamicImage::from_decoder(decoder))
            }
        }
        ImageFormat::Gif => collect(
            GifDecoder::new(Cursor::new(bytes))
                .map_err(|e| e.to_string())?
                .into_frames(),
        ),
        ImageFormat::Webp => {
            let decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
            if decoder.has_animation() {
                collect(decoder.into_frames())
            } else {
                still(DynamicImage::from_decoder(decoder))
            }
        }
        ImageFormat::Jpeg => still(image::load_from_memory_with_format(bytes, Codec::Jpeg)),
    }
}

fn seeds() -> Vec<(&'static str, ImageFormat, Vec<u8>)> {
    let png_with_metadata = {
        let plain = png_file(16, 12);
        let ihdr_end = 8 + 25;
        [
            &plain[..ihdr_end],
            &write_chunk(*b"eXIf", &exif_block(false, Some(6), true)),
            &write_chunk(*b"tEXt", b"Comment\0planted"),
            &write_chunk(*b"prVt", b"planted"),
            &plain[ihdr_end..],
        ]
        .concat()
    };
    let progressive = encoded_jpeg(32, 24, true, jpeg_encoder::SamplingFactor::R_4_2_0);
    let bitstream = vp8l_payload(&lossless_webp(16, 8, 4));
    let webp_with_metadata = riff_webp(&[
        vp8x(0x10 | 0x08, 16, 8),
        riff_chunk(b"VP8L", &bitstream),
        riff_chunk(b"EXIF", &exif_block(false, Some(3), true)),
    ]);
    let webp_frames: Vec<Vec<u8>> = (0..2)
        .map(|seed| vp8l_payload(&lossless_webp(16, 8, seed)))
        .collect();
    vec![
        ("PNG", ImageFormat::Png, png_file(24, 16)),
        ("PNG with metadata", ImageFormat::Png, png_with_metadata),
        ("APNG", ImageFormat::Png, apng_file(16, 8, 3)),
        ("baseline JPEG", ImageFormat::Jpeg, jpeg_file(24, 16)),
        ("JPEG with metadata", ImageFormat::Jpeg, private_jpeg(false)),
        (
            "progressive JPEG with a comment between scans",
            ImageFormat::Jpeg,
            with_segments(&progressive, &[segment(0xFE, b"planted")]),
        ),
        ("animated GIF", ImageFormat::Gif, animated_gif(3)),
        ("lossless WebP", ImageFormat::Webp, lossless_webp(16, 8, 1)),
        ("WebP with EXIF", ImageFormat::Webp, webp_with_metadata),
        (
            "animated WebP",
            ImageFormat::Webp,
            animated_webp(16, 8, &webp_frames),
        ),
    ]
}

const MUTATIONS_PER_SEED: usize = 800;

#[test]
fn mutated_files_never_panic_and_whatever_is_accepted_is_stored_with_the_same_pixels() {
    let started = Instant::now();
    let limits = InspectLimits::default();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let (mut cases, mut accepted, mut compared, mut refused_by_sanitize) = (0, 0, 0, 0);
    for (name, format, original) in seeds() {
        inspect(&original, &limits)
            .unwrap_or_else(|e| panic!("{name}: the seed is refused: {e:?}"));
        for index in 0..MUTATIONS_PER_SEED {
            let mutated = mutate(&original, &mut rng);
            cases += 1;
            let case = format!("{name}, mutation {index}");
            let Ok(info) = inspect(&mutated, &limits) else {
                continue;
            };
            assert_eq!(info.format, format, "{case}");
            // A container the walker cannot follow is refused by the pipeline as damaged
            // (`IngestError::Sanitize`), like a file the decoders refuse.
            let Ok(sanitized) = strip_metadata(Bytes::from(mutated.clone()), format) else {
                refused_by_sanitize += 1;
                continue;
            };
            accepted += 1;
            let again = inspect(&sanitized.bytes, &limits).unwrap_or_else(|e| {
                panic!(
                    "{case}: the sanitized file is refused: {e:?} (removed: {:?}; {} of {} \
                         bytes kept; first difference at {:?})",
                    sanitized.removed,
                    sanitized.bytes.len(),
                    mutated.len(),
                    mutated
                        .iter()
                        .zip(sanitized.bytes.iter())
                        .position(|(a, b)| a != b),
                )
            });
            assert_eq!(
                (again.width, again.height, again.frames_checked),
                (info.width, info.height, info.frames_checked),
                "{case}"
            );
            // The `image` crate is stricter than the checks in a few places (it may refuse an
            // accepted file); where it reads the upload, it must read the same from the stored
            // file.
            if let Ok(expected) = frames(&mutated, format) {
                compared += 1;
                let got = frames(&sanitized.bytes, format)
                    .unwrap_or_else(|e| panic!("{case}: the sanitized file does not decode: {e}"));
                assert!(got == expected, "{case}: the sanitized frames differ");
            }
        }
    }
    eprintln!(
        "mutation test: {cases} cases, {accepted} accepted and stored, {compared} of them \
         compared frame by frame, {refused_by_sanitize} passed the decoders but not the \
         container walk (refused as damaged), in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(accepted > 0 && compared > 0);
}
