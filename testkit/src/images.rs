//! Image fixtures made in code: real encoders for the pixels, hand-built metadata segments
//! for what phones and cameras add, photo-like JPEGs and incompressible PNGs for the
//! benchmarks (distinct per seed: keys are content-addressed, so identical images would be one
//! object), and byte searches to check what a stored file holds.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, ImageFormat, Rgb, RgbImage};

/// A colourful gradient, so different sizes give different bytes.
pub fn rgb(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 7 % 256) as u8,
            (y * 13 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(rgb(width, height), ImageFormat::Png)
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(rgb(width, height), ImageFormat::Jpeg)
}

/// The same picture as [`jpeg`], stored the way many web exports are: progressive, 4:2:0.
pub fn progressive_jpeg(width: u16, height: u16) -> Vec<u8> {
    encode_progressive(&rgb(u32::from(width), u32::from(height)), 90)
}

/// [`photo`] as a baseline JPEG.
pub fn photo_jpeg(width: u32, height: u32, seed: u32, quality: u8) -> Vec<u8> {
    let image = photo(width, height, seed);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(image.as_raw(), width, height, ExtendedColorType::Rgb8)
        .expect("encode JPEG");
    out
}

/// [`photo`] (seed 7) encoded progressive with 4:2:0 chroma, as web exports often are.
pub fn progressive_photo_jpeg(width: u32, height: u32, quality: u8) -> Vec<u8> {
    encode_progressive(&photo(width, height, 7), quality)
}

/// A smooth photo-like gradient with fine grain, so JPEG sizes resemble real photos; `seed`
/// makes each one a different image.
fn photo(width: u32, height: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let grain = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ seed) % 24;
        Rgb([
            ((x * 255 / width) as u8).saturating_add(grain as u8),
            ((y * 255 / height) as u8).saturating_add(grain as u8 / 2),
            (((x + y + seed) % 256) as u8).saturating_add(grain as u8),
        ])
    })
}

/// RGB noise as a PNG (fast compression, no filter): its size is about `width × height × 3`
/// whatever the encoder does; `seed` makes each one different.
pub fn noise_png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let pixels: Vec<u8> = (0..width as usize * height as usize * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::NoFilter)
        .write_image(&pixels, width, height, ExtendedColorType::Rgb8)
        .expect("encode PNG");
    out
}

/// A progressive 4:2:0 JPEG of `image` (the `image` crate's encoder writes baseline only).
fn encode_progressive(image: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_progressive(true);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    encoder
        .encode(
            image.as_raw(),
            u16::try_from(image.width()).expect("width fits a JPEG"),
            u16::try_from(image.height()).expect("height fits a JPEG"),
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("encode progressive JPEG");
    out
}

fn encode(image: RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode fixture");
    out.into_inner()
}

/// The camera make planted in [`jpeg_with_gps`]'s EXIF.
pub const PLANTED_MAKE: &str = "PrivacyLeakCam";
/// Latitude degrees planted as a RATIONAL: 52/1.
pub const PLANTED_LATITUDE: [u8; 8] = [0, 0, 0, 52, 0, 0, 0, 1];
/// A comment planted as a COM segment.
pub const PLANTED_COMMENT: &str = "shot at 221B Baker Street";

/// A JPEG as a phone writes it: EXIF with camera make, Orientation 6 and a GPS position,
/// plus a comment. Big-endian TIFF, like many cameras.
pub fn jpeg_with_gps(width: u32, height: u32) -> Vec<u8> {
    let plain = jpeg(width, height);
    assert_eq!(&plain[..2], &[0xFF, 0xD8]);

    let make = format!("{PLANTED_MAKE}\0");
    // TIFF header (8) + IFD0: count (2) + 3 entries (36) + next (4) = 50
    let ifd0_end = 8 + 2 + 3 * 12 + 4;
    let make_offset = ifd0_end as u32;
    let gps_ifd_offset = (ifd0_end + make.len()) as u32;
    // GPS IFD: count (2) + 2 entries (24) + next (4) = 30
    let latitude_offset = gps_ifd_offset + 30;

    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
    tiff.extend_from_slice(&3u16.to_be_bytes());
    entry(&mut tiff, 0x010F, 2, make.len() as u32, make_offset); // Make, ASCII
    entry_short(&mut tiff, 0x0112, 6); // Orientation: rotate 90° CW
    entry(&mut tiff, 0x8825, 4, 1, gps_ifd_offset); // GPSInfo IFD pointer
    tiff.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend_from_slice(make.as_bytes());
    tiff.extend_from_slice(&2u16.to_be_bytes());
    entry(&mut tiff, 0x0001, 2, 2, u32::from_be_bytes(*b"N\0\0\0")); // GPSLatitudeRef "N"
    entry(&mut tiff, 0x0002, 5, 3, latitude_offset); // GPSLatitude, 3 RATIONALs
    tiff.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend_from_slice(&PLANTED_LATITUDE);
    tiff.extend_from_slice(&[0, 0, 0, 30, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);

    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = vec![0xFF, 0xD8];
    segment(&mut out, 0xE1, &app1);
    segment(&mut out, 0xFE, PLANTED_COMMENT.as_bytes());
    out.extend_from_slice(&plain[2..]);
    out
}

fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32) {
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&value.to_be_bytes());
}

fn entry_short(out: &mut Vec<u8>, tag: u16, value: u16) {
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&3u16.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&value.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
}

fn segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The EXIF Orientation of a JPEG, read from its APP1 segment (either byte order).
pub fn jpeg_orientation(jpeg: &[u8]) -> Option<u16> {
    let start = find(jpeg, b"Exif\0\0")? + 6;
    let tiff = &jpeg[start..];
    let big = tiff.starts_with(b"MM");
    let u16_at = |at: usize| {
        let b = [tiff[at], tiff[at + 1]];
        if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |at: usize| {
        let b = [tiff[at], tiff[at + 1], tiff[at + 2], tiff[at + 3]];
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let ifd = u32_at(4) as usize;
    (0..u16_at(ifd) as usize)
        .map(|i| ifd + 2 + i * 12)
        .find(|&e| u16_at(e) == 0x0112)
        .map(|e| u16_at(e + 8))
}

/// The entropy-coded image data: from the first SOS marker to the end.
pub fn jpeg_scan(jpeg: &[u8]) -> &[u8] {
    &jpeg[find(jpeg, &[0xFF, 0xDA]).expect("a JPEG has a scan")..]
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

pub const SVG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><script>alert(1)</script><circle cx="32" cy="32" r="30"/></svg>"#;
