//! Sanitize tests: planted metadata goes, pixels and orientation stay.

use super::*;

use super::exif::EXIF_HEADER;
use crate::portrait::formats::gif::color_table_len;
use crate::portrait::formats::png::write_chunk;
use crate::portrait::formats::webp::{VP8X_EXIF, VP8X_XMP};

use image::metadata::Orientation;
use image::{ImageDecoder, ImageFormat as Codec};

use crate::portrait::inspect::tests::{
    animated_gif, apng_file, encoded_jpeg, jpeg_file, lossless_webp, png_chunks, png_file,
    riff_chunk, riff_webp, u24, vp8l_payload, vp8x,
};
use crate::portrait::inspect::{inspect, InspectLimits};

const MAKE: &str = "PlantedCameraMake";
const MODEL_SERIAL: &str = "PlantedSerial-00042";
const GPS_DATUM: &str = "PLANTED-GPS-DATUM";
const XMP_TOOL: &str = "PlantedXmpTool";
const COMMENT_TEXT: &str = "PlantedComment: taken in my kitchen";
const IPTC_BYLINE: &str = "PlantedIptcByline";

/// A TIFF-structured EXIF block: IFD0 with Make, BodySerialNumber-ish text (as Model),
/// optionally Orientation, and optionally a GPS IFD holding a latitude and a map datum.
pub(super) fn exif_block(big_endian: bool, orientation: Option<u16>, with_gps: bool) -> Vec<u8> {
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let ascii = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    };
    // (tag, type, count, value bytes); GPS pointer value is filled in below.
    let mut ifd0: Vec<(u16, u16, u32, Vec<u8>)> = vec![
        (0x010F, 2, (MAKE.len() + 1) as u32, ascii(MAKE)),
        (
            0x0110,
            2,
            (MODEL_SERIAL.len() + 1) as u32,
            ascii(MODEL_SERIAL),
        ),
    ];
    if let Some(orientation) = orientation {
        let mut value = u16b(orientation).to_vec();
        value.extend_from_slice(&[0, 0]);
        ifd0.push((0x0112, 3, 1, value));
    }
    let latitude: Vec<u8> = [51u32, 1, 30, 1, 1234, 100]
        .iter()
        .flat_map(|&v| u32b(v))
        .collect();
    let gps: Vec<(u16, u16, u32, Vec<u8>)> = vec![
        (0x0001, 2, 2, b"N\0\0\0".to_vec()),
        (0x0002, 5, 3, latitude),
        (0x0012, 2, (GPS_DATUM.len() + 1) as u32, ascii(GPS_DATUM)),
    ];
    if with_gps {
        ifd0.push((0x8825, 4, 1, vec![0; 4]));
    }

    fn ifd_len(entries: &[(u16, u16, u32, Vec<u8>)]) -> usize {
        2 + 12 * entries.len() + 4
    }
    fn data_len(entries: &[(u16, u16, u32, Vec<u8>)]) -> usize {
        entries
            .iter()
            .filter(|e| e.3.len() > 4)
            .map(|e| e.3.len())
            .sum()
    }
    let ifd0_at = 8;
    let data0_at = ifd0_at + ifd_len(&ifd0);
    let gps_at = data0_at + data_len(&ifd0);
    if with_gps {
        let pointer = ifd0.last_mut().unwrap();
        pointer.3 = u32b(gps_at as u32).to_vec();
    }

    let write_ifd = |out: &mut Vec<u8>, entries: &[(u16, u16, u32, Vec<u8>)], data_at: usize| {
        let mut data = Vec::new();
        out.extend_from_slice(&u16b(entries.len() as u16));
        for (tag, kind, count, value) in entries {
            out.extend_from_slice(&u16b(*tag));
            out.extend_from_slice(&u16b(*kind));
            out.extend_from_slice(&u32b(*count));
            if value.len() > 4 {
                out.extend_from_slice(&u32b((data_at + data.len()) as u32));
                data.extend_from_slice(value);
            } else {
                let mut inline = value.clone();
                inline.resize(4, 0);
                out.extend_from_slice(&inline);
            }
        }
        out.extend_from_slice(&u32b(0));
        out.extend_from_slice(&data);
    };
    let mut tiff = if big_endian {
        b"MM\0*".to_vec()
    } else {
        b"II*\0".to_vec()
    };
    tiff.extend_from_slice(&u32b(ifd0_at as u32));
    write_ifd(&mut tiff, &ifd0, data0_at);
    if with_gps {
        assert_eq!(tiff.len(), gps_at);
        write_ifd(&mut tiff, &gps, gps_at + ifd_len(&gps));
    }
    tiff
}

fn xmp_packet() -> String {
    format!(
        "<?xpacket begin='\u{feff}' id='W5M0MpCehiHzreSzNTczkc9d'?>\
         <x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF \
         xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\
         <rdf:Description xmlns:xmp='http://ns.adobe.com/xap/1.0/' \
         xmp:CreatorTool='{XMP_TOOL}'/></rdf:RDF></x:xmpmeta><?xpacket end='w'?>"
    )
}

pub(super) fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut segment = vec![0xFF, marker];
    segment.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    segment.extend_from_slice(payload);
    segment
}

/// Inserts `segments` right after the encoder's JFIF APP0 segment.
pub(super) fn with_segments(jpeg: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
    assert_eq!(&jpeg[2..4], &[0xFF, 0xE0], "the encoder writes JFIF first");
    let app0_end = 4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    [&jpeg[..app0_end], &segments.concat(), &jpeg[app0_end..]].concat()
}

/// Where the first scan starts, found by walking the segments.
fn start_of_scan(jpeg: &[u8]) -> usize {
    let mut pos = 2;
    loop {
        assert_eq!(jpeg[pos], 0xFF, "segment at {pos}");
        if jpeg[pos + 1] == 0xDA {
            return pos;
        }
        pos += 2 + usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn orientation(bytes: &[u8], codec: Codec) -> Orientation {
    let cursor = std::io::Cursor::new(bytes);
    match codec {
        Codec::Jpeg => image::codecs::jpeg::JpegDecoder::new(cursor)
            .expect("JPEG decoder")
            .orientation(),
        Codec::Png => image::codecs::png::PngDecoder::new(cursor)
            .expect("PNG decoder")
            .orientation(),
        Codec::WebP => image::codecs::webp::WebPDecoder::new(cursor)
            .expect("WebP decoder")
            .orientation(),
        _ => unreachable!(),
    }
    .expect("orientation")
}

fn pixels(bytes: &[u8], codec: Codec) -> Vec<u8> {
    image::load_from_memory_with_format(bytes, codec)
        .expect("decodes")
        .into_rgba8()
        .into_raw()
}

pub(super) fn private_jpeg(big_endian: bool) -> Vec<u8> {
    let mut iptc = b"Photoshop 3.0\08BIM\x04\x04\0\0\0\0\0\x18\x1C\x02\x50\0\x11".to_vec();
    iptc.extend_from_slice(IPTC_BYLINE.as_bytes());
    with_segments(
        &jpeg_file(64, 48),
        &[
            segment(
                0xE1,
                &[EXIF_HEADER, &exif_block(big_endian, Some(6), true)].concat(),
            ),
            segment(
                0xE1,
                &[
                    b"http://ns.adobe.com/xap/1.0/\0".as_slice(),
                    xmp_packet().as_bytes(),
                ]
                .concat(),
            ),
            segment(0xED, &iptc),
            segment(0xFE, COMMENT_TEXT.as_bytes()),
        ],
    )
}

// ---- JPEG -------------------------------------------------------------------------------

#[test]
fn a_jpeg_loses_gps_make_xmp_iptc_and_comment_but_keeps_orientation_pixels_and_scan() {
    let original = private_jpeg(false);
    // The fixture really carries what the test looks for.
    for planted in [
        MAKE,
        MODEL_SERIAL,
        GPS_DATUM,
        XMP_TOOL,
        COMMENT_TEXT,
        IPTC_BYLINE,
    ] {
        assert!(contains(&original, planted), "fixture lacks {planted}");
    }
    assert_eq!(orientation(&original, Codec::Jpeg), Orientation::Rotate90);
    inspect(&original, &InspectLimits::default()).expect("fixture is a valid JPEG");

    let sanitized =
        strip_metadata(Bytes::from(original.clone()), ImageFormat::Jpeg).expect("strip metadata");
    let out = &sanitized.bytes[..];
    for planted in [
        MAKE,
        MODEL_SERIAL,
        GPS_DATUM,
        XMP_TOOL,
        COMMENT_TEXT,
        IPTC_BYLINE,
    ] {
        assert!(!contains(out, planted), "{planted} survived");
    }
    assert!(
        !contains(out, "http://ns.adobe.com/"),
        "an XMP segment survived"
    );
    assert_eq!(sanitized.removed, vec![EXIF, XMP, IPTC, COMMENT]);

    // Orientation 6 reads back, from an EXIF block holding nothing else.
    assert_eq!(orientation(out, Codec::Jpeg), Orientation::Rotate90);
    let mut decoder =
        image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(out)).expect("decoder");
    let exif = decoder
        .exif_metadata()
        .unwrap()
        .expect("EXIF kept for the orientation");
    assert_eq!(exif.len(), 26, "IFD0 with a single entry: {exif:02x?}");

    assert_eq!(pixels(out, Codec::Jpeg), pixels(&original, Codec::Jpeg));
    assert_eq!(
        &out[start_of_scan(out)..],
        &original[start_of_scan(&original)..],
        "scan data through EOI is byte-identical"
    );
    inspect(out, &InspectLimits::default()).expect("still a valid JPEG");
}

#[test]
fn a_big_endian_exif_orientation_is_written_back_big_endian() {
    let sanitized =
        strip_metadata(Bytes::from(private_jpeg(true)), ImageFormat::Jpeg).expect("strip");
    let out = &sanitized.bytes[..];
    assert!(!contains(out, MAKE) && !contains(out, GPS_DATUM));
    assert!(
        out.windows(10).any(|w| w == b"Exif\0\0MM\0*"),
        "Motorola byte order kept"
    );
    assert_eq!(orientation(out, Codec::Jpeg), Orientation::Rotate90);
}

#[test]
fn exif_without_an_orientation_is_removed_entirely() {
    let original = with_segments(
        &jpeg_file(32, 32),
        &[segment(
            0xE1,
            &[EXIF_HEADER, &exif_block(false, None, true)].concat(),
        )],
    );
    let sanitized = strip_metadata(Bytes::from(original), ImageFormat::Jpeg).expect("strip");
    assert_eq!(sanitized.removed, vec![EXIF]);
    assert!(!contains(&sanitized.bytes, "Exif"));
    assert_eq!(
        orientation(&sanitized.bytes, Codec::Jpeg),
        Orientation::NoTransforms
    );
}

#[test]
fn a_jpeg_without_metadata_is_returned_as_the_same_buffer() {
    let clean = Bytes::from(jpeg_file(32, 32));
    let sanitized = strip_metadata(clean.clone(), ImageFormat::Jpeg).expect("strip");
    assert!(sanitized.removed.is_empty());
    assert_eq!(sanitized.bytes.as_ptr(), clean.as_ptr(), "no copy was made");
    assert_eq!(sanitized.bytes.len(), clean.len());
}

#[test]
fn sanitizing_twice_changes_nothing_the_second_time() {
    let once = strip_metadata(Bytes::from(private_jpeg(false)), ImageFormat::Jpeg)
        .expect("first pass")
        .bytes;
    let twice = strip_metadata(once.clone(), ImageFormat::Jpeg).expect("second pass");
    assert!(twice.removed.is_empty(), "{:?}", twice.removed);
    assert_eq!(twice.bytes.as_ptr(), once.as_ptr());
}

#[test]
fn images_appended_after_the_end_of_a_jpeg_are_removed_with_their_exif() {
    let primary = jpeg_file(32, 32);
    let secondary = with_segments(
        &jpeg_file(8, 8),
        &[segment(
            0xE1,
            &[EXIF_HEADER, &exif_block(false, Some(1), true)].concat(),
        )],
    );
    // An MPF index in the primary image pointing at the appended one.
    let mut mpf = b"MPF\0II*\0\x08\0\0\0".to_vec();
    mpf.extend_from_slice(&[0; 16]);
    let original = [with_segments(&primary, &[segment(0xE2, &mpf)]), secondary].concat();

    let sanitized =
        strip_metadata(Bytes::from(original.clone()), ImageFormat::Jpeg).expect("strip");
    assert_eq!(sanitized.removed, vec!["appended images"]);
    assert!(!contains(&sanitized.bytes, MAKE) && !contains(&sanitized.bytes, GPS_DATUM));
    assert_eq!(
        &sanitized.bytes[..],
        &primary[..],
        "exactly the primary image is left"
    );

    let with_trailer = [&primary[..], b"SecretTrailer"].concat();
    let sanitized = strip_metadata(Bytes::from(with_trailer), ImageFormat::Jpeg).expect("strip");
    assert_eq!(sanitized.removed, vec!["trailing data"]);
    assert_eq!(&sanitized.bytes[..], &primary[..]);
}

// ---- PNG --------------------------------------------------------------------------------

#[test]
fn a_png_loses_text_xmp_time_and_exif_chunks_but_keeps_orientation_and_pixels() {
    let plain = png_file(20, 10);
    let ihdr_end = 8 + 25;
    let mut itxt = b"XML:com.adobe.xmp\0\0\0\0\0".to_vec();
    itxt.extend_from_slice(xmp_packet().as_bytes());
    let mut text = b"Author\0".to_vec();
    text.extend_from_slice(COMMENT_TEXT.as_bytes());
    let metadata = [
        write_chunk(*b"eXIf", &exif_block(false, Some(8), true)),
        write_chunk(*b"tEXt", &text),
        write_chunk(*b"iTXt", &itxt),
        write_chunk(*b"tIME", &[0x07, 0xE8, 6, 1, 12, 0, 0]),
    ]
    .concat();
    let original = [&plain[..ihdr_end], &metadata, &plain[ihdr_end..]].concat();
    assert_eq!(orientation(&original, Codec::Png), Orientation::Rotate270);
    inspect(&original, &InspectLimits::default()).expect("fixture is a valid PNG");

    let sanitized = strip_metadata(Bytes::from(original.clone()), ImageFormat::Png).expect("strip");
    let out = &sanitized.bytes[..];
    for planted in [
        MAKE,
        GPS_DATUM,
        XMP_TOOL,
        COMMENT_TEXT,
        "tEXt",
        "iTXt",
        "tIME",
    ] {
        assert!(!contains(out, planted), "{planted} survived");
    }
    assert_eq!(sanitized.removed, vec![EXIF, TEXT_CHUNK, XMP, TIMESTAMP]);
    assert_eq!(orientation(out, Codec::Png), Orientation::Rotate270);
    assert_eq!(pixels(out, Codec::Png), pixels(&original, Codec::Png));
    // The png crate checks every CRC, including the rewritten eXIf chunk's.
    inspect(out, &InspectLimits::default()).expect("still a valid PNG");
    assert_eq!(
        &out[out.len() - plain.len() + ihdr_end..],
        &plain[ihdr_end..],
        "image data chunks are byte-identical"
    );
}

#[test]
fn a_png_without_metadata_is_returned_as_the_same_buffer() {
    let clean = Bytes::from(png_file(8, 8));
    let sanitized = strip_metadata(clean.clone(), ImageFormat::Png).expect("strip");
    assert!(sanitized.removed.is_empty());
    assert_eq!(sanitized.bytes.as_ptr(), clean.as_ptr());
}

// ---- GIF --------------------------------------------------------------------------------

#[test]
fn a_gif_loses_its_comment_and_xmp_but_keeps_looping_and_frames() {
    let plain = animated_gif(3);
    let screen_end = 13 + color_table_len(plain[10]);
    let mut comment = vec![0x21, 0xFE, COMMENT_TEXT.len() as u8];
    comment.extend_from_slice(COMMENT_TEXT.as_bytes());
    comment.push(0);
    let mut xmp = vec![0x21, 0xFF, 11];
    xmp.extend_from_slice(b"XMP DataXMP");
    xmp.extend_from_slice(xmp_packet().as_bytes());
    // Adobe's "magic trailer" that lets sub-block walkers skip the raw packet.
    xmp.push(0x01);
    xmp.extend((0..=255u8).rev());
    xmp.push(0);
    let original = [&plain[..screen_end], &comment, &xmp, &plain[screen_end..]].concat();
    assert_eq!(
        inspect(&original, &InspectLimits::default())
            .expect("fixture is a valid GIF")
            .frames_checked,
        3
    );

    let sanitized = strip_metadata(Bytes::from(original.clone()), ImageFormat::Gif).expect("strip");
    let out = &sanitized.bytes[..];
    assert!(!contains(out, COMMENT_TEXT) && !contains(out, XMP_TOOL));
    assert_eq!(sanitized.removed, vec![COMMENT, XMP]);
    assert!(contains(out, "NETSCAPE2.0"), "looping kept");
    assert_eq!(out, &plain[..], "exactly the encoder's file is left");
}

// ---- WebP -------------------------------------------------------------------------------

#[test]
fn a_webp_loses_exif_and_xmp_and_its_flags_stay_consistent() {
    let bitstream = vp8l_payload(&lossless_webp(16, 8, 4));
    let original = riff_webp(&[
        vp8x(0x10 | VP8X_EXIF | VP8X_XMP, 16, 8),
        riff_chunk(b"VP8L", &bitstream),
        riff_chunk(b"EXIF", &exif_block(false, Some(3), true)),
        riff_chunk(b"XMP ", xmp_packet().as_bytes()),
    ]);
    assert_eq!(orientation(&original, Codec::WebP), Orientation::Rotate180);
    inspect(&original, &InspectLimits::default()).expect("fixture is a valid WebP");

    let sanitized =
        strip_metadata(Bytes::from(original.clone()), ImageFormat::Webp).expect("strip");
    let out = &sanitized.bytes[..];
    assert!(!contains(out, MAKE) && !contains(out, GPS_DATUM) && !contains(out, XMP_TOOL));
    assert_eq!(sanitized.removed, vec![EXIF, XMP]);
    assert_eq!(
        out[20] & (VP8X_EXIF | VP8X_XMP),
        VP8X_EXIF,
        "flags match the chunks"
    );
    assert_eq!(
        u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize,
        out.len() - 8,
        "RIFF size"
    );
    assert_eq!(orientation(out, Codec::WebP), Orientation::Rotate180);
    assert_eq!(pixels(out, Codec::WebP), pixels(&original, Codec::WebP));
    inspect(out, &InspectLimits::default()).expect("still a valid WebP");

    // Without an orientation the EXIF chunk goes too, and so does its flag.
    let no_orientation = riff_webp(&[
        vp8x(0x10 | VP8X_EXIF, 16, 8),
        riff_chunk(b"VP8L", &bitstream),
        riff_chunk(b"EXIF", &exif_block(true, None, true)),
    ]);
    let sanitized = strip_metadata(Bytes::from(no_orientation), ImageFormat::Webp).expect("strip");
    assert_eq!(sanitized.bytes[20] & (VP8X_EXIF | VP8X_XMP), 0);
    assert!(!contains(&sanitized.bytes, "EXIF"));
    inspect(&sanitized.bytes, &InspectLimits::default()).expect("still a valid WebP");
}

#[test]
fn a_simple_webp_is_returned_as_the_same_buffer() {
    let clean = Bytes::from(lossless_webp(8, 8, 2));
    let sanitized = strip_metadata(clean.clone(), ImageFormat::Webp).expect("strip");
    assert!(sanitized.removed.is_empty());
    assert_eq!(sanitized.bytes.as_ptr(), clean.as_ptr());
}

// ---- malformed input --------------------------------------------------------------------

#[test]
fn a_malformed_container_is_an_error_not_a_panic() {
    let jpeg = jpeg_file(16, 16);
    let png = png_file(16, 16);
    let gif = animated_gif(2);
    let webp = lossless_webp(16, 16, 1);
    let cases = [
        (jpeg[..jpeg.len() / 2].to_vec(), ImageFormat::Jpeg),
        (jpeg[..40].to_vec(), ImageFormat::Jpeg),
        (png[..png.len() - 12].to_vec(), ImageFormat::Png),
        (png[..png.len() / 2].to_vec(), ImageFormat::Png),
        (gif[..gif.len() - 1].to_vec(), ImageFormat::Gif),
        (webp[..webp.len() / 2].to_vec(), ImageFormat::Webp),
        (b"not an image at all".to_vec(), ImageFormat::Png),
    ];
    for (bytes, format) in cases {
        let error = strip_metadata(Bytes::from(bytes), format).unwrap_err();
        assert!(error.to_string().starts_with("malformed "), "{error}");
    }
}

// ---- metadata wherever it sits (allow-lists) --------------------------------------------

/// `jpeg` with `segments` spliced in just before its EOI, after the last scan.
fn before_end_of_image(jpeg: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9]);
    [
        &jpeg[..jpeg.len() - 2],
        &segments.concat(),
        &jpeg[jpeg.len() - 2..],
    ]
    .concat()
}

#[test]
fn exif_gps_and_a_comment_after_the_first_scan_are_removed_and_orientation_stays() {
    let header_exif = segment(
        0xE1,
        &[EXIF_HEADER, &exif_block(false, Some(6), false)].concat(),
    );
    let original = before_end_of_image(
        &with_segments(&jpeg_file(32, 32), &[header_exif]),
        &[
            segment(
                0xE1,
                &[EXIF_HEADER, &exif_block(false, Some(1), true)].concat(),
            ),
            segment(0xFE, COMMENT_TEXT.as_bytes()),
        ],
    );
    for planted in [GPS_DATUM, COMMENT_TEXT] {
        assert!(contains(&original, planted), "fixture lacks {planted}");
    }
    inspect(&original, &InspectLimits::default()).expect("fixture is a valid JPEG");

    let sanitized =
        strip_metadata(Bytes::from(original.clone()), ImageFormat::Jpeg).expect("strip");
    let out = &sanitized.bytes[..];
    for planted in [GPS_DATUM, COMMENT_TEXT, MAKE, MODEL_SERIAL] {
        assert!(!contains(out, planted), "{planted} survived");
    }
    assert_eq!(orientation(out, Codec::Jpeg), Orientation::Rotate90);
    assert_eq!(pixels(out, Codec::Jpeg), pixels(&original, Codec::Jpeg));
    inspect(out, &InspectLimits::default()).expect("still a valid JPEG");
}

#[test]
fn a_comment_between_the_scans_of_a_progressive_jpeg_is_removed() {
    let progressive = encoded_jpeg(48, 32, true, jpeg_encoder::SamplingFactor::R_4_2_0);
    let scans: Vec<usize> = (0..progressive.len() - 1)
        .filter(|&i| progressive[i] == 0xFF && progressive[i + 1] == 0xDA)
        .collect();
    assert!(scans.len() > 2, "a progressive file has several scans");
    let second = scans[1];
    let original = [
        &progressive[..second],
        &segment(0xFE, COMMENT_TEXT.as_bytes()),
        &progressive[second..],
    ]
    .concat();
    inspect(&original, &InspectLimits::default()).expect("fixture is a valid JPEG");

    let sanitized =
        strip_metadata(Bytes::from(original.clone()), ImageFormat::Jpeg).expect("strip");
    assert!(
        !contains(&sanitized.bytes, COMMENT_TEXT),
        "the comment survived"
    );
    assert_eq!(sanitized.removed, vec![COMMENT]);
    assert_eq!(&sanitized.bytes[..], &progressive[..]);
}

#[test]
fn stray_bytes_between_jpeg_segments_never_reach_storage() {
    let jpeg = jpeg_file(16, 16);
    let app0_end = 4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    let original = [
        &jpeg[..app0_end],
        COMMENT_TEXT.as_bytes(),
        &jpeg[app0_end..],
    ]
    .concat();
    // The strict decode check refuses them; were they let through, they would be cut.
    assert_eq!(
        inspect(&original, &InspectLimits::default())
            .unwrap_err()
            .reason(),
        "corrupt"
    );
    let sanitized = strip_metadata(Bytes::from(original), ImageFormat::Jpeg).expect("strip");
    assert!(!contains(&sanitized.bytes, COMMENT_TEXT));
    assert_eq!(sanitized.removed, vec![STRAY_DATA]);
    assert_eq!(&sanitized.bytes[..], &jpeg[..]);
}

#[test]
fn a_jfif_thumbnail_is_removed_and_the_jfif_header_kept() {
    let jpeg = jpeg_file(16, 16);
    let app0_end = 4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    let mut jfif = jpeg[6..app0_end].to_vec();
    assert_eq!(jfif.len(), 14, "the encoder writes no thumbnail");
    jfif[12] = 2;
    jfif[13] = 1;
    jfif.extend_from_slice(&[0x42; 6]);
    let original = [&jpeg[..2], &segment(0xE0, &jfif), &jpeg[app0_end..]].concat();
    inspect(&original, &InspectLimits::default()).expect("fixture is a valid JPEG");
    let sanitized = strip_metadata(Bytes::from(original), ImageFormat::Jpeg).expect("strip");
    assert_eq!(&sanitized.bytes[..], &jpeg[..]);
}

#[test]
fn a_legacy_lowercase_exif_chunk_and_a_private_text_chunk_are_removed_from_a_png() {
    let plain = png_file(20, 10);
    let ihdr_end = 8 + 25;
    let mut private = b"PlantedPrivateChunk: ".to_vec();
    private.extend_from_slice(COMMENT_TEXT.as_bytes());
    let original = [
        &plain[..ihdr_end],
        &write_chunk(*b"exIf", &exif_block(false, Some(6), true)),
        &write_chunk(*b"prVt", &private),
        &plain[ihdr_end..],
    ]
    .concat();
    inspect(&original, &InspectLimits::default()).expect("fixture is a valid PNG");

    let sanitized = strip_metadata(Bytes::from(original.clone()), ImageFormat::Png).expect("strip");
    let out = &sanitized.bytes[..];
    for planted in [MAKE, MODEL_SERIAL, GPS_DATUM, COMMENT_TEXT, "exIf", "prVt"] {
        assert!(!contains(out, planted), "{planted} survived");
    }
    assert_eq!(out, &plain[..]);
    assert_eq!(pixels(out, Codec::Png), pixels(&original, Codec::Png));
}

#[test]
fn only_the_chunks_rendering_needs_are_kept_in_a_png() {
    let plain = apng_file(8, 8, 2);
    let ihdr_end = 8 + 25;
    let extra = [
        write_chunk(*b"gAMA", &100_000u32.to_be_bytes()),
        write_chunk(*b"sRGB", &[0]),
        write_chunk(*b"pHYs", &[0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1]),
        write_chunk(*b"bKGD", &[0, 1, 0, 2, 0, 3]),
        write_chunk(*b"hIST", &[0; 4]),
    ]
    .concat();
    let original = [&plain[..ihdr_end], &extra, &plain[ihdr_end..]].concat();
    inspect(&original, &InspectLimits::default()).expect("fixture is a valid APNG");
    let sanitized = strip_metadata(Bytes::from(original), ImageFormat::Png).expect("strip");
    let kept: Vec<[u8; 4]> = png_chunks(&sanitized.bytes)
        .into_iter()
        .map(|(_, kind)| kind)
        .collect();
    let mut expected: Vec<[u8; 4]> = png_chunks(&plain).into_iter().map(|(_, k)| k).collect();
    expected.splice(1..1, [*b"gAMA", *b"sRGB"]);
    assert_eq!(kept, expected);
}

#[test]
fn a_gif_plain_text_extension_is_removed() {
    let plain = animated_gif(2);
    let screen_end = 13 + crate::portrait::formats::gif::color_table_len(plain[10]);
    let mut text = vec![0x21, 0x01, 12];
    text.extend_from_slice(&[0; 12]);
    text.push(COMMENT_TEXT.len() as u8);
    text.extend_from_slice(COMMENT_TEXT.as_bytes());
    text.push(0);
    let original = [&plain[..screen_end], &text, &plain[screen_end..]].concat();
    inspect(&original, &InspectLimits::default()).expect("fixture is a valid GIF");
    let sanitized = strip_metadata(Bytes::from(original), ImageFormat::Gif).expect("strip");
    assert!(!contains(&sanitized.bytes, COMMENT_TEXT));
    assert_eq!(&sanitized.bytes[..], &plain[..]);
}

#[test]
fn unknown_webp_chunks_are_removed_at_the_top_level_and_inside_animation_frames() {
    let bitstream = vp8l_payload(&lossless_webp(16, 8, 4));
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&u24(15));
    frame.extend_from_slice(&u24(7));
    frame.extend_from_slice(&u24(100));
    frame.push(0);
    let clean_frame = [frame.clone(), riff_chunk(b"VP8L", &bitstream)].concat();
    let private_frame = [
        frame,
        riff_chunk(b"VP8L", &bitstream),
        riff_chunk(b"PRIV", COMMENT_TEXT.as_bytes()),
    ]
    .concat();
    let build = |frame: &[u8], extra: bool| {
        let mut chunks = vec![
            vp8x(0x02 | 0x10, 16, 8),
            riff_chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]),
        ];
        if extra {
            chunks.push(riff_chunk(b"NOTE", MAKE.as_bytes()));
        }
        chunks.push(riff_chunk(b"ANMF", frame));
        riff_webp(&chunks)
    };
    let original = build(&private_frame, true);
    inspect(&original, &InspectLimits::default()).expect("fixture is a valid WebP");
    let sanitized = strip_metadata(Bytes::from(original), ImageFormat::Webp).expect("strip");
    assert!(!contains(&sanitized.bytes, COMMENT_TEXT) && !contains(&sanitized.bytes, MAKE));
    assert_eq!(&sanitized.bytes[..], &build(&clean_frame, false)[..]);
    inspect(&sanitized.bytes, &InspectLimits::default()).expect("still a valid WebP");
}
