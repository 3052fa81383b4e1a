//! A small greyscale copy of an image's first frame, averaged from the pixels the decode check
//! decodes anyway. The block-list's perceptual hash is computed from it, so checking an upload
//! against the block-list costs no second decode and no memory beyond this grid (a few KiB),
//! whatever the image's size.

/// The thumbnail's largest side, in pixels: twice the 16×16 the hash's DCT reads, so the
/// hasher's own resize still has detail to work from.
pub const THUMBNAIL_SIDE: u32 = 32;

/// A greyscale image at most [`THUMBNAIL_SIDE`] pixels a side; each of its pixels is the mean
/// luma (ITU-R BT.601, the weights JPEG's Y channel uses) of the source pixels in its cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Thumbnail {
    /// The thumbnail as an image the hasher reads.
    pub fn to_image(&self) -> image::GrayImage {
        image::GrayImage::from_raw(self.width, self.height, self.pixels.clone())
            .expect("the pixel count matches the dimensions")
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }
}

/// BT.601 luma of an sRGB pixel, rounded.
pub(super) fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000) as u8
}

/// Sums source pixels into thumbnail cells as rows are decoded, in any order.
pub(super) struct Averager {
    source_width: u64,
    source_height: u64,
    width: u32,
    height: u32,
    sums: Vec<u64>,
    counts: Vec<u32>,
    /// The cell column of each source column, computed once.
    columns: Vec<u16>,
}

impl Averager {
    pub(super) fn new(source_width: u32, source_height: u32) -> Self {
        let width = source_width.clamp(1, THUMBNAIL_SIDE);
        let height = source_height.clamp(1, THUMBNAIL_SIDE);
        let cells = (width * height) as usize;
        let columns = (0..u64::from(source_width))
            .map(|x| (x * u64::from(width) / u64::from(source_width)) as u16)
            .collect();
        Self {
            source_width: u64::from(source_width),
            source_height: u64::from(source_height).max(1),
            width,
            height,
            sums: vec![0; cells],
            counts: vec![0; cells],
            columns,
        }
    }

    /// Adds source row `y`; `lumas` yields the luma of pixels `x0`, `x0 + step`, … of it.
    pub(super) fn add_row(&mut self, y: u32, x0: u32, step: u32, lumas: impl Iterator<Item = u8>) {
        if u64::from(y) >= self.source_height {
            return;
        }
        let row = (u64::from(y) * u64::from(self.height) / self.source_height) as usize;
        let base = row * self.width as usize;
        let columns = self
            .columns
            .iter()
            .skip(x0 as usize)
            .step_by(step.max(1) as usize);
        for (column, value) in columns.zip(lumas) {
            let cell = base + usize::from(*column);
            self.sums[cell] += u64::from(value);
            self.counts[cell] += 1;
        }
    }

    /// Adds source row `y` of `pixels`, `channels` bytes a pixel (1 grey, 2 grey+alpha, 3 RGB,
    /// 4 RGBA), every pixel present.
    pub(super) fn add_pixels(&mut self, y: u32, pixels: &[u8], channels: usize) {
        self.add_row(y, 0, 1, lumas(pixels, channels));
    }

    /// The averages; `None` when some cell saw no pixel (the decoder delivered fewer rows than
    /// the header promised).
    pub(super) fn finish(self) -> Option<Thumbnail> {
        debug_assert_eq!(self.columns.len() as u64, self.source_width);
        let pixels = self
            .sums
            .iter()
            .zip(&self.counts)
            .map(|(sum, count)| {
                (*count > 0).then(|| ((sum + u64::from(*count) / 2) / u64::from(*count)) as u8)
            })
            .collect::<Option<Vec<u8>>>()?;
        Some(Thumbnail {
            width: self.width,
            height: self.height,
            pixels,
        })
    }
}

/// The luma of each pixel of `pixels`, `channels` bytes a pixel; alpha is ignored (the hash
/// reads the picture, not its transparency).
pub(super) fn lumas(pixels: &[u8], channels: usize) -> impl Iterator<Item = u8> + '_ {
    pixels.chunks_exact(channels.max(1)).map(move |p| match p {
        [grey] | [grey, _] => *grey,
        [r, g, b] | [r, g, b, _] => luma(*r, *g, *b),
        _ => 0,
    })
}

/// Where the rows of an interlaced GIF frame land, in the order they are stored: every 8th row
/// from 0, every 8th from 4, every 4th from 2, then every 2nd from 1.
pub(super) fn gif_interlaced_row(index: u32, height: u32) -> u32 {
    let mut index = index;
    for (start, step) in [(0, 8), (4, 8), (2, 4), (1, 2)] {
        let rows = height.saturating_sub(start).div_ceil(step);
        if index < rows {
            return start + index * step;
        }
        index -= rows;
    }
    height
}

/// Adam7's passes as (x offset, x step, y offset, y step).
const ADAM7: [(u32, u32, u32, u32); 7] = [
    (0, 8, 0, 8),
    (4, 8, 0, 8),
    (0, 4, 4, 8),
    (2, 4, 0, 4),
    (0, 2, 2, 4),
    (1, 2, 0, 2),
    (0, 1, 1, 2),
];

/// Follows an interlaced PNG's rows through Adam7's passes (the decoder does not say where a
/// pass's row lies), skipping empty passes as the decoder does.
pub(super) struct Adam7Rows {
    width: u32,
    height: u32,
    pass: usize,
    line: u32,
}

/// A PNG row's place: pass (1–7) and line within it, and where its pixels land in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowPlace {
    pub(super) pass: u8,
    pub(super) line: u32,
    pub(super) y: u32,
    pub(super) x0: u32,
    pub(super) step: u32,
}

impl Adam7Rows {
    pub(super) fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            pass: 0,
            line: 0,
        }
    }
}

impl Iterator for Adam7Rows {
    type Item = RowPlace;

    fn next(&mut self) -> Option<RowPlace> {
        while let Some(&(x0, x_step, y0, y_step)) = ADAM7.get(self.pass) {
            let samples = self.width.saturating_sub(x0).div_ceil(x_step);
            let lines = self.height.saturating_sub(y0).div_ceil(y_step);
            if samples > 0 && self.line < lines {
                let place = RowPlace {
                    pass: self.pass as u8 + 1,
                    line: self.line,
                    y: y0 + self.line * y_step,
                    x0,
                    step: x_step,
                };
                self.line += 1;
                return Some(place);
            }
            self.pass += 1;
            self.line = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cell_is_the_mean_of_its_pixels() {
        // 4×2 source, left half black, right half white, into a 4×2 grid: exact copy.
        let mut averager = Averager::new(4, 2);
        for y in 0..2 {
            averager.add_pixels(y, &[0, 0, 255, 255], 1);
        }
        let thumbnail = averager.finish().unwrap();
        assert_eq!(
            thumbnail.to_image().into_raw(),
            [0, 0, 255, 255, 0, 0, 255, 255]
        );

        // 64×64 of RGB (255, 0, 0) and (0, 0, 255) checks: every cell averages the two.
        let mut averager = Averager::new(64, 64);
        for y in 0..64 {
            let row: Vec<u8> = (0..64u32)
                .flat_map(|x| {
                    if (x + y) % 2 == 0 {
                        [255, 0, 0]
                    } else {
                        [0, 0, 255]
                    }
                })
                .collect();
            averager.add_pixels(y, &row, 3);
        }
        let thumbnail = averager.finish().unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (32, 32));
        let mean = (u32::from(luma(255, 0, 0)) + u32::from(luma(0, 0, 255))).div_ceil(2);
        assert!(thumbnail.pixels.iter().all(|p| u32::from(*p) == mean));
    }

    #[test]
    fn a_missing_row_leaves_no_thumbnail() {
        let mut averager = Averager::new(8, 8);
        for y in 0..7 {
            averager.add_pixels(y, &[9; 8], 1);
        }
        assert_eq!(averager.finish(), None);
    }

    #[test]
    fn interlaced_rows_cover_every_row_once() {
        for height in [1, 2, 3, 7, 8, 9, 17, 100] {
            let mut rows: Vec<u32> = (0..height).map(|i| gif_interlaced_row(i, height)).collect();
            rows.sort_unstable();
            assert_eq!(
                rows,
                (0..height).collect::<Vec<_>>(),
                "GIF, height {height}"
            );

            for width in [1, 3, 8, 13] {
                let mut seen = vec![0u32; (width * height) as usize];
                for place in Adam7Rows::new(width, height) {
                    let mut x = place.x0;
                    while x < width {
                        seen[(place.y * width + x) as usize] += 1;
                        x += place.step;
                    }
                }
                assert!(seen.iter().all(|n| *n == 1), "Adam7, {width}×{height}");
            }
        }
    }
}
