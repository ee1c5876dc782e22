//! OpenCV's 8-connected drawing as FaceFusion's face debugger calls it — `cv2.line`,
//! `cv2.rectangle` and `cv2.drawContours` with thickness ≥ 2, and filled `cv2.circle` — with
//! integer coordinates (shift 0), pixel for pixel as opencv-python 4.13 draws them (drawing.cpp;
//! checked against that build by the fixtures in `tests/fixtures/contour/`).
//!
//! OpenCV draws a thick segment in three steps:
//!
//! * if an end lies off the image, the segment is first clipped, in whole pixels, to the image
//!   grown by `thickness` on each side (new in OpenCV 4.13; 4.12 had no such step);
//! * a quadrilateral: the segment widened by `thickness / 2` on each side, its corners in 16.16
//!   fixed point (`XY_SHIFT = 16`), the offset rounded half to even from a double computation. It
//!   is filled by `FillConvexPoly`: its edges are first drawn as fixed-point 8-connected lines
//!   (clipped to the image first, so a clipped edge restarts its steps at the border), then every
//!   row between the two edge chains is filled, the chains' x advancing by a rounded per-row slope;
//! * a filled midpoint circle of radius `(thickness + 1) / 2` (integer division) at each end, as
//!   its round cap. Thickness 2 therefore gives a plus-shaped cap of 5 pixels.
//!
//! `cv2.drawContours(img, contours, -1, colour, t)` draws every contour as a closed polyline of
//! such segments, and `cv2.rectangle` its four sides. Thickness 1 takes another path (a Bresenham
//! line iterator) that the debugger never uses, so it is not offered here.

use crate::imgproc::contour::Contour;
use crate::raster::Raster;

const XY_SHIFT: u32 = 16;
const XY_ONE: i64 = 1 << XY_SHIFT;
const XY_HALF: i64 = XY_ONE >> 1;

/// `cv2.line(img, from, to, colour, thickness)` for thickness ≥ 2.
pub fn line(img: &mut Raster<u8>, from: [i32; 2], to: [i32; 2], color: &[u8], thickness: u32) {
    Canvas::new(img, color).thick_line(from, to, thickness);
}

/// `cv2.rectangle(img, a, b, colour, thickness)` for thickness ≥ 2: the closed outline through
/// a, (b.x, a.y), b, (a.x, b.y), drawn from the last corner on, as OpenCV's `PolyLine` does.
pub fn rectangle(img: &mut Raster<u8>, a: [i32; 2], b: [i32; 2], color: &[u8], thickness: u32) {
    let corners = [a, [b[0], a[1]], b, [a[0], b[1]]];
    Canvas::new(img, color).closed_polyline(&corners, thickness);
}

/// `cv2.circle(img, centre, radius, colour, -1)`: OpenCV's filled midpoint circle.
pub fn filled_circle(img: &mut Raster<u8>, centre: [i32; 2], radius: i32, color: &[u8]) {
    Canvas::new(img, color).filled_circle(centre, radius);
}

/// `cv2.drawContours(img, contours, -1, colour, thickness)` for thickness ≥ 2: each contour as a
/// closed polyline (a single point as one round cap).
pub fn draw_contours(img: &mut Raster<u8>, contours: &[Contour], color: &[u8], thickness: u32) {
    let mut canvas = Canvas::new(img, color);
    for contour in contours {
        canvas.closed_polyline(contour, thickness);
    }
}

/// A point in OpenCV's 16.16 fixed point.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Fixed {
    x: i64,
    y: i64,
}

impl Fixed {
    fn from_pixel(p: [i32; 2]) -> Self {
        Self { x: (p[0] as i64) << XY_SHIFT, y: (p[1] as i64) << XY_SHIFT }
    }

    fn offset(self, dx: i64, dy: i64) -> Self {
        Self { x: self.x + dx, y: self.y + dy }
    }
}

/// The image and colour being drawn with; every write is clipped to the image.
struct Canvas<'a> {
    img: &'a mut Raster<u8>,
    color: &'a [u8],
}

impl<'a> Canvas<'a> {
    fn new(img: &'a mut Raster<u8>, color: &'a [u8]) -> Self {
        assert!(color.len() <= img.channels, "a {}-channel colour for a {}-channel image", color.len(), img.channels);
        Self { img, color }
    }

    fn put(&mut self, x: i64, y: i64) {
        self.span(y, x, x);
    }

    /// Pixels x0..=x1 of row y, clipped to the image; nothing when x0 > x1.
    fn span(&mut self, y: i64, x0: i64, x1: i64) {
        let (width, height) = (self.img.width as i64, self.img.height as i64);
        if y < 0 || y >= height || x1 < 0 || x0 >= width {
            return;
        }
        let channels = self.img.channels;
        let row = self.img.row_mut(y as usize);
        for x in x0.max(0)..=x1.min(width - 1) {
            row[x as usize * channels..][..self.color.len()].copy_from_slice(self.color);
        }
    }

    fn closed_polyline(&mut self, points: &[[i32; 2]], thickness: u32) {
        let Some(&last) = points.last() else { return };
        let mut previous = last;
        for &point in points {
            self.thick_line(previous, point, thickness);
            previous = point;
        }
    }

    /// OpenCV's `ThickLine` at shift 0 with both ends capped (a closed polyline caps every vertex
    /// either way, so the union of pixels is the same).
    fn thick_line(&mut self, from: [i32; 2], to: [i32; 2], thickness: u32) {
        assert!(thickness >= 2, "thickness 1 is drawn by another algorithm");
        let [from, to] = self.clip_to_margin(from, to, thickness);
        let (a, b) = (Fixed::from_pixel(from), Fixed::from_pixel(to));
        let half_width = (thickness as i64) << (XY_SHIFT - 1);
        if let Some([dx, dy]) = widening(a, b, half_width, thickness % 2 == 1) {
            self.fill_convex(&[a.offset(dx, dy), a.offset(-dx, -dy), b.offset(-dx, -dy), b.offset(dx, dy)]);
        }
        let cap_radius = ((half_width + XY_HALF) >> XY_SHIFT) as i32;
        self.filled_circle(from, cap_radius);
        self.filled_circle(to, cap_radius);
    }

    /// OpenCV 4.13's first step of `ThickLine` at shift 0: a segment with an end off the image is
    /// clipped, in whole pixels, to the image grown by `thickness` on every side, so that far-off
    /// ends cannot overflow the fixed point. This moves ends (and so the drawn caps and slopes),
    /// which is why it is reproduced; the verdict is ignored, as OpenCV does.
    fn clip_to_margin(&self, from: [i32; 2], to: [i32; 2], thickness: u32) -> [[i32; 2]; 2] {
        let (width, height) = (self.img.width as i64, self.img.height as i64);
        let inside = |p: [i32; 2]| (0..width).contains(&(p[0] as i64)) && (0..height).contains(&(p[1] as i64));
        if inside(from) && inside(to) {
            return [from, to];
        }
        let margin = thickness as i64;
        let grown = |p: [i32; 2]| Fixed { x: p[0] as i64 + margin, y: p[1] as i64 + margin };
        let (a, b, _) = clip_line([width + 2 * margin, height + 2 * margin], grown(from), grown(to));
        let back = |p: Fixed| [(p.x - margin) as i32, (p.y - margin) as i32];
        [back(a), back(b)]
    }

    /// OpenCV's `FillConvexPoly` for fixed-point vertices (shift 16, 8-connected): the outline,
    /// then the rows between the chain going forward and the chain going backward from the top
    /// vertex.
    fn fill_convex(&mut self, v: &[Fixed]) {
        let mut previous = v[v.len() - 1];
        for &p in v {
            self.fixed_line(previous, p);
            previous = p;
        }
        let row_of = |y: i64| (y + XY_HALF) >> XY_SHIFT;
        let top = (0..v.len()).min_by_key(|&i| (v[i].y, i)).expect("a polygon has vertices");
        let (x_min, x_max) = v.iter().fold((i64::MAX, i64::MIN), |(lo, hi), p| (lo.min(p.x), hi.max(p.x)));
        let y_max = v.iter().map(|p| p.y).max().unwrap_or(0);
        let (x_min, x_max, y_min, y_max) = (row_of(x_min), row_of(x_max), row_of(v[top].y), row_of(y_max));
        let (width, height) = (self.img.width as i64, self.img.height as i64);
        if v.len() < 3 || x_max < 0 || y_max < 0 || x_min >= width || y_min >= height {
            return;
        }
        let mut walk = ChainWalk::new(v, top, y_min);
        for y in y_min..=y_max.min(height - 1) {
            let Some([left, right]) = walk.span_at(y) else { break };
            if y >= 0 {
                self.span(y, (left + XY_HALF) >> XY_SHIFT, (right + XY_HALF) >> XY_SHIFT);
            }
            walk.advance();
        }
    }

    /// OpenCV's `Line2`: an 8-connected line between fixed-point ends, clipped to the image first
    /// (which moves a clipped end along the line, so it is not the same as dropping pixels).
    fn fixed_line(&mut self, a: Fixed, b: Fixed) {
        let bounds = [(self.img.width as i64) << XY_SHIFT, (self.img.height as i64) << XY_SHIFT];
        let (mut a, mut b, visible) = clip_line(bounds, a, b);
        if !visible {
            return;
        }
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let x_major = dx.abs() > dy.abs();
        // Step along the major axis in increasing order.
        if (x_major && dx < 0) || (!x_major && dy < 0) {
            (a, b) = (b, a);
        }
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        self.put((b.x + XY_HALF) >> XY_SHIFT, (b.y + XY_HALF) >> XY_SHIFT);
        let (mut x, mut y) = (a.x + XY_HALF, a.y + XY_HALF);
        if x_major {
            let y_step = (dy << XY_SHIFT) / (dx | 1);
            x >>= XY_SHIFT;
            for _ in 0..=((b.x - a.x) >> XY_SHIFT) {
                self.put(x, y >> XY_SHIFT);
                x += 1;
                y += y_step;
            }
        } else {
            let x_step = (dx << XY_SHIFT) / (dy | 1);
            y >>= XY_SHIFT;
            for _ in 0..=((b.y - a.y) >> XY_SHIFT) {
                self.put(x >> XY_SHIFT, y);
                x += x_step;
                y += 1;
            }
        }
    }

    /// OpenCV's filled `Circle`: midpoint circle, each octant pair filled as a row span.
    fn filled_circle(&mut self, centre: [i32; 2], radius: i32) {
        let [cx, cy] = [centre[0] as i64, centre[1] as i64];
        let (mut dx, mut dy) = (radius as i64, 0i64);
        let (mut err, mut plus, mut minus) = (0i64, 1i64, 2 * radius as i64 - 1);
        while dx >= dy {
            self.span(cy - dy, cx - dx, cx + dx);
            self.span(cy + dy, cx - dx, cx + dx);
            self.span(cy - dx, cx - dy, cx + dy);
            self.span(cy + dx, cx - dy, cx + dy);
            dy += 1;
            err += plus;
            plus += 2;
            if err > 0 {
                err -= minus;
                dx -= 1;
                minus -= 2;
            }
        }
    }
}

/// The fixed-point offset from a segment's ends to its widened sides: the unit normal times
/// `half_width` (plus half a pixel for odd thicknesses), rounded half to even as `cvRound` does.
/// `None` for a zero-length segment, which OpenCV draws as caps only.
fn widening(a: Fixed, b: Fixed, half_width: i64, odd: bool) -> Option<[i64; 2]> {
    let dx = (a.x - b.x) as f64 / XY_ONE as f64;
    let dy = (b.y - a.y) as f64 / XY_ONE as f64;
    let length_squared = dx * dx + dy * dy;
    if length_squared.abs() <= f64::EPSILON {
        return None;
    }
    let odd_extra = if odd { XY_ONE as f64 * 0.5 } else { 0.0 };
    let scale = (half_width as f64 + odd_extra) / length_squared.sqrt();
    Some([(dy * scale).round_ties_even() as i64, (dx * scale).round_ties_even() as i64])
}

/// OpenCV's `clipLine` (Cohen–Sutherland) for an image of `size`: the ends moved onto the border
/// `[0, size − 1]` along the line, and whether the line meets the image at all. The crossing is
/// computed in double and truncated, and the second end is clipped against the first end's
/// already clipped position, as OpenCV does; a missed line keeps whatever moves were made.
fn clip_line(size: [i64; 2], mut a: Fixed, mut b: Fixed) -> (Fixed, Fixed, bool) {
    if size[0] <= 0 || size[1] <= 0 {
        return (a, b, false);
    }
    let [right, bottom] = [size[0] - 1, size[1] - 1];
    let vertical_code = |p: Fixed| ((p.y < 0) as u8) << 2 | ((p.y > bottom) as u8) << 3;
    let horizontal_code = |p: Fixed| (p.x < 0) as u8 | ((p.x > right) as u8) << 1;
    let (mut ca, mut cb) = (horizontal_code(a) | vertical_code(a), horizontal_code(b) | vertical_code(b));
    // (n · m) / d in double, truncated toward zero.
    let cross = |n: i64, m: i64, d: i64| (n as f64 * m as f64 / d as f64) as i64;
    if ca & cb == 0 && ca | cb != 0 {
        if ca & 12 != 0 {
            let edge = if ca < 8 { 0 } else { bottom };
            a.x += cross(edge - a.y, b.x - a.x, b.y - a.y);
            a.y = edge;
            ca = horizontal_code(a);
        }
        if cb & 12 != 0 {
            let edge = if cb < 8 { 0 } else { bottom };
            b.x += cross(edge - b.y, b.x - a.x, b.y - a.y);
            b.y = edge;
            cb = horizontal_code(b);
        }
        if ca & cb == 0 && ca | cb != 0 {
            if ca != 0 {
                let edge = if ca == 1 { 0 } else { right };
                a.y += cross(edge - a.x, b.y - a.y, b.x - a.x);
                a.x = edge;
                ca = 0;
            }
            if cb != 0 {
                let edge = if cb == 1 { 0 } else { right };
                b.y += cross(edge - b.x, b.y - a.y, b.x - a.x);
                b.x = edge;
                cb = 0;
            }
        }
    }
    (a, b, ca | cb == 0)
}

/// The two edge chains of `FillConvexPoly`, walked down from the top vertex: one forward through
/// the vertices, one backward. Both draw on one budget of vertices, and the fill stops when it
/// runs out, as OpenCV's does.
struct ChainWalk<'v> {
    v: &'v [Fixed],
    chains: [Chain; 2],
    vertices_left: i64,
}

/// One edge chain: the vertex it last reached, its step through the vertex list, its current x,
/// its per-row x step and the row where its current edge ends.
#[derive(Clone, Copy)]
struct Chain {
    vertex: usize,
    step: usize,
    x: i64,
    dx: i64,
    end_row: i64,
}

impl<'v> ChainWalk<'v> {
    fn new(v: &'v [Fixed], top: usize, top_row: i64) -> Self {
        let chain = |step| Chain { vertex: top, step, x: -XY_ONE, dx: 0, end_row: top_row };
        Self { v, chains: [chain(1), chain(v.len() - 1)], vertices_left: v.len() as i64 }
    }

    /// The chains' x at row y, [left, right], after moving on to their next edges where needed;
    /// `None` once the vertices are used up.
    fn span_at(&mut self, y: i64) -> Option<[i64; 2]> {
        for i in 0..2 {
            if y >= self.chains[i].end_row {
                self.next_edge(i, y);
            }
        }
        if self.vertices_left < 0 {
            return None;
        }
        let [a, b] = [self.chains[0].x, self.chains[1].x];
        Some(if a > b { [b, a] } else { [a, b] })
    }

    /// Moves chain `i` to its first edge ending below row y, skipping edges that end on or above
    /// it. Its x starts at the edge's upper vertex and steps by the slope per row rounded to nearest.
    fn next_edge(&mut self, i: usize, y: i64) {
        let (n, step) = (self.v.len(), self.chains[i].step);
        let mut from = self.chains[i].vertex;
        let mut to = (from + step) % n;
        loop {
            let budget = self.vertices_left;
            self.vertices_left -= 1;
            if budget <= 0 {
                return;
            }
            let end_row = (self.v[to].y + XY_HALF) >> XY_SHIFT;
            if end_row > y {
                let rows = end_row - y;
                let chain = &mut self.chains[i];
                chain.end_row = end_row;
                chain.dx = ((self.v[to].x - self.v[from].x) * 2 + rows) / (2 * rows);
                chain.x = self.v[from].x;
                chain.vertex = to;
                return;
            }
            from = to;
            to = (to + step) % n;
        }
    }

    fn advance(&mut self) {
        for chain in &mut self.chains {
            chain.x += chain.dx;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imgproc::contour::{find_contours, fixtures};

    const GREEN: [u8; 3] = [0, 255, 0];

    /// The green channel of a black BGR canvas after `draw`, as the fixtures store it.
    fn drawn(width: usize, height: usize, draw: impl FnOnce(&mut Raster<u8>)) -> Raster<u8> {
        let mut canvas = Raster::new(width, height, 3);
        draw(&mut canvas);
        Raster::from_vec(width, height, 1, canvas.data.chunks_exact(3).map(|px| px[1]).collect())
    }

    fn point(value: &serde_json::Value, i: usize) -> [i32; 2] {
        [value[i].as_i64().unwrap() as i32, value[i + 1].as_i64().unwrap() as i32]
    }

    #[test]
    fn drawn_contours_match_opencv_pixel_for_pixel() {
        for case in fixtures::CASES {
            let mask = fixtures::gray(&format!("{case}.png"));
            let ours = drawn(mask.width, mask.height, |canvas| {
                draw_contours(canvas, &find_contours(&mask), &GREEN, 2);
            });
            let expected = fixtures::gray(&format!("{case}_drawn.png"));
            assert_eq!(fixtures::mismatches(&ours, &expected), 0, "{case}: pixels differing from OpenCV");
        }
    }

    #[test]
    fn lines_rectangles_and_circles_match_opencv() {
        let shapes = fixtures::json("shapes.json");
        let size = |key: &str| shapes[key].as_u64().unwrap() as usize;
        let ours = drawn(size("width"), size("height"), |canvas| {
            for l in shapes["lines"].as_array().unwrap() {
                line(canvas, point(l, 0), point(l, 2), &GREEN, l[4].as_u64().unwrap() as u32);
            }
            for r in shapes["rectangles"].as_array().unwrap() {
                rectangle(canvas, point(r, 0), point(r, 2), &GREEN, r[4].as_u64().unwrap() as u32);
            }
            for c in shapes["circles"].as_array().unwrap() {
                filled_circle(canvas, point(c, 0), c[2].as_i64().unwrap() as i32, &GREEN);
            }
        });
        let expected = fixtures::gray("shapes_drawn.png");
        assert_eq!(fixtures::mismatches(&ours, &expected), 0, "pixels differing from OpenCV");
    }

    #[test]
    fn thickness_two_caps_are_plus_shaped() {
        // A lone contour point is drawn as its cap alone: the pixel and its 4 neighbours.
        let ours = drawn(5, 5, |canvas| draw_contours(canvas, &[vec![[2, 2]]], &GREEN, 2));
        let set: Vec<usize> = (0..25).filter(|&i| ours.data[i] != 0).collect();
        assert_eq!(set, vec![7, 11, 12, 13, 17]);
    }

    #[test]
    fn single_channel_images_take_a_single_value() {
        let mut img = Raster::new(4, 4, 1);
        filled_circle(&mut img, [1, 1], 1, &[9]);
        assert_eq!(img.data.iter().filter(|&&v| v == 9).count(), 5);
    }
}
