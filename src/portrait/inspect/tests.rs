//! Inspection tests, and the fixtures the sanitize tests share.

use super::*;

use super::header::{jpeg_layout, JpegLayout};
use crate::portrait::formats::jpeg::header_segments;
use crate::portrait::formats::png::{write_chunk, SIGNATURE as PNG_SIGNATURE};

use std::path::Path;

use testkit::allocation_meter;

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{Delay, ExtendedColorType, Frame, ImageEncoder, RgbaImage};

// ---- fixtures, shared with the sanitize tests ----------------------------------------

/// Deterministic noise, so compressed data is spread over the whole file and a cut
/// anywhere lands in the middle of pixel data.
pub(crate) fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// A smooth gradient with a little noise: photo-like, so JPEG keeps real detail.
pub(crate) fn rgb_pixels(width: u32, height: u32) -> Vec<u8> {
    let grain = noise((width * height * 3) as usize, 7);
    (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .enumerate()
        .flat_map(|(i, (x, y))| {
            let g = &grain[i * 3..i * 3 + 3];
            [
                ((x * 255 / width) as u8).wrapping_add(g[0] % 16),
                ((y * 255 / height) as u8).wrapping_add(g[1] % 16),
                (((x + y) * 128 / (width + height)) as u8).wrapping_add(g[2] % 16),
            ]
        })
        .collect()
}

pub(crate) fn png_file(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            &noise((width * height * 3) as usize, 3),
            width,
            height,
            ExtendedColorType::Rgb8,
        )
        .expect("encode PNG");
    out
}

pub(crate) fn jpeg_file(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode(
            &rgb_pixels(width, height),
            width,
            height,
            ExtendedColorType::Rgb8,
        )
        .expect("encode JPEG");
    out
}

/// A looping GIF whose frames are different noise.
pub(crate) fn animated_gif(frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder.set_repeat(Repeat::Infinite).expect("set repeat");
        let frames = (0..frames).map(|i| {
            let mut buffer =
                RgbaImage::from_raw(24, 16, noise(24 * 16 * 4, i + 1)).expect("frame buffer");
            // Opaque, so every frame is the full noise pattern.
            buffer.pixels_mut().for_each(|pixel| pixel[3] = 255);
            Frame::from_parts(buffer, 0, 0, Delay::from_numer_denom_ms(100, 1))
        });
        encoder.encode_frames(frames).expect("encode GIF");
    }
    out
}

pub(crate) fn lossless_webp(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .write_image(
            &noise((width * height * 4) as usize, seed),
            width,
            height,
            ExtendedColorType::Rgba8,
        )
        .expect("encode WebP");
    out
}

/// The VP8L bitstream of a simple lossless WebP.
pub(crate) fn vp8l_payload(webp: &[u8]) -> Vec<u8> {
    assert_eq!(
        &webp[12..16],
        b"VP8L",
        "the encoder makes simple lossless files"
    );
    let size = u32::from_le_bytes(webp[16..20].try_into().unwrap()) as usize;
    webp[20..20 + size].to_vec()
}

pub(crate) fn riff_chunk(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut chunk = fourcc.to_vec();
    chunk.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    chunk.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        chunk.push(0);
    }
    chunk
}

pub(crate) fn riff_webp(chunks: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = chunks.concat();
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
    file.extend_from_slice(b"WEBP");
    file.extend_from_slice(&body);
    file
}

pub(crate) fn u24(value: u32) -> [u8; 3] {
    let b = value.to_le_bytes();
    [b[0], b[1], b[2]]
}

pub(crate) fn vp8x(flags: u8, width: u32, height: u32) -> Vec<u8> {
    let mut payload = vec![flags, 0, 0, 0];
    payload.extend_from_slice(&u24(width - 1));
    payload.extend_from_slice(&u24(height - 1));
    riff_chunk(b"VP8X", &payload)
}

/// An animated WebP with one full-canvas lossless frame per bitstream.
pub(crate) fn animated_webp(width: u32, height: u32, bitstreams: &[Vec<u8>]) -> Vec<u8> {
    let mut chunks = vec![vp8x(0x02 | 0x10, width, height)];
    chunks.push(riff_chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]));
    for bitstream in bitstreams {
        let mut frame = Vec::new();
        frame.extend_from_slice(&u24(0));
        frame.extend_from_slice(&u24(0));
        frame.extend_from_slice(&u24(width - 1));
        frame.extend_from_slice(&u24(height - 1));
        frame.extend_from_slice(&u24(100));
        frame.push(0);
        frame.extend_from_slice(&riff_chunk(b"VP8L", bitstream));
        chunks.push(riff_chunk(b"ANMF", &frame));
    }
    riff_webp(&chunks)
}

/// An animated PNG of `frames` full-size frames of different noise (IDAT is the first frame).
pub(crate) fn apng_file(width: u32, height: u32, frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_animated(frames, 0).expect("animated");
        let mut writer = encoder.write_header().expect("PNG header");
        for frame in 0..frames {
            writer
                .write_image_data(&noise((width * height * 3) as usize, 20 + frame))
                .expect("frame");
        }
        writer.finish().expect("finish");
    }
    out
}

/// Where each chunk of a PNG starts, with its type.
pub(crate) fn png_chunks(png: &[u8]) -> Vec<(usize, [u8; 4])> {
    let mut chunks = Vec::new();
    let mut pos = PNG_SIGNATURE.len();
    while let Ok(chunk) = crate::portrait::formats::png::chunk_at(png, pos) {
        chunks.push((pos, chunk.kind));
        pos = chunk.range.end;
    }
    chunks
}

/// A zlib stream that inflates to `len` zero bytes, written by hand (fixed Huffman codes: one
/// literal, then copies of 258 bytes at distance 1) so that a huge profile costs a few bits per
/// 258 bytes to write and nothing to hold in memory.
pub(crate) fn zlib_zeros(len: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        count: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, bits: u32) {
            self.acc |= value << self.count;
            self.count += bits;
            while self.count >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.count -= 8;
            }
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u32, bits: u32) {
            let reversed = code.reverse_bits() >> (32 - bits);
            self.put(reversed, bits);
        }
    }
    assert!(
        len >= 1 && (len - 1) % 258 == 0,
        "a literal, then 258-byte copies"
    );
    let mut bits = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        count: 0,
    };
    bits.put(1, 1); // final block
    bits.put(1, 2); // fixed Huffman codes
    bits.code(0x30, 8); // literal 0
    for _ in 0..(len - 1) / 258 {
        bits.code(0xC5, 8); // length 258
        bits.code(0, 5); // distance 1
    }
    bits.code(0, 7); // end of block
    bits.put(0, 7);
    let mut out = bits.out;
    // Adler-32 of zeros: a stays 1, b adds 1 per byte.
    let b = (len % 65521) as u32;
    out.extend_from_slice(&((b << 16) | 1).to_be_bytes());
    out
}

/// `png` with an iCCP chunk holding the zlib stream `compressed`, right after IHDR.
pub(crate) fn with_iccp(png: &[u8], compressed: &[u8]) -> Vec<u8> {
    let ihdr_end = PNG_SIGNATURE.len() + 25;
    let mut payload = b"Planted profile\0\0".to_vec();
    payload.extend_from_slice(compressed);
    [
        &png[..ihdr_end],
        &write_chunk(*b"iCCP", &payload),
        &png[ihdr_end..],
    ]
    .concat()
}

/// A valid PNG signature and IHDR claiming `width`×`height`, and nothing else.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut file = PNG_SIGNATURE.to_vec();
    file.extend_from_slice(&write_chunk(*b"IHDR", &ihdr));
    file
}

fn limits() -> InspectLimits {
    InspectLimits::default()
}

fn cut(bytes: &[u8], fraction: f64) -> &[u8] {
    &bytes[..(bytes.len() as f64 * fraction) as usize]
}

#[track_caller]
fn assert_corrupt(result: Result<ImageInfo, Rejection>, format: ImageFormat) {
    match result {
        Err(Rejection::Corrupt { format: got, .. }) => assert_eq!(got, format),
        other => panic!("expected a corrupt {format} rejection, got {other:?}"),
    }
}

// ---- the corpus -------------------------------------------------------------------------

#[test]
fn every_pngsuite_file_gets_the_expected_verdict() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/pngsuite"
    ));
    if !testkit::corpus::present(dir, "every_pngsuite_file_gets_the_expected_verdict") {
        return;
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read the PngSuite folder")
        .map(|entry| entry.expect("read a PngSuite entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
        .collect();
    entries.sort();

    let (mut accepted, mut rejected, mut wrong) = (0, 0, Vec::new());
    for path in &entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).expect("read a PngSuite file");
        let verdict = inspect(&bytes, &limits());
        let expect_corrupt = name.starts_with('x');
        match (&verdict, expect_corrupt) {
            (Ok(_), false) => accepted += 1,
            (
                Err(Rejection::Corrupt {
                    format: ImageFormat::Png,
                    ..
                }),
                true,
            ) => rejected += 1,
            _ => wrong.push(format!("{name}: {verdict:?}")),
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
    assert_eq!(entries.len(), 175, "PngSuite files seen");
    assert_eq!(accepted, 161, "valid PngSuite files accepted");
    assert_eq!(rejected, 14, "x* PngSuite files refused as corrupt");
}

// ---- what the file is -------------------------------------------------------------------

#[test]
fn an_svg_is_refused_and_named_as_svg() {
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>"#;
    let rejection = inspect(svg, &limits()).unwrap_err();
    assert_eq!(rejection.reason(), "unsupported_format");
    assert_eq!(
        rejection.to_string(),
        "This file is an SVG drawing; portraits must be PNG, JPEG, GIF or WebP images."
    );
}

#[test]
fn an_svg_with_an_xml_prolog_comment_and_doctype_is_still_named_as_svg() {
    let svg = b"\xEF\xBB\xBF\n  <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
        <!-- Generator: Adobe Illustrator -->\n\
        <!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\" [\n\
          <!ENTITY ns_svg \"http://www.w3.org/2000/svg\">\n]>\n\
        <svg version=\"1.1\" xmlns=\"&ns_svg;\"><circle r=\"4\"/></svg>\n";
    let rejection = inspect(svg, &limits()).unwrap_err();
    assert!(
        matches!(
            rejection,
            Rejection::UnsupportedFormat { format: "SVG", .. }
        ),
        "{rejection:?}"
    );
    assert!(rejection.to_string().contains("SVG drawing"));
}

#[test]
fn an_html_page_uploaded_as_a_jpg_is_not_an_image() {
    let html = b"<!DOCTYPE html>\n<html><head><title>Expired</title></head>\
        <body>This content is no longer available.<svg></svg></body></html>";
    let rejection = inspect(html, &limits()).unwrap_err();
    assert_eq!(
        rejection,
        Rejection::NotAnImage {
            looks_like: Some("an HTML page")
        }
    );
    assert_eq!(
        rejection.to_string(),
        "This file is not an image (it looks like an HTML page). \
         Portraits must be PNG, JPEG, GIF or WebP images."
    );
}

#[test]
fn plain_text_uploaded_as_a_jpg_is_not_an_image() {
    let rejection = inspect(b"my character is a half-elf bard\n", &limits()).unwrap_err();
    assert_eq!(rejection.reason(), "not_an_image");
    assert!(
        rejection.to_string().contains("it looks like text"),
        "{rejection}"
    );
}

#[test]
fn a_pdf_is_not_an_image() {
    let rejection = inspect(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj", &limits()).unwrap_err();
    assert_eq!(
        rejection,
        Rejection::NotAnImage {
            looks_like: Some("a PDF document")
        }
    );
}

#[test]
fn a_bmp_is_refused_as_an_unsupported_format_named_bmp() {
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0x46, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 0x28, 0, 0, 0]);
    bmp.resize(70, 0);
    let rejection = inspect(&bmp, &limits()).unwrap_err();
    assert!(
        matches!(
            rejection,
            Rejection::UnsupportedFormat { format: "BMP", .. }
        ),
        "{rejection:?}"
    );
    assert_eq!(
        rejection.to_string(),
        "This file is a BMP image; portraits must be PNG, JPEG, GIF or WebP images."
    );
}

#[test]
fn an_empty_file_is_refused_as_empty() {
    let rejection = inspect(b"", &limits()).unwrap_err();
    assert_eq!(rejection, Rejection::Empty);
    assert_eq!(rejection.reason(), "empty");
    assert!(rejection.to_string().contains("empty"));
}

#[test]
fn a_one_byte_file_is_not_an_image() {
    for byte in [0x89u8, 0xFF, b'G', b'<', 0] {
        let rejection = inspect(&[byte], &limits()).unwrap_err();
        assert_eq!(
            rejection.reason(),
            "not_an_image",
            "byte {byte:#x}: {rejection:?}"
        );
    }
}

#[test]
fn a_file_over_the_byte_limit_is_refused_with_sizes_in_mebibytes() {
    let mut big = png_file(8, 8);
    big.resize(11 * 1024 * 1024, 0);
    let rejection = inspect_header(&big, &limits()).unwrap_err();
    assert_eq!(
        rejection,
        Rejection::TooLarge {
            size: 11 * 1024 * 1024,
            max: 10 * 1024 * 1024
        }
    );
    assert_eq!(
        rejection.to_string(),
        "The file is 11.0 MiB; the largest upload allowed is 10.0 MiB. \
         Please make it smaller and try again."
    );
}

#[test]
fn a_file_just_over_the_limit_does_not_claim_to_be_the_same_size_as_it() {
    let rejection = Rejection::TooLarge {
        size: 10 * 1024 * 1024 + 1,
        max: 10 * 1024 * 1024,
    };
    assert!(
        rejection
            .to_string()
            .starts_with("The file is 10.0 MiB (10485761 bytes); "),
        "{rejection}"
    );
}

// ---- dimensions, before decoding ---------------------------------------------------------

#[test]
fn a_png_header_claiming_30000_by_30000_is_refused_by_the_header_check() {
    let bytes = png_header_only(30_000, 30_000);
    // The header check alone refuses it, so no decoder ever sees it.
    let rejection = inspect_header(&bytes, &limits()).unwrap_err();
    assert_eq!(
        rejection,
        Rejection::DimensionsTooLarge {
            width: 30_000,
            height: 30_000,
            max: 10_000
        }
    );
    assert_eq!(
        rejection.to_string(),
        "The image is 30000×30000 pixels; the largest side allowed is 10000 pixels. \
         Please resize it and try again."
    );
    assert_eq!(inspect(&bytes, &limits()).unwrap_err(), rejection);
}

#[test]
fn a_header_within_each_side_but_over_the_pixel_budget_is_refused() {
    let bytes = png_header_only(8_000, 6_000);
    let rejection = inspect_header(&bytes, &limits()).unwrap_err();
    assert_eq!(rejection.reason(), "too_many_pixels");
    assert_eq!(
        rejection.to_string(),
        "The image is 8000×6000 pixels (48.0 megapixels); the most allowed is 40.0 megapixels. \
         Please resize it and try again."
    );
}

#[test]
fn a_jpeg_header_over_the_limits_is_refused_by_the_header_check() {
    let mut jpeg = jpeg_file(16, 16);
    // Rewrite the frame header (SOF0) to claim 20000×12 pixels.
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline frame header");
    jpeg[sof + 5..sof + 7].copy_from_slice(&12u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&20_000u16.to_be_bytes());
    assert_eq!(
        inspect_header(&jpeg, &limits()).unwrap_err(),
        Rejection::DimensionsTooLarge {
            width: 20_000,
            height: 12,
            max: 10_000
        }
    );
}

#[test]
fn a_webp_bitstream_larger_than_its_canvas_is_refused_before_decoding() {
    let bitstream = vp8l_payload(&lossless_webp(64, 64, 1));
    let webp = riff_webp(&[vp8x(0x10, 16, 16), riff_chunk(b"VP8L", &bitstream)]);
    let info = inspect_header(&webp, &limits()).expect("the canvas itself is fine");
    assert_eq!((info.width, info.height), (16, 16));
    let rejection = verify_decodes(&webp, &info, &limits()).unwrap_err();
    assert!(
        matches!(&rejection, Rejection::Corrupt { detail, .. } if detail.contains("larger than the canvas")),
        "{rejection:?}"
    );
}

// ---- valid files ------------------------------------------------------------------------

#[test]
fn valid_png_jpeg_gif_and_webp_files_are_accepted_with_their_dimensions() {
    let cases = [
        (png_file(40, 30), ImageFormat::Png),
        (jpeg_file(40, 30), ImageFormat::Jpeg),
        (lossless_webp(40, 30, 5), ImageFormat::Webp),
    ];
    for (bytes, format) in cases {
        let info = inspect(&bytes, &limits()).unwrap_or_else(|e| panic!("{format}: {e:?}"));
        assert_eq!(
            (info.format, info.width, info.height, info.frames_checked),
            (format, 40, 30, 1)
        );
    }
    let gif = inspect(&animated_gif(1), &limits()).expect("a one-frame GIF");
    assert_eq!(
        (gif.format, gif.width, gif.height),
        (ImageFormat::Gif, 24, 16)
    );
}

#[test]
fn an_animated_gif_decodes_every_frame_and_is_accepted() {
    let info = inspect(&animated_gif(3), &limits()).expect("animated GIF accepted");
    assert_eq!(info.format, ImageFormat::Gif);
    assert_eq!(info.frames_checked, 3);
}

#[test]
fn a_gif_whose_last_frame_has_broken_data_is_refused() {
    let mut gif = animated_gif(2);
    assert_eq!(gif.pop(), Some(0x3B), "GIF ends with its trailer");
    // A third 4×4 frame whose LZW codes point past the code table.
    gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 4, 0, 4, 0, 0x80]);
    gif.extend_from_slice(&[0; 6]); // local colour table of 2 entries
    gif.extend_from_slice(&[0x02, 0x04, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x3B]);
    assert_corrupt(inspect(&gif, &limits()), ImageFormat::Gif);
}

#[test]
fn an_animated_webp_decodes_every_frame_and_is_accepted() {
    let frames: Vec<_> = (1..=3)
        .map(|seed| vp8l_payload(&lossless_webp(20, 12, seed)))
        .collect();
    let webp = animated_webp(20, 12, &frames);
    let info = inspect(&webp, &limits()).expect("animated WebP accepted");
    assert_eq!(
        (info.format, info.width, info.height),
        (ImageFormat::Webp, 20, 12)
    );
    assert_eq!(info.frames_checked, 3);
}

#[test]
fn an_animated_webp_whose_last_frame_is_broken_is_refused() {
    let mut frames: Vec<_> = (1..=3)
        .map(|seed| vp8l_payload(&lossless_webp(20, 12, seed)))
        .collect();
    frames[2].truncate(12);
    let webp = animated_webp(20, 12, &frames);
    assert_corrupt(inspect(&webp, &limits()), ImageFormat::Webp);
}

// ---- truncated and damaged files --------------------------------------------------------

#[test]
fn a_truncated_jpeg_is_refused_as_corrupt() {
    let jpeg = jpeg_file(160, 120);
    assert!(inspect(&jpeg, &limits()).is_ok(), "the whole file is fine");
    for fraction in [0.3, 0.6, 0.9, 0.99] {
        let rejection = inspect(cut(&jpeg, fraction), &limits());
        assert_corrupt(rejection, ImageFormat::Jpeg);
    }
    // Complete scan data, only the end-of-image marker missing.
    assert_corrupt(
        inspect(&jpeg[..jpeg.len() - 2], &limits()),
        ImageFormat::Jpeg,
    );
}

#[test]
fn a_jpeg_with_garbage_in_its_scan_data_is_refused_as_corrupt() {
    let mut jpeg = jpeg_file(160, 120);
    let len = jpeg.len();
    // The end-of-image marker is still there; only the decoder can notice.
    jpeg[len / 3..len / 2].fill(0xFF);
    assert_corrupt(inspect(&jpeg, &limits()), ImageFormat::Jpeg);
}

#[test]
fn a_png_cut_after_its_image_data_but_before_iend_is_refused() {
    let png = png_file(16, 16);
    let iend = png.len() - 12;
    let time = write_chunk(*b"tIME", &[0x07, 0xE8, 6, 1, 12, 0, 0]);
    let whole = [&png[..iend], &time, &png[iend..]].concat();
    assert!(inspect(&whole, &limits()).is_ok(), "the whole file is fine");
    let cut_before_iend = &whole[..whole.len() - 12];
    assert_corrupt(inspect(cut_before_iend, &limits()), ImageFormat::Png);
}

#[test]
fn a_truncated_png_is_refused_as_corrupt() {
    let png = png_file(64, 48);
    assert!(inspect(&png, &limits()).is_ok(), "the whole file is fine");
    for fraction in [0.3, 0.6, 0.95] {
        assert_corrupt(inspect(cut(&png, fraction), &limits()), ImageFormat::Png);
    }
    // All image data present, IEND missing.
    assert_corrupt(inspect(&png[..png.len() - 12], &limits()), ImageFormat::Png);
}

#[test]
fn a_truncated_gif_is_refused_as_corrupt() {
    let gif = animated_gif(3);
    for fraction in [0.3, 0.6, 0.95] {
        assert_corrupt(inspect(cut(&gif, fraction), &limits()), ImageFormat::Gif);
    }
}

#[test]
fn a_truncated_webp_is_refused_as_corrupt() {
    let webp = lossless_webp(64, 48, 9);
    for fraction in [0.3, 0.6, 0.95] {
        assert_corrupt(inspect(cut(&webp, fraction), &limits()), ImageFormat::Webp);
    }
}

#[test]
fn a_corrupt_file_gets_a_player_friendly_message_and_keeps_the_detail_for_logs() {
    let png = png_file(32, 32);
    let rejection = inspect(cut(&png, 0.5), &limits()).unwrap_err();
    assert_eq!(
        rejection.to_string(),
        "This PNG file seems damaged or incomplete. \
         Please export it again, or upload the original file."
    );
    let Rejection::Corrupt { detail, .. } = &rejection else {
        panic!("{rejection:?}")
    };
    assert!(!detail.is_empty());
    assert!(!rejection.to_string().contains(detail.as_str()));
}

#[test]
fn every_rejection_has_its_metric_label() {
    let cases = [
        (Rejection::Empty, "empty"),
        (Rejection::TooLarge { size: 2, max: 1 }, "too_large"),
        (Rejection::NotAnImage { looks_like: None }, "not_an_image"),
        (
            Rejection::UnsupportedFormat {
                format: "SVG",
                description: "an SVG drawing",
            },
            "unsupported_format",
        ),
        (
            Rejection::DimensionsTooLarge {
                width: 2,
                height: 2,
                max: 1,
            },
            "dimensions_too_large",
        ),
        (
            Rejection::TooManyPixels {
                width: 2,
                height: 2,
                max_pixels: 1,
            },
            "too_many_pixels",
        ),
        (
            Rejection::AnimationTooLarge {
                frames: 2,
                max_total_pixels: 1,
            },
            "animation_too_large",
        ),
        (
            Rejection::ColourProfileTooLarge {
                format: ImageFormat::Png,
                max: MAX_COLOUR_PROFILE_BYTES,
            },
            "colour_profile_too_large",
        ),
        (
            Rejection::Corrupt {
                format: ImageFormat::Gif,
                detail: String::new(),
            },
            "corrupt",
        ),
    ];
    for (rejection, reason) in cases {
        assert_eq!(rejection.reason(), reason);
    }
}

#[test]
fn an_animation_over_its_total_pixel_budget_is_refused() {
    // Frames of 24×16 = 384 pixels against a budget of 16 × 400 = 6400 pixels: the 17th
    // frame goes over.
    let small = InspectLimits {
        max_pixels: 400,
        ..limits()
    };
    assert_eq!(
        inspect(&animated_gif(16), &small).unwrap().frames_checked,
        16
    );
    let rejection = inspect(&animated_gif(20), &small).unwrap_err();
    assert!(
        matches!(
            rejection,
            Rejection::AnimationTooLarge {
                frames: 17,
                max_total_pixels: 6400
            }
        ),
        "{rejection:?}"
    );
}

#[test]
fn formats_name_their_content_type_and_extension() {
    let table = [
        (ImageFormat::Png, "image/png", "png", "PNG"),
        (ImageFormat::Jpeg, "image/jpeg", "jpg", "JPEG"),
        (ImageFormat::Gif, "image/gif", "gif", "GIF"),
        (ImageFormat::Webp, "image/webp", "webp", "WebP"),
    ];
    for (format, mime, extension, name) in table {
        assert_eq!(
            (format.mime_type(), format.extension(), format.name()),
            (mime, extension, name)
        );
    }
}

// ---- decode memory -------------------------------------------------------------------

pub(crate) fn encoded_jpeg(
    width: u16,
    height: u16,
    progressive: bool,
    sampling: jpeg_encoder::SamplingFactor,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    encoder.set_progressive(progressive);
    encoder.set_sampling_factor(sampling);
    encoder
        .encode(
            &rgb_pixels(u32::from(width), u32::from(height)),
            width,
            height,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("encode JPEG");
    out
}

fn grey_progressive_jpeg(width: u16, height: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    encoder.set_progressive(true);
    let pixels = noise(usize::from(width) * usize::from(height), 11);
    encoder
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Luma)
        .expect("encode JPEG");
    out
}

fn opaque_lossless_webp(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .write_image(
            &noise((width * height * 3) as usize, 13),
            width,
            height,
            ExtendedColorType::Rgb8,
        )
        .expect("encode WebP");
    out
}

#[test]
fn the_decode_memory_estimate_bounds_what_every_decoder_really_allocates() {
    use jpeg_encoder::SamplingFactor;
    const MIB: u64 = 1024 * 1024;
    let lossless_frames: Vec<Vec<u8>> = (0..3)
        .map(|seed| vp8l_payload(&lossless_webp(256, 192, seed)))
        .collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("baseline JPEG 4:4:4", jpeg_file(512, 384)),
        (
            "baseline JPEG 4:2:0",
            encoded_jpeg(512, 384, false, SamplingFactor::R_4_2_0),
        ),
        (
            "progressive JPEG 4:2:0",
            encoded_jpeg(512, 384, true, SamplingFactor::R_4_2_0),
        ),
        (
            "progressive JPEG 4:4:4",
            encoded_jpeg(512, 384, true, SamplingFactor::R_4_4_4),
        ),
        (
            "progressive JPEG 4:2:2",
            encoded_jpeg(512, 384, true, SamplingFactor::R_4_2_2),
        ),
        (
            "progressive JPEG 4:4:0",
            encoded_jpeg(512, 384, true, SamplingFactor::R_4_4_0),
        ),
        ("progressive grey JPEG", grey_progressive_jpeg(512, 384)),
        ("PNG", png_file(512, 384)),
        ("animated GIF", animated_gif(3)),
        ("lossless WebP with alpha", lossless_webp(512, 384, 1)),
        (
            "lossless WebP without alpha",
            opaque_lossless_webp(512, 384),
        ),
        (
            "animated lossless WebP",
            animated_webp(256, 192, &lossless_frames),
        ),
        (
            "lossy WebP",
            include_bytes!("../../../tests/fixtures/lossy.webp").to_vec(),
        ),
        (
            "lossy WebP with alpha",
            include_bytes!("../../../tests/fixtures/lossy-alpha.webp").to_vec(),
        ),
        (
            "animated lossy WebP with alpha",
            include_bytes!("../../../tests/fixtures/lossy-animated.webp").to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let info = inspect_header(&bytes, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (result, held) =
            allocation_meter::thread_peak_during(|| verify_decodes(&bytes, &info, &limits()));
        result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(
            held <= info.decode_memory,
            "{name}: decoding held {held} bytes, more than the {} estimated",
            info.decode_memory
        );
        // Far above the real cost, the estimate would refuse images that fit.
        assert!(
            info.decode_memory <= 2 * held + 2 * MIB,
            "{name}: estimated {} bytes, but decoding held only {held}",
            info.decode_memory
        );
    }
}

#[test]
fn a_progressive_jpeg_too_costly_to_decode_is_refused_with_a_size_that_would_fit() {
    use jpeg_encoder::SamplingFactor;
    let baseline = encoded_jpeg(600, 400, false, SamplingFactor::R_4_2_0);
    let progressive = encoded_jpeg(600, 400, true, SamplingFactor::R_4_2_0);
    // Room for the baseline file's one byte a pixel, not for the progressive one's
    // coefficients on top.
    let tight = InspectLimits {
        max_decode_memory: DECODER_STATE_MEMORY + 600 * 400 * 2,
        ..limits()
    };
    inspect(&baseline, &tight).expect("the same picture, baseline, fits");

    let rejection = inspect_header(&progressive, &tight).unwrap_err();
    assert_eq!(rejection.reason(), "decode_too_costly");
    let message = rejection.to_string();
    assert!(
        message.starts_with("This JPEG image is 600×400 pixels and would need about ")
            && message.contains("the most allowed is 1.5 MiB")
            && message.contains("megapixels or less"),
        "{message}"
    );
    // Header facts gathered under looser limits do not get it past the decode step.
    let info = inspect_header(&progressive, &limits()).expect("fits the defaults");
    assert_eq!(
        verify_decodes(&progressive, &info, &tight)
            .unwrap_err()
            .reason(),
        "decode_too_costly"
    );
}

#[test]
fn at_the_defaults_a_40_megapixel_photo_fits_unless_it_is_progressive() {
    let (width, height) = (7_300, 5_479);
    let layout = |progressive, sampling: Vec<(u8, u8)>| JpegLayout {
        buffers_coefficients: progressive,
        sampling,
    };
    let default_budget = InspectLimits::default().max_decode_memory;
    let baseline = layout(false, vec![(2, 2), (1, 1), (1, 1)]);
    assert!(baseline.decode_memory(width, height, 1) <= default_budget);
    let progressive = layout(true, vec![(2, 2), (1, 1), (1, 1)]);
    assert!(progressive.decode_memory(width, height, 1) > default_budget);
    // 24 megapixels of progressive 4:2:0, a large camera export, still fit.
    assert!(progressive.decode_memory(6_000, 4_000, 1) <= default_budget);
}

#[test]
fn the_jpeg_layout_comes_from_the_frame_and_first_scan_headers() {
    use jpeg_encoder::SamplingFactor;
    assert_eq!(
        jpeg_layout(&encoded_jpeg(64, 48, false, SamplingFactor::R_4_2_0)),
        Some(JpegLayout {
            buffers_coefficients: false,
            sampling: vec![(2, 2), (1, 1), (1, 1)],
        })
    );
    assert_eq!(
        jpeg_layout(&encoded_jpeg(64, 48, true, SamplingFactor::R_4_2_2)),
        Some(JpegLayout {
            buffers_coefficients: true,
            sampling: vec![(2, 1), (1, 1), (1, 1)],
        })
    );
    let jpeg = jpeg_file(64, 48);
    let scan = header_segments(&jpeg)
        .find(|segment| segment.marker == 0xDA)
        .expect("a scan");
    assert_eq!(jpeg_layout(&jpeg[..scan.end - 6]), None, "scan header cut");
}

// ---- integrity: colour profiles and checksums ------------------------------------------

#[test]
fn a_png_whose_colour_profile_inflates_past_a_mebibyte_is_refused() {
    let just_over = with_iccp(&png_file(16, 16), &zlib_zeros(1 + 258 * 4065));
    const { assert!(1 + 258 * 4065 > MAX_COLOUR_PROFILE_BYTES) };
    let rejection = inspect(&just_over, &limits()).unwrap_err();
    assert_eq!(rejection.reason(), "colour_profile_too_large");
    assert_eq!(
        rejection.to_string(),
        "This PNG image carries a colour profile larger than 1.0 MiB. Please save it again \
         with a standard colour profile such as sRGB, and try again."
    );

    // A profile within the bound is fine.
    let small = with_iccp(&png_file(16, 16), &zlib_zeros(1 + 258 * 100));
    inspect(&small, &limits()).expect("a 25 KiB profile is accepted");
}

#[test]
fn a_jpeg_or_webp_colour_profile_over_a_mebibyte_is_refused() {
    let jpeg = jpeg_file(16, 16);
    let mut segments = Vec::new();
    let piece = vec![0u8; 65_000];
    for index in 1..=17u8 {
        let mut payload = b"ICC_PROFILE\0".to_vec();
        payload.extend_from_slice(&[index, 17]);
        payload.extend_from_slice(&piece);
        segments.extend_from_slice(&crate::portrait::formats::jpeg::write_segment(
            0xE2,
            &[&payload],
        ));
    }
    let big_jpeg = [&jpeg[..2], &segments, &jpeg[2..]].concat();
    assert_eq!(
        inspect(&big_jpeg, &limits()).unwrap_err().reason(),
        "colour_profile_too_large"
    );

    let bitstream = vp8l_payload(&lossless_webp(16, 8, 4));
    let big_webp = riff_webp(&[
        vp8x(0x10 | crate::portrait::formats::webp::VP8X_ICC, 16, 8),
        riff_chunk(b"ICCP", &vec![0; MAX_COLOUR_PROFILE_BYTES + 2]),
        riff_chunk(b"VP8L", &bitstream),
    ]);
    assert_eq!(
        inspect(&big_webp, &limits()).unwrap_err().reason(),
        "colour_profile_too_large"
    );
}

#[test]
fn an_apng_frame_with_a_bad_crc_is_refused_as_damaged() {
    let apng = apng_file(16, 8, 3);
    inspect(&apng, &limits()).expect("the fixture is a valid APNG");
    let (last_fdat, _) = *png_chunks(&apng)
        .iter()
        .rfind(|(_, kind)| kind == b"fdAT")
        .expect("an fdAT chunk");
    let length = u32::from_be_bytes(apng[last_fdat..last_fdat + 4].try_into().unwrap()) as usize;
    let mut damaged = apng.clone();
    damaged[last_fdat + 8 + length] ^= 0x01;
    let rejection = inspect(&damaged, &limits()).unwrap_err();
    assert_corrupt(Err(rejection.clone()), ImageFormat::Png);
    assert!(
        rejection.to_string().contains("seems damaged"),
        "{rejection}"
    );
}

#[test]
fn a_png_with_a_bad_zlib_checksum_but_valid_chunk_crcs_is_refused_as_damaged() {
    let png = png_file(16, 16);
    let (idat, _) = *png_chunks(&png)
        .iter()
        .rfind(|(_, kind)| kind == b"IDAT")
        .expect("an IDAT chunk");
    let length = u32::from_be_bytes(png[idat..idat + 4].try_into().unwrap()) as usize;
    let mut payload = png[idat + 8..idat + 8 + length].to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 0x01; // the Adler-32's low byte
    let damaged = [
        &png[..idat],
        &write_chunk(*b"IDAT", &payload),
        &png[idat + 12 + length..],
    ]
    .concat();
    assert_corrupt(inspect(&damaged, &limits()), ImageFormat::Png);
}

/// Counts each thread's allocations, so the decode-memory tests can measure what a decoder
/// really takes.
#[global_allocator]
static ALLOCATION_METER: allocation_meter::Meter = allocation_meter::Meter;
