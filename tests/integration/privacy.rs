//! What the stored object holds, through the real binary: metadata hidden where the old walkers
//! did not look is gone, the orientation stays, and a decompression bomb is refused.

use std::path::{Path, PathBuf};

use portrait_bot::portrait::formats::png::write_chunk;

use crate::cli::portrait_bot;
use testkit::images::{self, contains, find, PLANTED_COMMENT, PLANTED_LATITUDE, PLANTED_MAKE};

/// Runs `portrait-bot upload FILE` in `dir` on the defaults (SQLite file, local objects).
fn upload(dir: &Path, file: &str) -> (bool, String, String) {
    let output = portrait_bot(dir)
        .args([
            "upload",
            file,
            "--guild",
            "1",
            "--owner",
            "2",
            "--character",
            "X",
        ])
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn stored_objects(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if !path
                .components()
                .any(|part| part.as_os_str() == ".portrait-meta")
            {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&dir.join("data/objects"), &mut found);
    found
}

/// The one object an upload stored.
fn the_stored_object(dir: &Path, stdout: &str) -> Vec<u8> {
    let key = stdout
        .lines()
        .find_map(|line| line.strip_prefix("key:"))
        .unwrap_or_else(|| panic!("no key in:\n{stdout}"))
        .trim();
    std::fs::read(dir.join("data/objects").join(key)).expect("the stored object")
}

/// The EXIF segment of [`images::jpeg_with_gps`] (make, orientation 6, GPS position).
fn planted_exif_segment() -> Vec<u8> {
    let phone = images::jpeg_with_gps(8, 8);
    let start = find(&phone, b"\xFF\xE1").expect("an APP1 segment");
    let length = usize::from(u16::from_be_bytes([phone[start + 2], phone[start + 3]]));
    phone[start..start + 2 + length].to_vec()
}

fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut segment = vec![0xFF, marker];
    segment.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    segment.extend_from_slice(payload);
    segment
}

#[test]
fn exif_gps_and_a_comment_placed_after_the_scan_of_an_uploaded_jpeg_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let plain = images::jpeg(64, 48);
    // An EXIF block holding only Orientation 6 where viewers read it, and the phone's full
    // EXIF (make, GPS) and a comment after the scan, just before the end of the image.
    let orientation_only = jpeg_segment(
        0xE1,
        b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0",
    );
    let end = plain.len() - 2;
    let upload_bytes = [
        &plain[..2],
        &orientation_only,
        &plain[2..end],
        &planted_exif_segment(),
        &jpeg_segment(0xFE, PLANTED_COMMENT.as_bytes()),
        &plain[end..],
    ]
    .concat();
    for planted in [
        PLANTED_MAKE.as_bytes(),
        &PLANTED_LATITUDE,
        PLANTED_COMMENT.as_bytes(),
    ] {
        assert!(contains(&upload_bytes, planted), "the fixture carries it");
    }
    std::fs::write(dir.path().join("phone.jpg"), &upload_bytes).unwrap();

    let (ok, stdout, stderr) = upload(dir.path(), "phone.jpg");
    assert!(ok, "upload failed:\n{stdout}\n{stderr}");
    let stored = the_stored_object(dir.path(), &stdout);
    assert!(
        !contains(&stored, PLANTED_MAKE.as_bytes()),
        "camera make stored"
    );
    assert!(!contains(&stored, &PLANTED_LATITUDE), "GPS latitude stored");
    assert!(!contains(&stored, b"\x88\x25"), "GPS IFD pointer stored");
    assert!(
        !contains(&stored, PLANTED_COMMENT.as_bytes()),
        "comment stored"
    );
    assert_eq!(
        images::jpeg_orientation(&stored),
        Some(6),
        "orientation kept"
    );
    assert_eq!(
        images::jpeg_scan(&stored),
        images::jpeg_scan(&plain),
        "the image data is the upload's, byte for byte"
    );
}

#[test]
fn a_legacy_exif_chunk_and_a_private_text_chunk_in_an_uploaded_png_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let plain = images::png(64, 48);
    let exif = planted_exif_segment();
    let tiff = &exif[4 + 6..];
    let private_text = format!("diary: {PLANTED_COMMENT}");
    let ihdr_end = 8 + 25;
    let upload_bytes = [
        &plain[..ihdr_end],
        &write_chunk(*b"exIf", tiff),
        &write_chunk(*b"prVt", private_text.as_bytes()),
        &plain[ihdr_end..],
    ]
    .concat();
    std::fs::write(dir.path().join("art.png"), &upload_bytes).unwrap();

    let (ok, stdout, stderr) = upload(dir.path(), "art.png");
    assert!(ok, "upload failed:\n{stdout}\n{stderr}");
    let stored = the_stored_object(dir.path(), &stdout);
    for planted in [
        PLANTED_MAKE.as_bytes(),
        &PLANTED_LATITUDE,
        PLANTED_COMMENT.as_bytes(),
        b"exIf",
        b"prVt",
    ] {
        assert!(
            !contains(&stored, planted),
            "{} stored",
            String::from_utf8_lossy(planted)
        );
    }
    assert_eq!(stored, plain, "exactly the encoder's PNG is stored");
}

/// A zlib stream inflating to `len` zero bytes in a few bits per 258 bytes (fixed Huffman
/// codes: a literal, then copies of 258 bytes at distance 1).
fn zlib_zeros(len: usize) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let (mut acc, mut count) = (0u32, 0u32);
    let mut put = |out: &mut Vec<u8>, value: u32, bits: u32| {
        acc |= value << count;
        count += bits;
        while count >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            count -= 8;
        }
    };
    let code = |value: u32, bits: u32| value.reverse_bits() >> (32 - bits);
    put(&mut out, 1, 1); // final block
    put(&mut out, 1, 2); // fixed Huffman codes
    put(&mut out, code(0x30, 8), 8); // literal 0
    for _ in 0..(len - 1) / 258 {
        put(&mut out, code(0xC5, 8), 8); // length 258
        put(&mut out, 0, 5); // distance 1
    }
    put(&mut out, 0, 7); // end of block
    put(&mut out, 0, 7);
    let b = (len % 65521) as u32;
    out.extend_from_slice(&((b << 16) | 1).to_be_bytes());
    out
}

#[test]
fn a_png_whose_colour_profile_inflates_to_a_gigabyte_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let plain = images::png(64, 48);
    let gigabyte = 1 + 258 * ((1 << 30) / 258);
    let mut iccp = b"bomb\0\0".to_vec();
    iccp.extend_from_slice(&zlib_zeros(gigabyte));
    let ihdr_end = 8 + 25;
    let upload_bytes = [
        &plain[..ihdr_end],
        &write_chunk(*b"iCCP", &iccp),
        &plain[ihdr_end..],
    ]
    .concat();
    assert!(
        upload_bytes.len() < 10 * 1024 * 1024,
        "under the upload limit"
    );
    std::fs::write(dir.path().join("bomb.png"), &upload_bytes).unwrap();

    let (ok, stdout, stderr) = upload(dir.path(), "bomb.png");
    assert!(!ok, "the bomb was accepted:\n{stdout}");
    assert!(
        stderr.contains("colour profile larger than 1.0 MiB"),
        "{stderr}"
    );
    let stored = stored_objects(dir.path());
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
}
