//! Image fixtures the benchmarks generate: photo-like JPEGs and incompressible PNGs, each
//! distinct per seed (keys are content-addressed, so identical images would be one object).
#![allow(dead_code)] // each benchmark uses part of it

use image::codecs::jpeg::JpegEncoder;
use image::{ImageEncoder, RgbImage};

/// [`photo`] as a baseline JPEG.
pub fn photo_jpeg(width: u32, height: u32, seed: u32, quality: u8) -> Vec<u8> {
    let image = photo(width, height, seed);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            image.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encode JPEG");
    out
}

/// A smooth photo-like gradient with fine grain, so JPEG sizes resemble real photos; `seed`
/// makes each one a different image.
fn photo(width: u32, height: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let grain = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ seed) % 24;
        image::Rgb([
            ((x * 255 / width) as u8).saturating_add(grain as u8),
            ((y * 255 / height) as u8).saturating_add(grain as u8 / 2),
            (((x + y + seed) % 256) as u8).saturating_add(grain as u8),
        ])
    })
}

/// [`photo`] encoded progressive with 4:2:0 chroma, as web exports often are.
pub fn progressive_photo_jpeg(width: u32, height: u32, quality: u8) -> Vec<u8> {
    let image = photo(width, height, 7);
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_progressive(true);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    encoder
        .encode(
            image.as_raw(),
            u16::try_from(width).expect("width"),
            u16::try_from(height).expect("height"),
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("encode progressive JPEG");
    out
}

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
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
    .expect("encode PNG");
    out
}
