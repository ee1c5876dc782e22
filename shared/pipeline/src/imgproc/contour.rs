//! `cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)` as OpenCV 4.13 computes it,
//! because FaceFusion's face debugger outlines the face mask with exactly this call and then draws
//! every returned point (see `imgproc::draw`).
//!
//! OpenCV implements Suzuki & Abe's border following (1985) with its own conventions, which decide
//! every point of the result:
//!
//! * the mask is padded with one background pixel on each side, so borders touching the image edge
//!   are traced on the image's own outer pixels;
//! * rows are scanned top to bottom, left to right; a foreground pixel after a background one
//!   starts an outer border, a background pixel after a foreground one that is not already the
//!   right edge of a traced border starts a hole border (at that foreground pixel);
//! * from the start, the first border pixel is searched clockwise from the background pixel that
//!   revealed the border, then the border is followed by searching counter-clockwise around each
//!   pixel, starting just past the pixel it came from;
//! * with `RETR_LIST` every border gets the same label, and the contours come out in the reverse of
//!   the order they were found.
//!
//! Written here from the algorithm rather than taken from a crate: `imageproc::contours` also
//! implements Suzuki–Abe, but without the padding (a region touching the left edge starts no outer
//! border there, and one touching the right edge is cut short) and in discovery order, so its
//! lists differ from OpenCV's exactly where masks reach the frame edge, as face masks often do.

use crate::raster::Raster;

/// A closed border as OpenCV returns it with `CHAIN_APPROX_NONE`: every border pixel `[x, y]` in
/// tracing order, consecutive points 8-neighbours (a single point for an isolated pixel).
pub type Contour = Vec<[i32; 2]>;

/// OpenCV's chain codes: code 0 steps +x, and each next code turns 45° counter-clockwise on screen
/// (y grows downwards), so code 2 steps −y and code 6 steps +y.
pub const CHAIN_STEPS: [[i32; 2]; 8] = [[1, 0], [1, -1], [0, -1], [-1, -1], [-1, 0], [-1, 1], [0, 1], [1, 1]];

/// Pixel labels during the scan. OpenCV's `RETR_LIST` tracer uses one border number for all
/// contours, so Suzuki–Abe's labels reduce to these four.
const BACKGROUND: u8 = 0;
const UNVISITED: u8 = 1;
const VISITED: u8 = 2;
/// A border pixel whose right neighbour was examined and found to be background (Suzuki–Abe's
/// negative label): it never starts a hole border and keeps this label.
const RIGHT_EDGE: u8 = 3;

/// The contours of the nonzero pixels of a single-channel mask, point for point and in the order
/// of `cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)`: outer borders and hole
/// borders alike, the last one found first.
pub fn find_contours(mask: &Raster<u8>) -> Vec<Contour> {
    assert_eq!(mask.channels, 1, "find_contours takes a single-channel mask");
    let mut labels = Labels::padded(mask);
    let mut contours = Vec::new();
    for y in 1..=mask.height {
        for x in 1..=mask.width {
            if let Some((start, hole)) = labels.border_start(x, y) {
                contours.push(labels.follow_border(start, hole));
            }
        }
    }
    contours.reverse();
    contours
}

/// The mask's labels with a one-pixel background frame, row-major.
struct Labels {
    data: Vec<u8>,
    stride: usize,
}

impl Labels {
    fn padded(mask: &Raster<u8>) -> Self {
        let stride = mask.width + 2;
        let mut data = vec![BACKGROUND; stride * (mask.height + 2)];
        for (y, row) in mask.data.chunks_exact(mask.width.max(1)).take(mask.height).enumerate() {
            let padded_row = &mut data[(y + 1) * stride + 1..][..mask.width];
            for (label, &value) in padded_row.iter_mut().zip(row) {
                *label = if value != 0 { UNVISITED } else { BACKGROUND };
            }
        }
        Self { data, stride }
    }

    /// Where a border starts at padded position (x, y), judged from the pixel and its left
    /// neighbour: the index of its first pixel and whether it is a hole border.
    fn border_start(&self, x: usize, y: usize) -> Option<(usize, bool)> {
        let here = y * self.stride + x;
        match (self.data[here - 1], self.data[here]) {
            (BACKGROUND, UNVISITED) => Some((here, false)),
            (UNVISITED | VISITED, BACKGROUND) => Some((here - 1, true)),
            _ => None,
        }
    }

    fn neighbour(&self, index: usize, code: usize) -> usize {
        let [dx, dy] = CHAIN_STEPS[code % 8];
        (index as isize + dx as isize + dy as isize * self.stride as isize) as usize
    }

    /// The image coordinates of a padded index.
    fn point(&self, index: usize) -> [i32; 2] {
        [(index % self.stride) as i32 - 1, (index / self.stride) as i32 - 1]
    }

    /// Follows the border that starts at `start` and labels its pixels (Suzuki–Abe step 3).
    fn follow_border(&mut self, start: usize, hole: bool) -> Contour {
        // The background pixel that revealed the border: left of an outer start, right of a hole's.
        let revealing = if hole { 0 } else { 4 };
        let first_step = (1..8).map(|turn| (revealing + 8 - turn) % 8).find(|&code| self.is_set(start, code));
        let Some(first_step) = first_step else {
            // An isolated pixel is its own contour; its right neighbour is background.
            self.data[start] = RIGHT_EDGE;
            return vec![self.point(start)];
        };
        // The trace ends when it is back at the start about to step to `second` again.
        let second = self.neighbour(start, first_step);
        let mut contour = Vec::new();
        let mut point = self.point(start);
        let (mut current, mut back) = (start, first_step);
        loop {
            let (code, passed_east) = self.next_counter_clockwise(current, back);
            self.label_border_pixel(current, passed_east);
            contour.push(point);
            let [dx, dy] = CHAIN_STEPS[code];
            point = [point[0] + dx, point[1] + dy];
            let next = self.neighbour(current, code);
            if next == start && current == second {
                return contour;
            }
            (current, back) = (next, (code + 4) % 8);
        }
    }

    fn is_set(&self, index: usize, code: usize) -> bool {
        self.data[self.neighbour(index, code)] != BACKGROUND
    }

    /// The first foreground neighbour counter-clockwise after direction `back` (the pixel the trace
    /// came from, itself foreground, so the search always succeeds). Also tells whether the search
    /// went past the east neighbour, which then is background.
    fn next_counter_clockwise(&self, index: usize, back: usize) -> (usize, bool) {
        let turn = (1..=8).find(|&turn| self.is_set(index, back + turn)).expect("the previous pixel is foreground");
        ((back + turn) % 8, back + turn > 8)
    }

    fn label_border_pixel(&mut self, index: usize, east_is_background: bool) {
        if east_is_background {
            self.data[index] = RIGHT_EDGE;
        } else if self.data[index] == UNVISITED {
            self.data[index] = VISITED;
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! The OpenCV ground truth in `tests/fixtures/contour/` (made by its `generate.py`).

    use std::path::PathBuf;

    use super::{Contour, CHAIN_STEPS};
    use crate::raster::Raster;

    pub const CASES: [&str; 7] = ["ellipse", "rotated_box", "notched_blob", "border", "spurs", "blobs", "obama"];

    pub fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contour")
    }

    pub fn json(file: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(dir().join(file)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A single-channel PNG of the fixtures as a raster.
    pub fn gray(file: &str) -> Raster<u8> {
        let image = image::open(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}")).to_luma8();
        let (width, height) = image.dimensions();
        Raster::from_vec(width as usize, height as usize, 1, image.into_raw())
    }

    /// The contours OpenCV returned for `case`, decoded from start point + chain code.
    pub fn contours(case: &str) -> Vec<Contour> {
        let all = json("contours.json");
        let listed = all[case]["contours"].as_array().unwrap_or_else(|| panic!("no case {case}"));
        listed
            .iter()
            .map(|entry| {
                let mut point = [entry[0].as_i64().unwrap() as i32, entry[1].as_i64().unwrap() as i32];
                let mut contour = vec![point];
                for code in entry[2].as_str().unwrap().bytes() {
                    let [dx, dy] = CHAIN_STEPS[(code - b'0') as usize];
                    point = [point[0] + dx, point[1] + dy];
                    contour.push(point);
                }
                contour
            })
            .collect()
    }

    /// Pixels where two single-channel rasters of one size differ.
    pub fn mismatches(a: &Raster<u8>, b: &Raster<u8>) -> usize {
        assert_eq!((a.width, a.height, a.channels), (b.width, b.height, b.channels));
        a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> Raster<u8> {
        let data = rows.iter().flat_map(|row| row.bytes().map(|b| if b == b'#' { 255 } else { 0 })).collect();
        Raster::from_vec(rows[0].len(), rows.len(), 1, data)
    }

    #[test]
    fn contours_match_opencv_point_for_point() {
        for case in fixtures::CASES {
            let found = find_contours(&fixtures::gray(&format!("{case}.png")));
            let expected = fixtures::contours(case);
            assert_eq!(found.len(), expected.len(), "{case}: contour count");
            for (i, (ours, theirs)) in found.iter().zip(&expected).enumerate() {
                assert_eq!(ours, theirs, "{case}: contour {i}");
            }
        }
    }

    #[test]
    fn contour_of_a_square_and_its_hole() {
        // The outer border runs down the left side first; the hole starts left of its first pixel.
        let found = find_contours(&mask(&["####", "#..#", "####"]));
        let outer = vec![[0, 0], [0, 1], [0, 2], [1, 2], [2, 2], [3, 2], [3, 1], [3, 0], [2, 0], [1, 0]];
        let hole = vec![[0, 1], [1, 0], [2, 0], [3, 1], [2, 2], [1, 2]];
        assert_eq!(found, vec![hole, outer]);
    }

    #[test]
    fn contour_of_lone_pixels_and_empty_masks() {
        assert_eq!(find_contours(&mask(&["#.", "..", ".#"])), vec![vec![[1, 2]], vec![[0, 0]]]);
        assert!(find_contours(&mask(&["...", "..."])).is_empty());
        assert!(find_contours(&Raster::new(0, 0, 1)).is_empty());
        // A one-pixel line is walked out and back.
        assert_eq!(find_contours(&mask(&["###"])), vec![vec![[0, 0], [1, 0], [2, 0], [1, 0]]]);
    }
}
