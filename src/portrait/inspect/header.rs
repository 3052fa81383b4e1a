//! What the header says: dimensions, and an estimate of the memory decoding will need,
//! read before any decoder allocates for the pixels.

use std::io::Cursor;

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use super::{ImageFormat, Rejection};
use crate::portrait::formats::jpeg::header_segments;

/// What the header says: the size, and the buffers decoding it will need.
pub(super) struct Header {
    pub(super) width: u32,
    pub(super) height: u32,
    /// Bytes that grow with the image; [`DECODER_STATE_MEMORY`] comes on top.
    pub(super) working_memory: u64,
}

/// Headroom for what every decoder keeps whatever the image's size: Huffman or LZW tables,
/// colour caches, the decompressor's window.
pub(super) const DECODER_STATE_MEMORY: u64 = 1024 * 1024;

pub(super) fn read_header(bytes: &[u8], format: ImageFormat) -> Result<Header, Rejection> {
    match format {
        ImageFormat::Png => {
            let mut decoder = png::Decoder::new(Cursor::new(bytes));
            let header = decoder
                .read_header_info()
                .map_err(|e| Rejection::corrupt(format, e))?;
            // Rows of up to 8 bytes a pixel (16-bit RGBA), the current and the previous one.
            let row = u64::from(header.width) * 8;
            Ok(Header {
                width: header.width,
                height: header.height,
                working_memory: 2 * row,
            })
        }
        ImageFormat::Jpeg => {
            // The frame header may declare up to 65535×65535; read it unrestricted so the
            // player hears the real size rather than a decoder error.
            let options = DecoderOptions::default()
                .set_max_width(usize::from(u16::MAX))
                .set_max_height(usize::from(u16::MAX));
            let mut decoder =
                zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
            decoder
                .decode_headers()
                .map_err(|e| Rejection::corrupt(format, e))?;
            let (width, height) = decoder
                .dimensions()
                .ok_or_else(|| Rejection::corrupt(format, "no frame header"))?;
            let (width, height) = (to_u32(width), to_u32(height));
            let output = jpeg_check_colorspace(
                decoder
                    .input_colorspace()
                    .ok_or_else(|| Rejection::corrupt(format, "no colour space"))?,
            );
            let layout = jpeg_layout(bytes)
                .ok_or_else(|| Rejection::corrupt(format, "no frame or scan header"))?;
            Ok(Header {
                width,
                height,
                working_memory: layout.decode_memory(width, height, output.num_components()),
            })
        }
        ImageFormat::Gif => {
            // Logical screen descriptor; frames are checked one by one when decoding.
            let header = bytes
                .get(..10)
                .ok_or_else(|| Rejection::corrupt(format, "header truncated"))?;
            if &header[..6] != b"GIF87a" && &header[..6] != b"GIF89a" {
                return Err(Rejection::corrupt(format, "unknown GIF version"));
            }
            let width = u32::from(u16::from_le_bytes([header[6], header[7]]));
            let height = u32::from(u16::from_le_bytes([header[8], header[9]]));
            if width == 0 || height == 0 {
                return Err(Rejection::corrupt(format, "zero-sized logical screen"));
            }
            // One row of palette indices; frames wider than the screen are held to the same
            // dimension limits, so a row never exceeds the largest side allowed.
            Ok(Header {
                width,
                height,
                working_memory: u64::from(u16::MAX),
            })
        }
        ImageFormat::Webp => {
            let decoder = image_webp::WebPDecoder::new(Cursor::new(bytes))
                .map_err(|e| Rejection::corrupt(format, e))?;
            let (width, height) = decoder.dimensions();
            let output = decoder
                .output_buffer_size()
                .ok_or_else(|| Rejection::corrupt(format, "image size overflows"))?
                as u64;
            let pixels = u64::from(width) * u64::from(height);
            // image-webp decodes whole frames. Besides our RGB(A) output, a still image needs
            // its YUV planes and alpha plane (lossy, 2.5 bytes a pixel) or an RGBA scratch
            // frame (lossless without alpha, 4); an animation also keeps an RGBA canvas and
            // decodes each frame into a buffer of its own before compositing it.
            let scratch_per_pixel = if decoder.is_animated() { 11 } else { 4 };
            Ok(Header {
                width,
                height,
                working_memory: output.saturating_add(pixels.saturating_mul(scratch_per_pixel)),
            })
        }
    }
}

/// The colour space [`verify_jpeg`] decodes into: one byte a pixel is enough to prove the scan
/// decodes (every component's entropy data is still parsed), but the decoder converts to Luma
/// only from YCbCr or grey; other colour spaces keep their own layout.
pub(super) fn jpeg_check_colorspace(input: ColorSpace) -> ColorSpace {
    match input {
        ColorSpace::YCbCr | ColorSpace::Luma => ColorSpace::Luma,
        ColorSpace::RGB | ColorSpace::CMYK | ColorSpace::YCCK => input,
        _ => ColorSpace::RGBA,
    }
}

/// What a JPEG's frame and first scan headers say about the cost of decoding it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct JpegLayout {
    /// Progressive, or sequential with components in separate scans: the decoder keeps every
    /// coefficient of the image until the last scan.
    pub(super) buffers_coefficients: bool,
    /// Each component's (horizontal, vertical) sampling factors.
    pub(super) sampling: Vec<(u8, u8)>,
}

impl JpegLayout {
    /// Peak bytes zune-jpeg allocates to decode into `output_components` bytes a pixel.
    pub(super) fn decode_memory(&self, width: u32, height: u32, output_components: usize) -> u64 {
        let max_h = u64::from(self.sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1));
        let max_v = u64::from(self.sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1));
        let mcus_x = u64::from(width).div_ceil(8 * max_h);
        let mcus_y = u64::from(height).div_ceil(8 * max_v);
        let blocks_per_mcu: u64 = self
            .sampling
            .iter()
            .map(|(h, v)| u64::from(*h) * u64::from(*v))
            .sum();
        // Coefficients are i16: 128 bytes per 8×8 block.
        let mcu_row = mcus_x * blocks_per_mcu * 128;
        let output = u64::from(width) * u64::from(height) * output_components as u64;
        // One MCU row of samples per component, plus the upsampler's scratch; doubled as slack.
        let mut bytes = output + 4 * mcu_row;
        if self.buffers_coefficients {
            // Vertically subsampled files decoded to grey count MCU rows twice (max_v / max_h).
            let row_factor = (max_v / max_h).max(1);
            bytes += mcus_y * row_factor * mcu_row;
        }
        bytes
    }
}

/// Reads the frame header and the first scan header; `None` when either is missing.
pub(super) fn jpeg_layout(bytes: &[u8]) -> Option<JpegLayout> {
    let mut frame: Option<(bool, Vec<(u8, u8)>)> = None;
    for segment in header_segments(bytes) {
        match segment.marker {
            // SOF0–SOF15, which DHT (C4), JPG (C8) and DAC (CC) share the range with.
            0xC0..=0xCF if !matches!(segment.marker, 0xC4 | 0xC8 | 0xCC) => {
                // Precision, height, width, then per component: id, sampling, table.
                let count = usize::from(*segment.payload.get(5)?);
                let sampling = (0..count)
                    .map(|i| {
                        let factors = *segment.payload.get(6 + 3 * i + 1)?;
                        Some((factors >> 4, factors & 0x0F))
                    })
                    .collect::<Option<Vec<_>>>()?;
                let progressive = matches!(segment.marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
                frame = Some((progressive, sampling));
            }
            0xDA => {
                let (progressive, sampling) = frame?;
                let scan_components = usize::from(*segment.payload.first()?);
                return Some(JpegLayout {
                    buffers_coefficients: progressive || scan_components < sampling.len(),
                    sampling,
                });
            }
            _ => {}
        }
    }
    None
}

pub(super) fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}
