//! Pictures for the block-list: natural-looking scenes, different for each seed, and their
//! encodings, so a test can re-encode or resize "the same picture".

use std::io::Cursor;

use bytes::Bytes;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A picture: a gradient with a few discs, different for each `seed`.
pub fn picture(seed: u32) -> DynamicImage {
    let image = RgbImage::from_fn(320, 320, |x, y| {
        let mut pixel = Rgb([
            (x * 255 / 320) as u8,
            (y * 255 / 320) as u8,
            ((seed * 97) % 256) as u8,
        ]);
        for disc in 0..4u32 {
            let cx = (seed * 53 + disc * 89) % 320;
            let cy = (seed * 31 + disc * 137) % 320;
            let r = 30 + (seed * 17 + disc * 23) % 60;
            if (x as i64 - cx as i64).pow(2) + (y as i64 - cy as i64).pow(2) < (r * r) as i64 {
                pixel = Rgb([
                    ((seed + disc) * 71 % 256) as u8,
                    (disc * 113 % 256) as u8,
                    ((seed * 5 + disc * 40) % 256) as u8,
                ]);
            }
        }
        pixel
    });
    DynamicImage::ImageRgb8(image)
}

pub fn png(image: &DynamicImage) -> Bytes {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).unwrap();
    Bytes::from(out.into_inner())
}

pub fn jpeg(image: &DynamicImage, quality: u8) -> Bytes {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .unwrap();
    Bytes::from(out)
}
